"""Config validation, path naming and input functions shared by the rules.

The rules hold no physics: they turn the validated config into `dlhmc` command lines and stable
result paths. Every path component derived from a number is formatted here, once, so that adding a
beta or a volume to the config never renames an existing result (which would rerun it).
"""

import copy
import os

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# Torch-free modules of the package: per-group facts, figure names and captions.
from dlhmc.analysis.captions import REPORT_FIGURES, caption_path
from dlhmc.config_check import check_values, duplicate_keys
from dlhmc.groups import GROUPS, unsupported_options


# The HMC baseline grid (points, variants, file names).
include: "common_hmc.smk"
# The learned samplers of an experiment: `train` and its variants, and their checks.
include: "common_learners.smk"


# Files `dlhmc train` writes into its run directory; the train rule declares these as its output.
MODEL_FILES = ("checkpoint.pt", "metrics.csv", "config.yaml")
# Beta-transfer chain files: the model of the beta below as it is, and briefly retrained.
TRANSFER_KINDS = ("none", "retrained")


def config_key(path):
    """Dotted config key of a jsonschema error path, e.g. experiments.u1.train.steps."""
    key = "config"
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key.removeprefix("config.")


def validate_config(config):
    """Validate against the schema (filling defaults) and re-raise with the offending key first."""
    try:
        validate(config, schema="../schemas/config.schema.yaml")
    except WorkflowError as err:
        cause = err.__context__
        if not isinstance(cause, jsonschema.ValidationError):
            raise
        raise WorkflowError(
            f"Invalid config: {config_key(cause.absolute_path)}: {cause.message}"
        ) from None


def beta_label(beta):
    """Shortest round-trip text of beta (4 -> '4.0', 4.25 -> '4.25'): stable across config edits."""
    return repr(float(beta))


def lattice_label(shape):
    return "x".join(str(n) for n in shape)


def eps_label(eps):
    """Six significant digits; the job runs with exactly the eps its file name states."""
    return format(float(eps), ".6g")


def train_shape(train, lattice_shape):
    """The volume a model for `lattice_shape` is trained on: the learner's lattice when given."""
    return train.get("lattice", lattice_shape)


def transfer_steps(exp):
    """Steps of the short retraining of the beta transfer: beta_transfer of train.steps."""
    return max(1, round(exp["beta_transfer"] * exp["train"]["steps"]))


def check_experiment(name, exp):
    """Checks the schema cannot express; returns one message per problem, naming the key."""
    key = f"experiments.{name}"
    problems = check_values(name, exp)
    dims = GROUPS[exp["group"]].dims
    for i, shape in enumerate(exp["lattices"]):
        if len(shape) != dims:
            problems.append(
                f"{key}.lattices[{i}]: {exp['group']} needs {dims} extents, got {shape}"
            )
    labels = [lattice_label(shape) for shape in exp["lattices"]]
    if len(set(labels)) != len(labels):
        problems.append(f"{key}.lattices: duplicate volumes in {exp['lattices']}")
    for where, train in learners(exp).items():
        problems += check_train(f"{key}.{where}", exp, train)
    if (
        "beta_transfer" in exp
        and exp["train"].get("anneal_from", 1.0) < 1.0
        and transfer_steps(exp) < 2
    ):
        problems.append(
            f"{key}.beta_transfer: {exp['beta_transfer']} of train.steps is 1 step, too few "
            "to anneal (train.anneal_from < 1 needs 2)"
        )
    betas = exp["betas"]
    if any(b <= a for a, b in zip(betas, betas[1:])):
        problems.append(f"{key}.betas: must be strictly increasing, got {betas}")
    if not hmc_grid(exp):
        problems.append(f"{key}.hmc: no grid points; give nlf and length, or points")
    hmc = exp["hmc"]
    sizes = {("hmc", size) for size in hmc["instanton_size"]}
    hits = {("hmc", k) for k in hmc["instanton_hits"] if k > 0}
    for i, p in enumerate(hmc.get("points", [])):
        if p.get("instanton_hits", 0):
            hits.add((f"hmc.points[{i}]", p["instanton_hits"]))
            sizes.add((f"hmc.points[{i}]", p.get("instanton_size", 0)))
    for where, _ in sorted(hits):
        for option in ("instanton_hits", "instanton_size"):
            for _, message in unsupported_options(exp["group"], {option: True}):
                problems.append(f"{key}.{where}.{option}: {message}")
    smallest = min(min(shape) for shape in exp["lattices"])
    for where, size in sorted(sizes) if hits and exp["group"] == "U1" else ():
        if size == 1 or size > smallest:
            problems.append(
                f"{key}.{where}.instanton_size: {size} must be 0 (delocalized) or "
                f"2..{smallest} (the smallest lattice extent)"
            )
    return problems


