"""Bridges and replica exchange in the plan (experiment keys ``bridges`` and ``trex``).

``bridges`` (``true``, or a mapping of settings) trains, on every volume, one bridge flow per
neighbouring pair ``b_k < b_k+1`` of the ladder on the stored configurations of the HMC ensemble
at ``b_k`` (``dlhmc train --sampler bridge --beta-from b_k --beta b_k+1 --data ...``), and runs
``dlhmc derivative`` on each pair; with ``bridges.spacings`` also one bridge and one derivative
from every beta ``b`` of the ladder to ``b + s`` for each spacing ``s`` (:func:`bridge_sources`).
``trex`` runs replica exchange over the whole ladder of every volume: plain parallel tempering
always, and T-REX through the bridges where ``bridges`` is on.

Why the ensemble is its own job: storing configurations is an option of the HMC run
(``--save-every``), and adding it to a finished grid point would change that job's command line
and rerun it.  So the ensemble at each beta is the grid's run of one point repeated with the same
seed and settings plus ``--save-every`` (``hmc/<point>_save<K>.nc``): the same Markov chains with
the links stored, a new job that reruns nothing.  Its chains duplicate the grid point's, so it
stays out of the analysis.  The bridges train on a second run of the point with another seed
(``_train``, :mod:`dlhmc.plan.bridge_jobs` says why).

Defaults: ``bridges: true`` is the empty mapping, filled with the schema's defaults (the
workflow's own settings, ``save_every`` and the masks' ``local_period``); every training setting
left out takes ``dlhmc train``'s default, and every ``trex`` setting ``dlhmc trex``'s.
"""

from __future__ import annotations

from collections.abc import Mapping

from dlhmc.families.local_masks import mask_problem
from dlhmc.groups import resolve_integrator
from dlhmc.plan.hmc_grid import Point, hmc_label, hmc_points
from dlhmc.plan.paths import beta_label, eps_label

# Bridge settings the workflow reads itself (the ensemble, the spacings); every other one is a
# train option.
WORKFLOW_SETTINGS = ("hmc", "save_every", "spacings")
# Significant digits of b + s in its beta label: 2.2 + 0.1 is 2.3, not 2.3000000000000003.
SPACING_DIGITS = 12
# The gauge groups a bridge flow is implemented for (dlhmc.flows.model.GROUPS, which imports
# torch; tests/test_plan_bridges.py compares the two).
FLOW_GROUPS = ("U1",)
# The sampler `dlhmc train` trains a bridge with.
BRIDGE_SAMPLER = "bridge"


def bridge_settings(exp: Mapping) -> dict | None:
    """The experiment's bridge settings (``true`` is ``{}``), or ``None`` when bridges are off."""
    value = exp.get("bridges", False)
    if value is False or value is None:
        return None
    return {} if value is True else dict(value)


def trex_settings(exp: Mapping) -> dict | None:
    """The experiment's replica-exchange settings, or ``None`` when off."""
    value = exp.get("trex")
    return None if value is None else dict(value)


def exchanges(exp: Mapping) -> tuple[str, ...]:
    """The replica-exchange runs of every volume: ``pt`` with ``trex``, and ``trex`` with
    bridges too."""
    if trex_settings(exp) is None:
        return ()
    return ("pt", "trex") if bridge_settings(exp) is not None else ("pt",)


def switches_as_mappings(config: Mapping) -> None:
    """``bridges: true`` -> ``{}`` and ``bridges: false`` dropped, in every experiment of a
    config, before the schema check: Snakemake's ``validate`` fills the schema's defaults into
    a mapping, and trips over a boolean where the schema has defaults."""
    experiments = config.get("experiments") if isinstance(config, Mapping) else None
    for exp in experiments.values() if isinstance(experiments, Mapping) else ():
        if isinstance(exp, dict) and exp.get("bridges") is True:
            exp["bridges"] = {}
        elif isinstance(exp, dict) and exp.get("bridges") is False:
            del exp["bridges"]


def with_defaults(exp: dict, schema: Mapping) -> None:
    """Resolve ``bridges: true`` (or a mapping) into a mapping with the schema's defaults, and
    drop ``bridges: false``; Snakemake fills defaults into mappings only."""
    settings = bridge_settings(exp)
    if settings is None:
        exp.pop("bridges", None)
        return
    for name, prop in schema["$defs"]["bridges"]["properties"].items():
        if "default" in prop:
            settings.setdefault(name, prop["default"])
    exp["bridges"] = settings


def ensemble_point(exp: Mapping) -> Point | None:
    """The HMC point whose ensemble the bridges train on: ``bridges.hmc``, else the plain point
    of the grid (the group's default integrator, no instanton hits) with the longest trajectory
    ``nlf * eps``, then the most steps; ``None`` when the grid has no such point."""
    settings = bridge_settings(exp) or {}
    integrator = resolve_integrator(exp["group"], "auto")
    if "hmc" in settings:
        return settings["hmc"]["nlf"], eps_label(settings["hmc"]["eps"]), integrator, 0, 0
    plain = [p for p in hmc_points(exp).values() if p[2] == integrator and p[3] == 0]
    if not plain:
        return None
    return max(plain, key=lambda p: (p[0] * float(p[1]), p[0]))


