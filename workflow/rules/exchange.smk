"""Replica exchange over a volume's whole ladder (experiment key trex): plain parallel tempering
(pt/) and, with bridges, T-REX through the bridge flows of every neighbouring pair (trex/).
dlhmc trex writes one chain file per beta (beta<b>.nc, analysed as every other chain file),
swaps.csv and round_trips.csv into the run's directory, the rule's one output.
"""


rule trex:
    """One replica-exchange run over the ladder of one volume."""
    input:
        bridges=PLAN.exchange_bridges,
    output:
        directory("results/{exp}/{lattice}/{exchange}"),
    log:
        "logs/{exp}/{lattice}/{exchange}.log",
    conda:
        "../envs/dlhmc.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=0,
    params:
        group=lambda wc: PLAN.experiment(wc)["group"],
        lattice=lattice_option,
        options=PLAN.exchange_options,
        bridges=bridges_option,
        precision=lambda wc: PLAN.experiment(wc)["precision"],
        seed=lambda wc: PLAN.experiment(wc)["seed"] + 2,
        device=lambda wc: PLAN.experiment(wc)["device"],
    shell:
        "OMP_NUM_THREADS={threads} dlhmc trex --group {params.group} --lattice {params.lattice} "
        "{params.options} {params.bridges} --precision {params.precision} "
        "--seed {params.seed} --device {params.device} --no-progress --out-dir {output} "
        ">{log} 2>&1"
