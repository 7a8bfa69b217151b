"""Config validation and the rules' input functions: thin lookups into the dlhmc package.

The rules hold no physics, and this file no check of the config: what a schema cannot express,
the result paths and the jobs of each experiment live in the torch-free dlhmc.plan (tested without
Snakemake, tests/test_plan.py), the report's files in dlhmc.analysis.registry. Here they are bound
to Snakemake's config, wildcards, flags and error type.
"""

import os

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from dlhmc.analysis.registry import (
    REPORT_FIGURES,
    REPORT_TABLES,
    caption_path,
    table_file,
)
from dlhmc.plan.bridges import switches_as_mappings
from dlhmc.plan.experiments import config_key, load_experiments
from dlhmc.plan.jobs import Plan, lattice_option
from dlhmc.plan.paths import EXCHANGES, FLOW_SAMPLERS, TRANSFER_STAGES

SCHEMA = "../schemas/config.schema.yaml"


def validate_config(config):
    """Validate against the schema (filling defaults) and re-raise with the offending key first."""
    switches_as_mappings(config)
    try:
        validate(config, schema=SCHEMA)
    except WorkflowError as err:
        cause = err.__context__
        if not isinstance(cause, jsonschema.ValidationError):
            raise
        raise WorkflowError(
            f"Invalid config: {config_key(cause.absolute_path)}: {cause.message}"
        ) from None


def load_plan(config):
    """The jobs of the validated experiments; every problem of the config stops the workflow."""
    validate_config(config)
    with open(os.path.join(workflow.current_basedir, SCHEMA)) as f:
        schema = yaml.safe_load(f)
    try:
        return Plan(load_experiments(config, schema, workflow.configfiles))
    except ValueError as err:
        raise WorkflowError(str(err)) from None


PLAN = load_plan(config)


def init_option(wildcards, input):
    """`--init <run dir>` of the model a training job starts from; nothing for a fresh start."""
    return f"--init {os.path.dirname(input.init[0])}" if input.init else ""


def mpi_launcher(wildcards, resources):
    """`{mpi} -n {tasks}` when training runs on several ranks; profiles set mpi (srun, mpiexec ...)."""
    return f"{resources.mpi} -n {resources.tasks}" if resources.tasks > 1 else ""


def bridges_option(wildcards, input):
    """`--bridges <run dir> ...` of a T-REX run, in ladder order; nothing for plain PT."""
    if not input.bridges:
        return ""
    return "--bridges " + " ".join(os.path.dirname(path) for path in input.bridges)


def run_dirs(wildcards, input):
    return " ".join(os.path.dirname(path) for path in input.runs)


def report_outputs(out):
    """The outputs of the report rule: the page, then the tables and figures of
    dlhmc.analysis.registry, each with the caption report.html shows beside it."""

    def flagged(path, name, subcategory, label):
        caption = str(caption_path(name))
        labels = {"file": label}
        return report(
            path,
            caption=caption,
            category="{exp}",
            subcategory=subcategory,
            labels=labels,
        )

    html = report(
        f"{out}/report.html",
        caption="../report/report_html.rst",
        category="{exp}",
        subcategory="Tables",
        labels={"file": "report.html"},
    )
    files = {"html": html}
    files |= {
        t.name: flagged(f"{out}/{table_file(t)}", t.name, "Tables", table_file(t))
        for t in REPORT_TABLES
    }
    for f in REPORT_FIGURES:
        files[f.name] = flagged(f"{out}/{f.name}.png", f.name, "Figures", f.name)
    files["pdfs"] = [f"{out}/{f.name}.pdf" for f in REPORT_FIGURES]
    return files


wildcard_constraints:
    exp="[A-Za-z][A-Za-z0-9_-]*",
    lattice="[0-9]+(x[0-9]+)+",
    beta="[0-9][0-9.e+-]*",
    point="nlf[0-9]+_eps[0-9][0-9.e+-]*(_[a-z]+)?(_hits[0-9]+_size[0-9]+)?(_save[0-9]+(_train)?)?",
    stage="|".join(TRANSFER_STAGES),
    variant="[a-z][a-z0-9_]*",
    flow_sampler="|".join(FLOW_SAMPLERS),
    exchange="|".join(EXCHANGES),
