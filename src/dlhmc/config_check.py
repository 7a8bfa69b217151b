"""Checks of the workflow config that the JSON schema cannot express, naming the key.

Torch-free (Snakemake imports it while planning); the commands apply the rules they share with the
workflow from here too (the largest training seed, the schedule lengths), so each is written once.

Why these: JSON schema's ``integer`` accepts ``400.0`` and its ``number`` accepts NaN and
infinities, so such values pass ``snakemake -n``, plan every job, and fail in the jobs
(``dlhmc train --steps 400.0``) or produce paths no rule makes (``lattices: [[8.0, 8.0]]`` ->
``8.0x8.0``, a ``MissingInputException`` naming no key).  Seeds beyond the generators' range and
runs too short for the analysis fail the same way, hours later; and PyYAML keeps the last of two
equal keys silently, so a duplicated ``betas:`` runs another ladder than the one the user reads
first.
"""

from __future__ import annotations

import math
import os
import re

import yaml

from dlhmc.analysis.requirements import MIN_TRAJ
from dlhmc.families import NETWORKS
from dlhmc.groups import GROUPS
from dlhmc.trained_samplers import SAMPLERS

# Keys whose values (or items, ``[]``) are integers in workflow/schemas/config.schema.yaml
# (tests/test_config_check.py compares this list with the schema).
INTEGER_KEYS = frozenset({
    "lattices[][]", "seed",
    "train.finetune_steps",
    "train.steps", "train.lattice[]", "train.batch", "train.nlf", "train.hidden[]",
    "train.checkpoint_every", "train.ranks", "train.mask_seed", "train.local_period",
    "train.conv_channels[]", "train.warmup", "train.anneal_steps", "train.winding",
    "train.therm_hmc", "train.flow_layers", "train.flow_hmc.nlf", "train.overrides[].steps",
    "train.overrides[].finetune_steps", "train.overrides[].batch", "train.overrides[].therm_hmc",
    "infer.chains", "infer.trajectories", "infer.therm", "infer.therm_hmc",
    "infer.layer_samples", "infer.overrides[].chains", "infer.overrides[].trajectories",
    "infer.overrides[].therm", "infer.overrides[].therm_hmc", "infer.overrides[].layer_samples",
    "hmc.nlf[]", "hmc.points[].nlf", "hmc.points[].instanton_hits",
    "hmc.points[].instanton_size", "hmc.instanton_hits[]", "hmc.instanton_size[]",
    "hmc.chains", "hmc.trajectories", "hmc.therm",
    "analyze.amortize_samples",
    "bridges.hmc.nlf", "bridges.save_every", "bridges.steps", "bridges.batch",
    "bridges.flow_layers", "bridges.hidden[]", "bridges.local_period", "bridges.warmup",
    "bridges.checkpoint_every",
    "trex.nlf", "trex.chains", "trex.trajectories", "trex.therm", "trex.swap_every",
})  # fmt: skip
# Keys whose value names an entry of a registry: the registry is the one list of the names (a new
# gauge group or network family is one registry line), so the schema states no enum for them and
# they are checked here (tests/test_settings_sources.py compares them with the command's choices).
REGISTRY_KEYS = {
    "group": tuple(GROUPS), "train.network": NETWORKS, "train.sampler": tuple(SAMPLERS),
}  # fmt: skip
# Training seeds torch's global generator with ``seed`` (``manual_seed`` of the network
# initialization takes 63 bits), rank r with ``seed + r``, inference with ``seed + 1`` and HMC
# with ``seed + 2``: every derived seed must stay within the training limit (``dlhmc train``
# refuses a larger ``--seed`` with this limit too).
MAX_TRAIN_SEED = 2**63 - 1
SEED_OFFSETS = 2


