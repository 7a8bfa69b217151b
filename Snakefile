"""dlhmc workflow: L2HMC along a beta ladder, matched HMC baselines, tau_int analysis, report.

Edit config.yaml (or pass --configfile configs/...), then `snakemake --cores all` locally or
`snakemake --profile profiles/polaris` on a cluster. Results land in results/<experiment>/; the
layout and the config keys are documented in docs/pipeline.md.

`--configfile FILE` replaces config.yaml instead of being merged into it, so a paper-scale run
does not also run the default experiment.
"""

if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/hmc.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/curriculum.smk"
include: "workflow/rules/bridges.smk"
include: "workflow/rules/exchange.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        PLAN.final_targets(),
