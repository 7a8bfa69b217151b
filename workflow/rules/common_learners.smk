"""The learned samplers of an experiment: the ladder's model (`train`) and each of `variants`
(train settings merged over `train`), and the checks of their training settings that the schema
cannot express (a variant is validated against the train schema only once merged).
"""

# The config schema, for the variants merged into `train` (validate() fills the rest).
with open(os.path.join(workflow.current_basedir, "../schemas/config.schema.yaml")) as f:
    CONFIG_SCHEMA = yaml.safe_load(f)


def check_train(key, exp, train):
    """Checks of one learner's training settings (`train` or a variant merged into it); `key`
    names where they come from (experiments.X.train or experiments.X.variants.name)."""
    problems = []
    dims = GROUPS[exp["group"]].dims
    if train.get("warmup", 0) >= train["steps"]:
        problems.append(
            f"{key}.warmup: must be smaller than train.steps ({train['steps']}), "
            f"got {train['warmup']}"
        )
    if (
        train.get("anneal_from", 1.0) < 1.0
        and train.get("anneal_steps", 0) >= train["steps"]
    ):
        problems.append(
            f"{key}.anneal_steps: must be smaller than train.steps ({train['steps']}), "
            f"got {train['anneal_steps']}"
        )
    for option, message in unsupported_options(exp["group"], train):
        problems.append(f"{key}.{option}: {message}")
    if "lattice" in train:
        if len(train["lattice"]) != dims:
            problems.append(
                f"{key}.lattice: {exp['group']} needs {dims} extents, got {train['lattice']}"
            )
        if train.get("network", "dense") != "local":
            problems.append(
                f"{key}.lattice: only a network: local model runs on other volumes "
                f"than it was trained on (got network {train.get('network', 'dense')})"
            )
    return problems


def learners(exp):
    """Training settings of every learned sampler of an experiment, by config key: `train` (the
    ladder's model) and, for each of `variants`, `train` with the variant's settings replaced.
    """
    found = {"train": exp["train"]}
    for name, changes in exp.get("variants", {}).items():
        found[f"variants.{name}"] = {**exp["train"], **changes}
    return found


def validate_variants(name, exp):
    """Schema check of each variant merged into `train` (the schema itself cannot merge)."""
    problems = []
    validator = jsonschema.Draft202012Validator(
        {"$ref": "#/$defs/train", "$defs": CONFIG_SCHEMA["$defs"]}
    )
    for where, merged in learners(exp).items():
        if where == "train":  # validated with the config itself
            continue
        for err in validator.iter_errors(merged):
            key = ".".join(
                [f"experiments.{name}.{where}"]
                + ([config_key(err.absolute_path)] if err.absolute_path else [])
            )
            problems.append(f"{key}: {err.message}")
    return problems
