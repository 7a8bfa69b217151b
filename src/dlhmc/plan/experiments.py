"""The experiments of a workflow config: their checks beyond the schema, and their learners.

Each experiment trains one learner along its beta ladder (``train``) and one more per entry of
``variants`` (``train`` with the variant's settings replaced).  A variant is checked against the
train schema only once merged, because JSON schema cannot merge two mappings.  Every message
names the config key it is about (``experiments.<name>.<key>: ...``), so a wrong config stops
before any job with one line per problem.

A learner is an L2HMC sampler unless it says ``sampler: flow`` (a variant only: the ladder's own
model, which the beta transfer and every variant build on, is L2HMC).  A variant of another
sampler than ``train``'s inherits only the settings the samplers share (steps, batch, hidden,
lr, schedules, local_period, ...), not ``train``'s settings of its own sampler (nlf, winding,
network, ...): ``train`` describes the L2HMC ladder, and a flow variant that had to reset each
of them would break whenever ``train`` gained one.  A setting of another sampler given in a
learner's own block is refused, naming it (``dlhmc train`` refuses it too, one job later).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence

import jsonschema

from dlhmc.config_check import check_values, duplicate_keys, schedule_problems
from dlhmc.families.local_masks import mask_problem
from dlhmc.groups import GROUPS, MAX_INSTANTON_HITS, instanton_size_problem, unsupported_options
from dlhmc.plan.bridges import BRIDGE_SAMPLER, bridge_problems, with_defaults
from dlhmc.plan.hmc_grid import hmc_grid
from dlhmc.plan.inference import override_problems
from dlhmc.plan.paths import lattice_label
from dlhmc.plan.train_runs import override_problems as train_override_problems
from dlhmc.plan.train_runs import shortened_settings
from dlhmc.trained_samplers import SAMPLERS

# The sampler of a learner that names none: ``dlhmc train``'s default (``--sampler``; a test
# compares the two), and the only sampler of the ladder's own model.
LADDER_SAMPLER = "l2hmc"
# Learner settings the workflow reads itself, by the sampler they belong to: a flow's flow_hmc
# (the step count and size of its flow-HMC chains, dlhmc infer --flow-hmc --nlf --eps).
WORKFLOW_SETTINGS = {"flow": ("flow_hmc",)}


def config_key(path: Iterable) -> str:
    """Dotted config key of a jsonschema error path, e.g. experiments.u1.train.steps."""
    key = "config"
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key.removeprefix("config.")


def learner_key(variant: str | None) -> str:
    """The config key of a learner's training settings: ``train`` or ``variants.<name>``."""
    return "train" if variant is None else f"variants.{variant}"


def sampler_of(train: Mapping) -> str:
    """The sampler a learner trains: its ``sampler`` setting, else :data:`LADDER_SAMPLER`."""
    return train.get("sampler", LADDER_SAMPLER)


def sampler_settings(sampler: str) -> tuple[str, ...]:
    """The settings only ``sampler`` reads: its options of ``dlhmc train`` and the workflow's."""
    return SAMPLERS[sampler].options + WORKFLOW_SETTINGS.get(sampler, ())


def foreign_settings(sampler: str) -> dict[str, str]:
    """Settings of the other samplers that ``sampler`` does not read, each with its owner; none
    for a name outside the registry (check_values names that)."""
    if sampler not in SAMPLERS:
        return {}
    own = set(sampler_settings(sampler))
    found: dict[str, str] = {}
    for other in SAMPLERS:
        for key in sampler_settings(other) if other != sampler else ():
            if key not in own:
                found.setdefault(key, other)  # the first owner (flow_layers: flow, not bridge)
    return found


def learners(exp: Mapping) -> dict[str, dict]:
    """Training settings of every learned sampler of an experiment, by config key: `train` (the
    ladder's model) and, for each of `variants`, `train` with the variant's settings replaced;
    a variant of another sampler drops `train`'s settings that only `train`'s sampler reads.
    """
    train = exp["train"]
    found = {"train": train}
    for name, changes in exp.get("variants", {}).items():
        foreign = foreign_settings(changes.get("sampler", sampler_of(train)))
        shared = {key: value for key, value in train.items() if key not in foreign}
        found[learner_key(name)] = {**shared, **changes}
    return found


def is_flow(train: Mapping) -> bool:
    """Whether a learner trains a flow (sampled twice: independence Metropolis and flow HMC)."""
    return sampler_of(train) == "flow"


def runs_on_any_volume(train: Mapping) -> bool:
    """Whether a learner's models run on other volumes than their own: network local, or a
    flow (its coupling layers are local too, and the same weights fit every volume)."""
    return train.get("network", "dense") == "local" or is_flow(train)


def train_shape(train: Mapping, lattice_shape: Sequence[int]) -> Sequence[int]:
    """The volume a model for `lattice_shape` is trained on: the learner's lattice when given."""
    return train.get("lattice", lattice_shape)


def transfer_steps(exp: Mapping) -> int:
    """Steps of the short retraining of the beta transfer: beta_transfer of train.steps."""
    return max(1, round(exp["beta_transfer"] * exp["train"]["steps"]))


