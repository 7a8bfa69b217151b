"""Bridge flows between neighbouring betas (experiment key bridges), and the derivatives they
give. On every volume, for every beta b_k+1 of the ladder above the first:

  bridge/model/          a flow trained on the stored configurations of the HMC ensemble at b_k
                         to map p_(b_k) onto p_(b_k+1) (dlhmc train --sampler bridge);
  bridge/derivative.csv  d<plaq>/dbeta and d<Q^2>/dbeta between b_k and b_k+1: independent
                         ensembles, reweighting, and through the bridge (dlhmc derivative).

The ensembles are the hmc rule's runs of one grid point with --save-every
(hmc/<point>_save<K>.nc, and hmc/<point>_save<K>_train.nc with another seed for training;
dlhmc.plan.bridge_jobs says why). Bridge training is the train rule (same resumable run
directory) with other paths and options.
"""


use rule train as bridge_train with:
    input:
        data=PLAN.bridge_data,
    output:
        checkpoint="results/{exp}/{lattice}/beta{beta}/bridge/model/checkpoint.pt",
        metrics="results/{exp}/{lattice}/beta{beta}/bridge/model/metrics.csv",
        config="results/{exp}/{lattice}/beta{beta}/bridge/model/config.yaml",
    log:
        "logs/{exp}/{lattice}/beta{beta}/bridge_train.log",
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=0,
        tasks=1,
        mpi="",
    params:
        work="results/{exp}/{lattice}/beta{beta}/bridge/train_work",
        options=PLAN.bridge_train_options,
        init="",


rule derivative:
    """d<O>/dbeta between the beta below and this one, three ways (dlhmc derivative)."""
    input:
        chains=PLAN.derivative_chains,
        bridge=PLAN.bridge_checkpoint,
    output:
        "results/{exp}/{lattice}/beta{beta}/bridge/derivative.csv",
    log:
        "logs/{exp}/{lattice}/beta{beta}/derivative.log",
    conda:
        "../envs/dlhmc.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=0,
    params:
        bridge=lambda wc, input: os.path.dirname(input.bridge),
        device=lambda wc: PLAN.experiment(wc)["device"],
    shell:
        "OMP_NUM_THREADS={threads} dlhmc derivative --chains {input.chains} "
        "--bridge {params.bridge} --out {output} --device {params.device} >{log} 2>&1"