def load_experiments(config):
    """The validated experiments, each an independent copy with the HMC run lengths resolved."""
    validate_config(config)
    experiments = copy.deepcopy(config["experiments"])
    problems = [p for path in workflow.configfiles for p in duplicate_keys(path)]
    problems += [
        p for name, exp in experiments.items() for p in validate_variants(name, exp)
    ]
    if not problems:
        problems = [
            p for name, exp in experiments.items() for p in check_experiment(name, exp)
        ]
    if problems:
        raise WorkflowError("Invalid config:\n  " + "\n  ".join(problems))
    for exp in experiments.values():
        for setting in ("chains", "trajectories", "therm"):
            exp["hmc"].setdefault(setting, exp["infer"][setting])
    return experiments


EXPERIMENTS = load_experiments(config)


def beta_dir(exp, lattice, beta):
    return f"results/{exp}/{lattice}/beta{beta}"


def learned_dir(exp, lattice, beta, variant=None):
    """Where a learner's model and chains live: the ladder's own in the beta directory (the
    names of experiments without variants never change), a variant's under learned/<name>.
    """
    base = beta_dir(exp, lattice, beta)
    return base if variant is None else f"{base}/learned/{variant}"


def experiment(wildcards):
    if wildcards.exp not in EXPERIMENTS:
        raise WorkflowError(
            f"experiments.{wildcards.exp}: no such experiment in the config "
            f"(have {', '.join(EXPERIMENTS)})"
        )
    return EXPERIMENTS[wildcards.exp]


def variant_of(wildcards):
    """The variant a train or infer job belongs to (None: the ladder's own model)."""
    variant = getattr(wildcards, "variant", None)
    if variant is not None and variant not in experiment(wildcards).get("variants", {}):
        raise WorkflowError(
            f"experiments.{wildcards.exp}.variants: no variant {variant!r} in the config"
        )
    return variant


def train_settings(wildcards):
    """Training settings of the job's learner: `train`, or a variant merged into it."""
    variant = variant_of(wildcards)
    key = "train" if variant is None else f"variants.{variant}"
    return learners(experiment(wildcards))[key]


def ladder(wildcards):
    """Beta labels of the experiment's ladder; fails clearly for a beta outside the config."""
    labels = [beta_label(b) for b in experiment(wildcards)["betas"]]
    if wildcards.beta not in labels:
        raise WorkflowError(
            f"experiments.{wildcards.exp}.betas: beta {wildcards.beta} is not in the ladder {labels}"
        )
    return labels


def model_files(exp, lattice, beta, variant=None):
    return [
        f"{learned_dir(exp, lattice, beta, variant)}/model/{name}"
        for name in MODEL_FILES
    ]


def train_init(wildcards):
    """Model of the previous beta of the ladder (same volume and learner); the first beta
    starts fresh."""
    labels = ladder(wildcards)
    k = labels.index(wildcards.beta)
    if k == 0:
        return []
    return model_files(
        wildcards.exp, wildcards.lattice, labels[k - 1], variant_of(wildcards)
    )


def infer_source(wildcards):
    """Volume label the job's model was trained on: the learner's lattice when it names one (a
    local model transferred to this volume), else this volume."""
    shape = [int(n) for n in wildcards.lattice.split("x")]
    return lattice_label(train_shape(train_settings(wildcards), shape))


def infer_checkpoint(wildcards):
    """The model an inference job samples with."""
    trained = infer_source(wildcards)
    where = learned_dir(wildcards.exp, trained, wildcards.beta, variant_of(wildcards))
    return f"{where}/model/checkpoint.pt"


def infer_lattice_option(wildcards, input):
    """`--lattice ...` when the model was trained on another volume, else nothing (the command
    line of an untransferred job stays what it was)."""
    if infer_source(wildcards) == wildcards.lattice:
        return ""
    return f"--lattice {lattice_option(wildcards)}"