def ensemble_label(exp: Mapping) -> str | None:
    """File stem of the ensemble run at each beta: the point's label and ``_save<K>``."""
    point = ensemble_point(exp)
    if point is None or bridge_settings(exp) is None:
        return None
    return f"{hmc_label(*point)}_save{bridge_settings(exp).get('save_every', 0)}"


def training_label(exp: Mapping) -> str | None:
    """File stem of the bridges' training ensemble at each beta (:mod:`dlhmc.plan.bridge_jobs`
    says why a second ensemble): the ensemble's, ``_train``."""
    label = ensemble_label(exp)
    return None if label is None else f"{label}_train"


def _spacing_pairs(exp: Mapping) -> list[tuple[str, str]]:
    """``(label of b + s, label of b)`` for every beta ``b`` of the ladder and every ``s`` of
    ``bridges.spacings``; none without it."""
    spacings = (bridge_settings(exp) or {}).get("spacings", [])
    return [(beta_label(float(format(b + s, f".{SPACING_DIGITS}g"))), beta_label(b))
            for s in spacings for b in exp["betas"]]


def bridge_sources(exp: Mapping) -> dict[str, str]:
    """Every bridge of a volume as ``{beta label it leads into: beta label it starts from}``:
    each beta of the ladder above the first from its neighbour below (the pairs of the replica
    exchange), and with ``bridges.spacings`` each ``b + s`` from ``b`` (empty without bridges).

    Why other spacings than the ladder's: the bridge-correlated derivative gains over
    independent ensembles as the step shrinks (its error stays while theirs grows as 1 / step)
    and over reweighting as it widens, while replica exchange wants the spacing that a few
    replicas span.  One bridge leads into each beta (:func:`bridge_problems`): a ``b + s`` on
    the ladder must be ``b``'s neighbour above, and then both are the same bridge, one job."""
    if bridge_settings(exp) is None:
        return {}
    labels = [beta_label(b) for b in exp["betas"]]
    sources = dict(zip(labels[1:], labels[:-1], strict=True))
    for target, source in _spacing_pairs(exp):
        sources.setdefault(target, source)
    return sources


def bridge_train_settings(exp: Mapping) -> dict:
    """The bridges' `dlhmc train` settings (without the workflow's own), in config order."""
    settings = bridge_settings(exp) or {}
    return {k: v for k, v in settings.items() if k not in WORKFLOW_SETTINGS}


def _hmc_trajectories(exp: Mapping) -> int | None:
    hmc, infer = exp.get("hmc", {}), exp.get("infer", {})
    return hmc.get("trajectories", infer.get("trajectories"))


def bridge_problems(key: str, exp: Mapping) -> list[str]:
    """Checks of ``bridges`` and ``trex`` the schema cannot express; ``key`` is
    ``experiments.<name>``.  Assumes a known group (check_experiment stops before otherwise)."""
    problems = []
    settings = bridge_settings(exp)
    betas = exp["betas"]
    for name, on in (("bridges", settings is not None), ("trex", "trex" in exp)):
        if on and len(betas) < 2:
            problems.append(
                f"{key}.{name}: needs at least 2 betas (it joins neighbouring betas of the "
                f"ladder), got {len(betas)}"
            )
    if settings is None:
        return problems
    group = exp["group"]
    if group not in FLOW_GROUPS:
        return problems + [
            f"{key}.bridges: bridge flows are implemented for {', '.join(FLOW_GROUPS)} only, "
            f"got group {group}"
        ]
    if ensemble_point(exp) is None:
        integrator = resolve_integrator(group, "auto")
        problems.append(
            f"{key}.bridges.hmc: the HMC grid has no plain {integrator} point (no instanton "
            "hits) whose ensemble the bridges could train on; give bridges.hmc: {nlf, eps}"
        )
    every, trajectories = settings.get("save_every"), _hmc_trajectories(exp)
    if isinstance(every, int) and isinstance(trajectories, int) and every > trajectories:
        problems.append(
            f"{key}.bridges.save_every: {every} keeps no configuration of the "
            f"{trajectories} recorded HMC trajectories (hmc.trajectories)"
        )
    labels = [beta_label(b) for b in betas]
    sources = dict(zip(labels[1:], labels[:-1], strict=False))
    for target, source in _spacing_pairs(exp):
        if sources.setdefault(target, source) != source:
            problems.append(
                f"{key}.bridges.spacings: beta {target} is reached from {sources[target]} and "
                f"from {source}; one bridge leads into each beta, so b + spacing must land "
                "off the ladder or on b's neighbour above, and on no other b + spacing"
            )
            break
    warmup, steps = settings.get("warmup"), settings.get("steps")
    if isinstance(warmup, int) and isinstance(steps, int) and warmup >= steps:
        problems.append(
            f"{key}.bridges.warmup: must be smaller than bridges.steps ({steps}), got {warmup}"
        )
    period = settings.get("local_period", 4)
    for i, shape in enumerate(exp["lattices"]):
        problem = mask_problem(group, shape, period)
        if problem:
            problems.append(f"{key}.lattices[{i}]: {problem} ({key}.bridges are flows)")
    return problems