# ``variants.<name>.<key>`` holds the train setting ``<key>`` of one more learned sampler.
_VARIANT = re.compile(r"^variants\.[^.\[]+")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _leaves(value, path: str, pattern: str):
    """``(dotted path, pattern with [] for list items, value)`` of every scalar under ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            dot = "." if path else ""
            yield from _leaves(item, f"{path}{dot}{key}", f"{pattern}{dot}{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]", f"{pattern}[]")
    else:
        yield path, pattern, value


def check_values(name, exp) -> list[str]:
    """One message per problem of experiment ``name``, each naming ``experiments.<name>.<key>``:
    non-integer integers, NaN and infinities, seeds out of range and runs too short to analyze.
    Never raises, whatever ``exp`` holds (the schema reports wrong types by itself)."""
    key = f"experiments.{name}"
    if not isinstance(exp, dict):
        return [f"{key}: expected a mapping of settings, got {exp!r}"]
    problems = []
    for path, pattern, value in _leaves(exp, "", ""):
        pattern = _VARIANT.sub("train", pattern)  # a variant's settings are train settings
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{key}.{path}: expected a finite number, got {value}")
        elif pattern in INTEGER_KEYS and not _is_int(value):
            problems.append(f"{key}.{path}: expected an integer, got {value!r}")
        elif pattern in REGISTRY_KEYS and value not in REGISTRY_KEYS[pattern]:
            problems.append(f"{key}.{path}: expected one of "
                            f"{', '.join(REGISTRY_KEYS[pattern])}, got {value!r}")
    problems += _check_seed(key, exp)
    for section, settings in _run_lengths(exp):
        trajectories = settings.get("trajectories") if isinstance(settings, dict) else None
        if _is_int(trajectories) and trajectories < MIN_TRAJ:
            problems.append(
                f"{key}.{section}.trajectories: the analysis needs at least {MIN_TRAJ} "
                f"trajectories per chain, got {trajectories}"
            )
    return problems


def _run_lengths(exp: dict):
    """``(key, settings)`` of every block that sets a chain length: infer, hmc, trex and each
    entry of infer.overrides."""
    for section in ("infer", "hmc", "trex"):
        yield section, exp.get(section)
    infer = exp.get("infer")
    overrides = infer.get("overrides") if isinstance(infer, dict) else None
    for i, entry in enumerate(overrides if isinstance(overrides, list) else []):
        yield f"infer.overrides[{i}]", entry


def schedule_problems(
    steps: int, warmup: int | None, anneal_from: float, anneal_steps: int | None, steps_key: str
) -> list[tuple[str, str]]:
    """``(setting, message)`` for a warm-up or annealing that does not end before the last step.

    A warm-up as long as the run never reaches the peak learning rate, and an annealing as long
    as the run leaves gamma_t below 1 at the last step: the model never sees the target beta.
    ``None`` is a setting left to its default (a fraction of ``steps``, always shorter);
    ``steps_key`` names the steps in the messages (``--steps`` or ``train.steps``).
    """
    problems = []
    if warmup is not None and warmup >= steps:
        problems.append(
            ("warmup", f"must be smaller than {steps_key} ({steps}), got {warmup}")
        )
    if anneal_from < 1.0 and anneal_steps is not None and anneal_steps >= steps:
        problems.append(
            ("anneal_steps", f"must be smaller than {steps_key} ({steps}), got {anneal_steps}")
        )
    return problems


def _check_seed(key: str, exp: dict) -> list[str]:
    seed = exp.get("seed")
    train = exp.get("train")
    ranks = train.get("ranks", 1) if isinstance(train, dict) else 1
    if not (_is_int(seed) and _is_int(ranks)):
        return []  # reported above (or by the schema)
    largest = MAX_TRAIN_SEED - max(ranks - 1, SEED_OFFSETS)
    if 0 <= seed <= largest:
        return []
    return [
        f"{key}.seed: expected an integer in [0, {largest}] (training rank r uses seed + r, "
        f"inference seed + 1, HMC seed + 2), got {seed}"
    ]


def duplicate_keys(path: str | os.PathLike) -> list[str]:
    """One message per mapping key given twice in the YAML file ``path``, with its dotted key
    path and both lines.  A file that cannot be read or parsed gives none: the config loader
    reports it."""
    try:
        with open(path) as handle:
            root = yaml.compose(handle, Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return []
    problems: list[str] = []
    _duplicates(root, "", str(path), problems, set())
    return problems


def _duplicates(node, path: str, where: str, problems: list[str], visited: set) -> None:
    if id(node) in visited:  # an alias: its keys were checked where it is defined
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            dotted = f"{path}.{name}" if path else str(name)
            if name is not None and name != "<<":
                if name in seen:
                    problems.append(
                        f"{where}: {dotted}: duplicated key (lines {seen[name]} and "
                        f"{key_node.start_mark.line + 1}; YAML would keep the last one silently)"
                    )
                else:
                    seen[name] = key_node.start_mark.line + 1
            _duplicates(value_node, dotted, where, problems, visited)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicates(item, f"{path}[{i}]", where, problems, visited)
