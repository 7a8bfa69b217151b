"""The settings of one training run: a learner's settings at one beta (its ``overrides``), and a
run of another length with its schedules in proportion.

Why overrides: learning gets harder up the ladder. The charge freezes and a design's acceptance
falls, so a fine-tuning that is ample at beta 2 is short at beta 6 (the paper run's local model:
700 steps more than the 300 of its fine-tuning on 16x16 took ``N_LF tau_int(Q_R)`` at beta 6
from 1375 to 749, docs/results.md),
while one length for the whole ladder wastes CPU at its foot. An entry names its ``betas`` and
the settings it changes; entries apply in order, so a later one wins where two meet. Only how
long, how fast and on what a model trains can change (:data:`PER_BETA`): each beta's model
starts from the one below, so its shape and its kind of run are the learner's, at every beta.
"""

from __future__ import annotations

from collections.abc import Mapping

from dlhmc.plan.paths import beta_label

# The settings an override entry may change (the schema's list); ``betas`` selects.
PER_BETA = ("steps", "finetune_steps", "lr", "finetune_lr", "batch", "therm_hmc")


def shortened_settings(train: Mapping, steps: int) -> dict:
    """Training settings for a run of `steps` instead of train.steps; a configured warm-up or
    annealing length shrinks (or stretches) in proportion, so the schedules keep their shape and
    stay below the steps (unset ones take `dlhmc train`'s defaults, fractions of the steps
    already).
    """
    train = dict(train)
    for key, least in (("warmup", 0), ("anneal_steps", 1)):
        if key in train:
            train[key] = max(least, train[key] * steps // train["steps"])
    train["steps"] = steps
    return train


def settings_at(train: Mapping, beta: str) -> dict:
    """A learner's training settings at the beta labelled ``beta``: its settings without
    ``overrides``, changed by each entry that names the beta; an entry's steps stretches the
    configured schedules (:func:`shortened_settings`, from the learner's own steps)."""
    changes: dict = {}
    for entry in train.get("overrides", ()):
        if beta in (beta_label(b) for b in entry["betas"]):
            changes.update({k: v for k, v in entry.items() if k != "betas"})
    settings = {k: v for k, v in train.items() if k != "overrides"}
    if "steps" in changes:
        settings = shortened_settings(settings, changes.pop("steps"))
    return {**settings, **changes}


def override_problems(
    key: str, learner: str, exp: Mapping, train: Mapping, fine_tunes: bool
) -> list[str]:
    """One message per problem of the ``overrides`` that learner ``learner`` (``train`` or
    ``variants.<name>``, settings ``train`` merged) follows: a beta outside the ladder, an entry
    that changes nothing, fine-tuning settings of a learner that fine-tunes nothing
    (``fine_tunes``), a run too short to anneal. ``key`` is ``experiments.<name>``; entries a
    variant inherits are named where they are written, ``train.overrides[i]``."""
    variant = exp.get("variants", {}).get(learner.removeprefix("variants."), {})
    own = learner == "train" or "overrides" in variant
    written = learner if own else "train"
    suffix = "" if own else f" (inherited by {learner}; give it its own overrides)"
    problems = []
    for i, entry in enumerate(train.get("overrides", ())):
        where = f"{key}.{written}.overrides[{i}]"
        if own:
            problems += _entry_problems(where, entry, exp["betas"])
        for name in ("finetune_steps", "finetune_lr"):
            if name in entry and not fine_tunes:
                problems.append(
                    f"{where}.{name}: {learner} fine-tunes no model (it needs lattice and "
                    f"finetune_steps of its own){suffix}"
                )
        if fine_tunes and entry.get("finetune_steps") == 0:
            problems.append(
                f"{where}.finetune_steps: expected at least 1 (0 would sample these betas' "
                f"volumes with the small volume's model while the others fine-tune){suffix}"
            )
        for name in ("steps", "finetune_steps"):
            if train.get("anneal_from", 1.0) < 1.0 and entry.get(name) == 1:
                problems.append(
                    f"{where}.{name}: 1 step is too few to anneal ({learner}.anneal_from < 1 "
                    f"needs 2){suffix}"
                )
    return problems


def _entry_problems(where: str, entry: Mapping, betas) -> list[str]:
    ladder = [beta_label(b) for b in betas]
    problems = [
        f"{where}.betas: {beta} is not in the ladder {list(betas)}"
        for beta in entry["betas"]
        if beta_label(beta) not in ladder
    ]
    if not any(name in entry for name in PER_BETA):
        problems.append(f"{where}: changes no training setting, only selects betas")
    return problems
