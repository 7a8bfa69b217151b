rule train:
    """Train the L2HMC sampler at one beta, starting from the model of the previous beta.

    `dlhmc train` works in train_work/, which is not a declared output: Snakemake's cleanup of an
    incomplete job leaves it alone, so a killed or preempted job that is started again resumes
    from its last checkpoint. The command line is stamped into train_work/; a changed command
    (other settings, another init model, other ranks) starts afresh instead of failing on a
    foreign run. At the end the model files are copied out atomically and train_work/ is removed.
    """
    input:
        init=PLAN.train_init,
    output:
        checkpoint="results/{exp}/{lattice}/beta{beta}/model/checkpoint.pt",
        metrics="results/{exp}/{lattice}/beta{beta}/model/metrics.csv",
        config="results/{exp}/{lattice}/beta{beta}/model/config.yaml",
    log:
        "logs/{exp}/{lattice}/beta{beta}/train.log",
    # A ladder trains its betas one after another: the longest chain of jobs. Started first,
    # it runs beside the independent HMC and inference jobs instead of after them.
    priority: 10
    conda:
        "../envs/dlhmc.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=0,
        tasks=lambda wc: PLAN.train_settings(wc)["ranks"],
        # Empty for one rank: the Slurm executor rejects an `mpi` job with a single task.
        mpi=lambda wc: "mpiexec" if PLAN.train_settings(wc)["ranks"] > 1 else "",
    params:
        work="results/{exp}/{lattice}/beta{beta}/train_work",
        group=lambda wc: PLAN.experiment(wc)["group"],
        lattice=lattice_option,
        precision=lambda wc: PLAN.experiment(wc)["precision"],
        seed=lambda wc: PLAN.experiment(wc)["seed"],
        device=lambda wc: PLAN.experiment(wc)["device"],
        options=PLAN.train_options,
        init=init_option,
        launch=mpi_launcher,
    shell:
        """
        set -euo pipefail
        export OMP_NUM_THREADS={threads}
        work={params.work}
        cmd=({params.launch} dlhmc train --group {params.group} --lattice {params.lattice}
            --beta {wildcards.beta} {params.options} --precision {params.precision}
            --seed {params.seed} --device {params.device} {params.init} --no-progress
            --out "$work")
        if [ -f "$work/command" ] && [ "$(cat "$work/command")" != "${{cmd[*]}}" ]; then
            echo "discarding $work: it belongs to another command" >{log}
            rm -rf "$work"
        elif [ -f "$work/checkpoint.pt" ]; then
            echo "resuming the run in $work" >{log}
        else
            echo "starting a fresh run in $work" >{log}
        fi
        mkdir -p "$work"
        printf '%s' "${{cmd[*]}}" >"$work/command"
        "${{cmd[@]}}" >>{log} 2>&1
        for out in {output}; do
            cp "$work/$(basename "$out")" "$out.tmp-$$"
            mv "$out.tmp-$$" "$out"
        done
        rm -rf "$work"
        """


use rule train as train_variant with:
    output:
        checkpoint="results/{exp}/{lattice}/beta{beta}/learned/{variant}/model/checkpoint.pt",
        metrics="results/{exp}/{lattice}/beta{beta}/learned/{variant}/model/metrics.csv",
        config="results/{exp}/{lattice}/beta{beta}/learned/{variant}/model/config.yaml",
    log:
        "logs/{exp}/{lattice}/beta{beta}/{variant}/train.log",
    params:
        work="results/{exp}/{lattice}/beta{beta}/learned/{variant}/train_work",
