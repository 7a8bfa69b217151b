rule hmc:
    """HMC baseline at one beta and one grid point: N_LF, eps, the integrator unless leapfrog,
    and for winding HMC the instanton hits and their size; the file name states all of them.
    """
    output:
        "results/{exp}/{lattice}/beta{beta}/hmc/{point}.nc",
    log:
        "logs/{exp}/{lattice}/beta{beta}/hmc_{point}.log",
    conda:
        "../envs/dlhmc.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=0,
    params:
        group=lambda wc: PLAN.experiment(wc)["group"],
        point=PLAN.hmc_options,
        lattice=lattice_option,
        precision=lambda wc: PLAN.experiment(wc)["precision"],
        chains=lambda wc: PLAN.experiment(wc)["hmc"]["chains"],
        trajectories=lambda wc: PLAN.experiment(wc)["hmc"]["trajectories"],
        therm=lambda wc: PLAN.experiment(wc)["hmc"]["therm"],
        seed=PLAN.hmc_seed,
        device=lambda wc: PLAN.experiment(wc)["device"],
    shell:
        "OMP_NUM_THREADS={threads} dlhmc hmc --group {params.group} --lattice {params.lattice} "
        "--beta {wildcards.beta} {params.point} "
        "--chains {params.chains} --trajectories {params.trajectories} --therm {params.therm} "
        "--precision {params.precision} --seed {params.seed} --device {params.device} "
        "--no-progress --out {output} >{log} 2>&1"
