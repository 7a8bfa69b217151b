rule analyze:
    """tau_int (Gamma method) and costs of every chain file of one experiment; the beta-transfer
    files are marked as such (--transfer) and kept out of the comparison."""
    input:
        chains=all_chains,
        transfer=transfer_chains,
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
            f"--amortize-samples {experiment(wc)['analyze']['amortize_samples']}"
            if "amortize_samples" in experiment(wc)["analyze"]
            else ""
        ),
        transfer=lambda wc, input: (
            f"--transfer {' '.join(input.transfer)}" if input.transfer else ""
        ),
    shell:
        "dlhmc analyze {input.chains} {params.transfer} --out {output} "
        "--experiment {wildcards.exp} {params.amortize} > {log} 2>&1"


rule report:
    """Comparison table, figures and the HTML page of one experiment."""
    input:
        table="results/{exp}/tauint.csv",
        chains=all_chains,
        runs=report_runs,
    output:
        html=report(
            "results/{exp}/report/report.html",
            caption="../report/report_html.rst",
            category="{exp}",
            subcategory="Tables",
            labels={"file": "report.html"},
        ),
        comparison=report(
            "results/{exp}/report/comparison.csv",
            caption="../report/comparison.rst",
            category="{exp}",
            subcategory="Tables",
            labels={"file": "comparison.csv"},
        ),
        learners=report(
            "results/{exp}/report/learners.csv",
            caption="../report/learners.rst",
            category="{exp}",
            subcategory="Tables",
            labels={"file": "learners.csv"},
        ),
        fig1=report(
            "results/{exp}/report/fig1_cost_vs_beta.png",
            caption=figure_caption("fig1_cost_vs_beta"),
            category="{exp}",
            subcategory="Figures",
            labels={"file": "fig1_cost_vs_beta"},
        ),
        fig2=report(
            "results/{exp}/report/fig2_charge_history.png",
            caption=figure_caption("fig2_charge_history"),
            category="{exp}",
            subcategory="Figures",
            labels={"file": "fig2_charge_history"},
        ),
        fig3=report(
            "results/{exp}/report/fig3_layer_diagnostics.png",
            caption=figure_caption("fig3_layer_diagnostics"),
            category="{exp}",
            subcategory="Figures",
            labels={"file": "fig3_layer_diagnostics"},
        ),
        fig4=report(
            "results/{exp}/report/fig4_plaquette.png",
            caption=figure_caption("fig4_plaquette"),
            category="{exp}",
            subcategory="Figures",
            labels={"file": "fig4_plaquette"},
        ),
        fig5=report(
            "results/{exp}/report/fig5_training.png",
            caption=figure_caption("fig5_training"),
            category="{exp}",
            subcategory="Figures",
            labels={"file": "fig5_training"},
        ),
        pdfs=expand(
            "results/{{exp}}/report/{fig}.pdf",
            fig=REPORT_FIGURES,
        ),
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
    shell:
        "dlhmc report --table {input.table} --chains {input.chains} --runs {params.runs} "
        "--experiment {wildcards.exp} --out-dir {params.out_dir} > {log} 2>&1"