def cli_options(settings, skip=()):
    """`--key value ...` for every setting (lists as several values), in config order."""
    words = []
    for key, value in settings.items():
        if key in skip:
            continue
        words.append(f"--{key.replace('_', '-')}")
        words.extend(str(v) for v in (value if isinstance(value, list) else [value]))
    return " ".join(words)


def train_options(wildcards):
    """All training settings of the job's learner; ranks is how the job is launched, not an
    option."""
    return cli_options(train_settings(wildcards), skip=("ranks", "lattice"))


def init_option(wildcards, input):
    return f"--init {os.path.dirname(input.init[0])}" if input.init else ""


def mpi_launcher(wildcards, resources):
    """`{mpi} -n {tasks}` when training runs on several ranks; profiles set mpi (srun, mpiexec ...)."""
    return f"{resources.mpi} -n {resources.tasks}" if resources.tasks > 1 else ""


def lattice_option(wildcards):
    return wildcards.lattice.replace("x", " ")


def volumes(name):
    return [lattice_label(shape) for shape in EXPERIMENTS[name]["lattices"]]


def betas(name):
    return [beta_label(b) for b in EXPERIMENTS[name]["betas"]]


def variants(name):
    """The learners of an experiment: None (the ladder's own model) and every variant name."""
    return [None, *EXPERIMENTS[name].get("variants", {})]


def train_volumes(name, variant=None):
    """The volumes a learner's models are trained on: its lattice, or every sampled volume."""
    exp = EXPERIMENTS[name]
    train = learners(exp)["train" if variant is None else f"variants.{variant}"]
    return sorted(
        {lattice_label(train_shape(train, shape)) for shape in exp["lattices"]}
    )


def trained_models(name):
    """Checkpoints of every (learner, training volume, beta) of an experiment."""
    return [
        f"{learned_dir(name, lattice, beta, variant)}/model/checkpoint.pt"
        for variant in variants(name)
        for lattice in train_volumes(name, variant)
        for beta in betas(name)
    ]


def l2hmc_chains(name):
    return [
        f"{learned_dir(name, lattice, beta, variant)}/l2hmc.nc"
        for variant in variants(name)
        for lattice in volumes(name)
        for beta in betas(name)
    ]


def hmc_chains(name):
    return [
        f"{beta_dir(name, lattice, beta)}/hmc/{point}.nc"
        for lattice in volumes(name)
        for beta in betas(name)
        for point in hmc_points(EXPERIMENTS[name])
    ]


def all_chains(wildcards):
    return l2hmc_chains(wildcards.exp) + hmc_chains(wildcards.exp)


def transfer_chains(wildcards):
    """Beta-transfer chain files (none without beta_transfer): at every beta above the first,
    the model of the beta below without and with a short retraining."""
    if "beta_transfer" not in EXPERIMENTS[wildcards.exp]:
        return []
    return [
        f"{beta_dir(wildcards.exp, lattice, beta)}/transfer/{kind}.nc"
        for lattice in volumes(wildcards.exp)
        for beta in betas(wildcards.exp)[1:]
        for kind in TRANSFER_KINDS
    ]


def report_runs(wildcards):
    return trained_models(wildcards.exp)


def run_dirs(wildcards, input):
    return " ".join(os.path.dirname(path) for path in input.runs)


def figure_caption(name):
    """Caption file of a report figure: the text the HTML report shows under the same figure."""
    return str(caption_path(name))


def report_files(name):
    """Everything `dlhmc report` writes for one experiment."""
    out = f"results/{name}/report"
    figures = [f"{out}/{fig}.{ext}" for fig in REPORT_FIGURES for ext in ("png", "pdf")]
    return [
        f"{out}/report.html",
        f"{out}/comparison.csv",
        f"{out}/learners.csv",
    ] + figures


def final_targets():
    return [
        path
        for name in EXPERIMENTS
        for path in [f"results/{name}/tauint.csv"] + report_files(name)
    ]


wildcard_constraints:
    exp="[A-Za-z][A-Za-z0-9_-]*",
    lattice="[0-9]+(x[0-9]+)+",
    beta="[0-9][0-9.e+-]*",
    point="nlf[0-9]+_eps[0-9][0-9.e+-]*(_[a-z]+)?(_hits[0-9]+_size[0-9]+)?",
    kind="|".join(TRANSFER_KINDS),
    variant="[a-z][a-z0-9_]*",
