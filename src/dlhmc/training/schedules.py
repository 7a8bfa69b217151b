"""Learning-rate factor and annealing factor as pure functions of the step counter.

Nothing here is stored: a resumed run continues on exactly the learning rate and annealing
factor an uninterrupted run would have used because both are recomputed from the settings and
the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dlhmc.settings import ANNEAL_SCHEDULES, DECAYS


@dataclass(frozen=True)
class Schedule:
    """The step-dependent part of a training run."""

    steps: int
    warmup: int = 0
    decay: str = "cosine"
    decay_to: float = 0.1
    anneal_from: float = 1.0
    anneal_steps: int = 0
    anneal_schedule: str = "linear"

    def __post_init__(self):
        if self.decay not in DECAYS:
            raise ValueError(f"decay: expected one of {', '.join(DECAYS)}, got {self.decay!r}")
        if self.anneal_schedule not in ANNEAL_SCHEDULES:
            raise ValueError(
                f"anneal_schedule: expected one of {', '.join(ANNEAL_SCHEDULES)}, "
                f"got {self.anneal_schedule!r}"
            )

    @classmethod
    def of(cls, settings: Any) -> Schedule:
        """The schedule of a run's settings (any object with these attributes)."""
        return cls(
            steps=settings.steps,
            warmup=settings.warmup,
            decay=settings.decay,
            decay_to=settings.decay_to,
            anneal_from=settings.anneal_from,
            anneal_steps=settings.anneal_steps,
            anneal_schedule=settings.anneal_schedule,
        )

    def lr_factor(self, step: int) -> float:
        """Learning rate of iteration ``step`` (0-based) relative to the peak ``lr``.

        Linear warm-up over ``warmup`` steps (Adam's early moment estimates are noisy),
        then cosine or exponential decay to ``decay_to`` at the last step.
        """
        if step < self.warmup:
            return (step + 1) / self.warmup
        span = max(1, self.steps - self.warmup - 1)
        progress = min(1.0, (step - self.warmup) / span)
        if self.decay == "cosine":
            cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
            return self.decay_to + (1.0 - self.decay_to) * cosine
        if self.decay == "exp":
            return self.decay_to**progress
        return 1.0

    def gamma(self, step: int) -> float:
        """Annealing factor of iteration ``step``: ``anneal_from`` at 0, 1 from ``anneal_steps`` on.

        The target of the step is ``exp(-gamma S)``, i.e. the theory at ``gamma beta``; the L2HMC
        update is exact for any target, so the chain buffer follows the moving target.
        """
        if self.anneal_from >= 1.0 or step >= self.anneal_steps:
            return 1.0
        frac = step / self.anneal_steps
        g0 = self.anneal_from
        if self.anneal_schedule == "geometric":
            return g0 ** (1.0 - frac)
        return g0 + (1.0 - g0) * frac