def transfer_train_settings(exp: Mapping) -> dict:
    """The ladder's training settings with beta_transfer of its steps."""
    return shortened_settings(exp["train"], transfer_steps(exp))


# Where a fine-tuning run starts (train.finetune_from), the first the default: the fine-tuned
# model of the beta below on the same volume (a chain up the ladder on the large volume), or
# the model of train.lattice at the same beta. Measured on 16x16 at beta 6 (docs/results.md):
# the chain from below smooths away the small model's opening of the lattice and with it the
# charge moves (2.2x HMC's rate per leapfrog step), a fine-tuning of the same beta's small model
# keeps them (13x after 400 steps at lr 1e-3).
FINETUNE_FROM = ("beta_below", "train_lattice")


def finetune_from(train: Mapping) -> str:
    """Where the learner's fine-tuning runs start: :data:`FINETUNE_FROM`."""
    return train.get("finetune_from", FINETUNE_FROM[0])


def finetunes(train: Mapping) -> bool:
    """Whether a learner follows the volume curriculum: its models, trained on train.lattice,
    are fine-tuned for finetune_steps on every other sampled volume (0 or absent: they sample
    those volumes unchanged, as before the curriculum existed)."""
    return "lattice" in train and train.get("finetune_steps", 0) > 0


def finetune_train_settings(train: Mapping) -> dict:
    """A learner's settings for one fine-tuning run: finetune_steps steps (schedules shortened
    in proportion) at finetune_lr, which defaults to the learner's lr."""
    settings = shortened_settings(train, train["finetune_steps"])
    settings["lr"] = train.get("finetune_lr", train.get("lr"))
    if settings["lr"] is None:
        del settings["lr"]
    return settings


def _finetune_problems(key: str, train: Mapping) -> list[str]:
    """The volume curriculum needs a local model trained on train.lattice, and enough steps to
    anneal when the learner anneals; a finetune_lr without finetune_steps would do nothing."""
    steps = train.get("finetune_steps", 0)
    for name in ("finetune_lr", "finetune_from"):
        if name in train and "finetune_steps" not in train:
            return [f"{key}.{name}: set without finetune_steps, so nothing is fine-tuned"]
    if steps == 0:
        return []
    problems = []
    if "lattice" not in train:
        problems.append(
            f"{key}.finetune_steps: fine-tunes the models trained on {key}.lattice on the other "
            "volumes; set lattice (the small training volume) too, or finetune_steps: 0"
        )
    if not runs_on_any_volume(train):
        problems.append(
            f"{key}.finetune_steps: only a network: local model or a flow can be fine-tuned on "
            f"another volume (got network {train.get('network', 'dense')})"
        )
    if train.get("anneal_from", 1.0) < 1.0 and steps < 2:
        problems.append(
            f"{key}.finetune_steps: 1 step is too few to anneal ({key}.anneal_from < 1 needs 2)"
        )
    return problems


def check_train(key: str, exp: Mapping, train: Mapping) -> list[str]:
    """Checks of one learner's training settings (`train` or a variant merged into it); `key`
    names where they come from (experiments.X.train or experiments.X.variants.name)."""
    schedule = schedule_problems(
        train["steps"], train.get("warmup"), train.get("anneal_from", 1.0),
        train.get("anneal_steps"), "train.steps",
    )  # fmt: skip
    problems = [
        f"{key}.{name}: {message}"
        for name, message in [*schedule, *unsupported_options(exp["group"], train)]
    ]
    if "lattice" in train:
        dims = GROUPS[exp["group"]].dims
        if len(train["lattice"]) != dims:
            problems.append(
                f"{key}.lattice: {exp['group']} needs {dims} extents, got {train['lattice']}"
            )
        if not runs_on_any_volume(train):
            problems.append(
                f"{key}.lattice: only a network: local model or a flow runs on other volumes "
                f"than it was trained on (got network {train.get('network', 'dense')})"
            )
    return problems + _finetune_problems(key, train)


def _sampler_problems(key: str, learner: str, exp: Mapping, train: Mapping) -> list[str]:
    """The ladder's learner is L2HMC; a learner names no setting of another sampler (a variant
    inherits none: :func:`learners`); a sampler runs on the groups it is implemented for.
    ``key`` names the learner's settings (experiments.X.train or experiments.X.variants.Y),
    ``learner`` is ``train`` or ``variants.Y``."""
    sampler = sampler_of(train)
    if sampler not in SAMPLERS:
        return []  # named by check_values
    if sampler == BRIDGE_SAMPLER:
        return [
            f"{key}.sampler: a bridge joins two betas and is no learner of the ladder; set the "
            "experiment's bridges: true instead"
        ]
    if learner == "train" and sampler != LADDER_SAMPLER:
        return [
            f"{key}.sampler: the ladder's own learner is {LADDER_SAMPLER} (the beta transfer "
            f"and the variants build on it); give a {sampler} as a variant, "
            f"variants.<name>: {{sampler: {sampler}}}"
        ]
    problems = [
        f"{key}.{name}: a setting of sampler {owner}, not of this learner's sampler "
        f"{sampler}; remove it"
        for name, owner in foreign_settings(sampler).items()
        if name in train
    ]
    groups = SAMPLERS[sampler].groups
    if groups is not None and exp["group"] not in groups:
        problems.append(
            f"{key}.sampler: {sampler} is implemented for {', '.join(groups)} only, got group "
            f"{exp['group']}"
        )
    return problems


