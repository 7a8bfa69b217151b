rule hmc:
    """HMC baseline at one beta and one grid point (N_LF, eps); the file name states both."""
    output:
        "results/{exp}/{lattice}/beta{beta}/hmc/nlf{nlf}_eps{eps}.nc",
    log:
        "logs/{exp}/{lattice}/beta{beta}/hmc_nlf{nlf}_eps{eps}.log",
    conda:
        "../envs/dlhmc.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=0,
    params:
        group=lambda wc: experiment(wc)["group"],
        lattice=lattice_option,
        precision=lambda wc: experiment(wc)["precision"],
        chains=lambda wc: experiment(wc)["hmc"]["chains"],
        trajectories=lambda wc: experiment(wc)["hmc"]["trajectories"],
        therm=lambda wc: experiment(wc)["hmc"]["therm"],
        seed=lambda wc: experiment(wc)["seed"] + 2,
        device=lambda wc: experiment(wc)["device"],
    shell:
        "OMP_NUM_THREADS={threads} dlhmc hmc --group {params.group} --lattice {params.lattice} "
        "--beta {wildcards.beta} --nlf {wildcards.nlf} --eps {wildcards.eps} "
        "--chains {params.chains} --trajectories {params.trajectories} --therm {params.therm} "
        "--precision {params.precision} --seed {params.seed} --device {params.device} "
        "--no-progress --out {output} >{log} 2>&1"
