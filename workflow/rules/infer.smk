rule infer:
    """Inference chains with a trained model at the model's own beta (full MH accept/reject),
    on the model's volume or, for a local model trained on train.lattice, on this one.
    """
    input:
        checkpoint=PLAN.infer_checkpoint,
    output:
        "results/{exp}/{lattice}/beta{beta}/l2hmc.nc",
    log:
        "logs/{exp}/{lattice}/beta{beta}/infer.log",
    conda:
        "../envs/dlhmc.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=0,
    params:
        run_dir=lambda wc, input: os.path.dirname(input.checkpoint),
        options=PLAN.infer_options,
        lattice=PLAN.infer_lattice_option,
        seed=lambda wc: PLAN.experiment(wc)["seed"] + 1,
        device=lambda wc: PLAN.experiment(wc)["device"],
    shell:
        "OMP_NUM_THREADS={threads} dlhmc infer --checkpoint {params.run_dir} {params.lattice} "
        "{params.options} "
        "--seed {params.seed} --device {params.device} --no-progress --out {output} "
        ">{log} 2>&1"


use rule infer as infer_variant with:
    output:
        "results/{exp}/{lattice}/beta{beta}/learned/{variant}/l2hmc.nc",
    log:
        "logs/{exp}/{lattice}/beta{beta}/{variant}/infer.log",


use rule infer as infer_flow with:
    """A flow learner's chains, twice (dlhmc.plan.paths.FLOW_SAMPLERS): independence Metropolis
    with flow proposals (flow_imh.nc) and, with the learner's flow_hmc settings, HMC in the
    flow's latent variables (flow_hmc.nc, dlhmc infer --flow-hmc --nlf N --eps E).
    """
    input:
        checkpoint=PLAN.flow_checkpoint,
    output:
        "results/{exp}/{lattice}/beta{beta}/learned/{variant}/{flow_sampler}.nc",
    log:
        "logs/{exp}/{lattice}/beta{beta}/{variant}/{flow_sampler}.log",
    params:
        options=PLAN.flow_infer_options,
