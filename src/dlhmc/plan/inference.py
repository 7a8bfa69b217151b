"""The inference settings of one learner's chains at one beta: ``infer`` and its ``overrides``.

Why overrides: a sampler's ``tau_int`` of the charge grows steeply with beta, and the Gamma
method resolves it only in chains at least ``MIN_CHAIN_TAUS`` ``tau_int`` long. One chain length
for the whole ladder is either wasted at its foot or too short at its top (the paper run's local
model: ~1600 trajectories resolve beta 2-4, beta 6-7 need ~6400), and learners of one ladder
differ as much. Each entry of ``infer.overrides`` names the learners (their config keys,
``train`` or ``variants.<name>``, as every message does) and the betas it applies to; entries
apply in order, so a later one wins where two meet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dlhmc.plan.paths import beta_label

# The keys of an override entry that select chains; every other key is an infer setting.
SELECTORS = ("learners", "betas")


def infer_settings(exp: Mapping, learner: str, beta: str) -> dict:
    """The infer settings of learner ``learner`` (``train`` or ``variants.<name>``) at the beta
    labelled ``beta``: ``infer`` without its overrides, then each entry that selects them."""
    infer = exp.get("infer", {})
    settings = {key: value for key, value in infer.items() if key != "overrides"}
    for entry in infer.get("overrides", ()):
        if learner in entry.get("learners", (learner,)) and beta in _labels(
            entry.get("betas", exp["betas"])
        ):
            settings.update({k: v for k, v in entry.items() if k not in SELECTORS})
    return settings


def override_problems(key: str, exp: Mapping, have: Sequence[str]) -> list[str]:
    """One message per override entry that selects a learner or beta the experiment does not
    have, or changes nothing, naming ``<key>.infer.overrides[i]...``; ``key`` is
    ``experiments.<name>``, ``have`` its learners' keys."""
    problems = []
    ladder = _labels(exp["betas"])
    for i, entry in enumerate(exp.get("infer", {}).get("overrides", ())):
        where = f"{key}.infer.overrides[{i}]"
        for name in entry.get("learners", ()):
            if name not in have:
                problems.append(
                    f"{where}.learners: no learner {name!r} in the experiment (have "
                    f"{', '.join(have)})"
                )
        for beta in entry.get("betas", ()):
            if beta_label(beta) not in ladder:
                problems.append(f"{where}.betas: {beta} is not in the ladder {exp['betas']}")
        if all(k in SELECTORS for k in entry):
            problems.append(f"{where}: changes no infer setting, only selects chains")
    return problems


def _labels(betas) -> list[str]:
    return [beta_label(b) for b in betas]