def _mask_problems(key: str, learner: str, exp: Mapping, train: Mapping) -> list[str]:
    """A local model or a flow runs on its training volume and on every volume of `lattices`:
    its link masks must fit each, or the first job on that volume fails after the ladder below
    it.  ``key`` names the experiment, ``learner`` the settings (``train`` or
    ``variants.<name>``)."""
    if not runs_on_any_volume(train):
        return []
    what = "is a flow" if is_flow(train) else "has network local"
    volumes = [(f"{key}.{learner}.lattice", train["lattice"])] if "lattice" in train else []
    volumes += [(f"{key}.lattices[{i}]", shape) for i, shape in enumerate(exp["lattices"])]
    problems = []
    for where, shape in volumes:
        problem = mask_problem(exp["group"], shape, train.get("local_period", 4))
        if problem:
            problems.append(f"{where}: {problem} ({key}.{learner} {what})")
    return problems


def _instanton_problems(key: str, exp: Mapping) -> list[str]:
    """Instanton hits for a group without them, and hit sizes that do not fit every volume."""
    hmc = exp["hmc"]
    sizes = {("hmc", size) for size in hmc["instanton_size"]}
    hits = {("hmc", k) for k in hmc["instanton_hits"] if k > 0}
    for i, p in enumerate(hmc.get("points", [])):
        if p.get("instanton_hits", 0):
            hits.add((f"hmc.points[{i}]", p["instanton_hits"]))
            sizes.add((f"hmc.points[{i}]", p.get("instanton_size", 0)))
    problems = [
        f"{key}.{where}.instanton_hits: expected at most {MAX_INSTANTON_HITS} hits per "
        f"trajectory, got {k}"
        for where, k in sorted(hits) if k > MAX_INSTANTON_HITS
    ]
    for where, _ in sorted(hits):
        for option in ("instanton_hits", "instanton_size"):
            for _, message in unsupported_options(exp["group"], {option: True}):
                problems.append(f"{key}.{where}.{option}: {message}")
    if not hits or "instanton_size" not in GROUPS[exp["group"]].options:
        return problems
    extents = [n for shape in exp["lattices"] for n in shape]
    for where, size in sorted(sizes):
        problem = instanton_size_problem(size, extents)
        if problem is not None:
            problems.append(f"{key}.{where}.instanton_size: {problem}")
    return problems


def check_experiment(name: str, exp: Mapping) -> list[str]:
    """Checks the schema cannot express; returns one message per problem, naming the key."""
    key = f"experiments.{name}"
    problems = check_values(name, exp)
    if exp["group"] not in GROUPS:
        return problems  # named by check_values; nothing else can be checked without a group
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
        problems += _sampler_problems(f"{key}.{where}", where, exp, train)
        problems += _mask_problems(key, where, exp, train)
        problems += train_override_problems(key, where, exp, train, finetunes(train))
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
    if any(b <= a for a, b in zip(betas[:-1], betas[1:], strict=True)):
        problems.append(f"{key}.betas: must be strictly increasing, got {betas}")
    if not hmc_grid(exp):
        problems.append(f"{key}.hmc: no grid points; give nlf and length, or points")
    problems += override_problems(key, exp, list(learners(exp)))
    return problems + _instanton_problems(key, exp) + bridge_problems(key, exp)


def variant_problems(name: str, exp: Mapping, schema: Mapping) -> list[str]:
    """Schema check of each variant merged into `train` (the schema itself cannot merge);
    ``schema`` is workflow/schemas/config.schema.yaml, loaded."""
    problems = []
    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/train", "$defs": schema["$defs"]})
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


def load_experiments(config: Mapping, schema: Mapping, configfiles: Iterable) -> dict[str, dict]:
    """The experiments of a config that passed the schema (its defaults filled in), each an
    independent copy with the HMC run lengths resolved from the infer settings.

    Raises ``ValueError("Invalid config:\\n  <one problem per line>")``: keys given twice in a
    config file and variants that fail the schema first, then every other check (which may
    assume the schema's types).
    """
    experiments = copy.deepcopy(dict(config["experiments"]))
    problems = [p for path in configfiles for p in duplicate_keys(path)]
    for name, exp in experiments.items():
        problems += variant_problems(name, exp, schema)
    if not problems:
        for name, exp in experiments.items():
            with_defaults(exp, schema)
            problems += check_experiment(name, exp)
    if problems:
        raise ValueError("Invalid config:\n  " + "\n  ".join(problems))
    for exp in experiments.values():
        for setting in ("chains", "trajectories", "therm"):
            exp["hmc"].setdefault(setting, exp["infer"][setting])
    return experiments
