rule analyze:
    """tau_int (Gamma method) and costs of every chain file of one experiment; the beta-transfer
    and volume-transfer files are marked as such (--transfer, --volume-transfer) and kept out of
    the comparison."""
    input:
        chains=PLAN.all_chains,
        transfer=PLAN.transfer_chains,
        volume_transfer=PLAN.volume_transfer_chains,
        exchange=PLAN.exchange_dirs,
    output:
        report(
            "results/{exp}/tauint.csv",
            caption="../report/tauint.rst",
            category="{exp}",
            subcategory="Tables",
            labels={"file": "tauint.csv"},
        ),
    log:
        "logs/{exp}/analyze.log",
    conda:
        "../envs/dlhmc.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        amortize=lambda wc: (
            f"--amortize-samples {PLAN.experiment(wc)['analyze']['amortize_samples']}"
            if "amortize_samples" in PLAN.experiment(wc)["analyze"]
            else ""
        ),
        transfer=lambda wc, input: " ".join(
            f"{flag} {' '.join(files)}"
            for flag, files in (
                ("--transfer", input.transfer),
                ("--volume-transfer", input.volume_transfer),
            )
            if files
        ),
        exchange=lambda wc: " ".join(PLAN.exchange_chains(wc)),
    shell:
        "dlhmc analyze {input.chains} {params.exchange} {params.transfer} --out {output} "
        "--experiment {wildcards.exp} {params.amortize} > {log} 2>&1"


rule report:
    """The HTML page of one experiment, and its tables and figures (dlhmc.analysis.registry)."""
    input:
        table="results/{exp}/tauint.csv",
        chains=PLAN.all_chains,
        runs=PLAN.report_runs,
        derivatives=PLAN.derivative_files,
        exchange=PLAN.exchange_dirs,
    output:
        **report_outputs("results/{exp}/report"),
    log:
        "logs/{exp}/report.log",
    conda:
        "../envs/dlhmc.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        runs=run_dirs,
        out_dir=lambda wc, output: os.path.dirname(output.html),
        exchange_chains=lambda wc: " ".join(PLAN.exchange_chains(wc)),
        bridges=lambda wc, input: " ".join(
            f"{flag} {' '.join(files)}"
            for flag, files in (
                ("--derivatives", input.derivatives),
                ("--exchange", input.exchange),
            )
            if files
        ),
    shell:
        "dlhmc report --table {input.table} --chains {input.chains} "
        "{params.exchange_chains} --runs {params.runs} {params.bridges} "
        "--experiment {wildcards.exp} --out-dir {params.out_dir} > {log} 2>&1"
