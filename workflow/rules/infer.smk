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
