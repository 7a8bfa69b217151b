"""What determines a trained model: the settings of a run and the schedules derived from them.

Everything here is a pure function of the settings and the step counter, which is
what lets a resumed run continue on exactly the learning rate and annealing factor an
uninterrupted run would have used, without storing either.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from dlhmc.samplers.l2hmc import L2HMCConfig

DECAYS = ("cosine", "exp", "none")
ANNEAL_SCHEDULES = ("linear", "geometric")


@dataclass(frozen=True)
class TrainSettings:
    """Everything that determines the trained model; a resume must repeat all of it."""

    group: str
    lattice: tuple[int, ...]
    beta: float
    nlf: int
    steps: int
    batch: int
    hidden: tuple[int, ...]
    lr: float
    seed: int
    precision: str = "single"
    activation: str = "swish"
    eps_init: float = 0.1
    mask: str = "checkerboard"
    mask_seed: int = 0
    conv_channels: tuple[int, ...] = ()
    winding: int = 0
    warmup: int = 0
    decay: str = "cosine"
    decay_to: float = 0.1
    clip: float = 1.0
    anneal_from: float = 1.0
    anneal_steps: int = 0
    anneal_schedule: str = "linear"
    plaq_weight: float = 0.0
    init: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists for tuples), for checkpoints and config.yaml."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        kwargs = {}
        for f in fields(cls):
            if f.name in data:
                value = data[f.name]
                kwargs[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**kwargs)

    def l2hmc_config(self) -> L2HMCConfig:
        return L2HMCConfig(
            nlf=self.nlf,
            hidden=tuple(self.hidden),
            activation=self.activation,
            mask=self.mask,
            eps_init=self.eps_init,
            conv_channels=tuple(self.conv_channels),
            mask_seed=self.mask_seed,
            winding=self.winding,
        )


@dataclass
class RunOptions:
    """How a run is executed; none of it changes the trained model."""

    out: Path
    checkpoint_every: int
    device: str = "auto"
    progress: bool = True
    hash_log: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class TrainingError(ValueError):
    """A run directory or warm-start checkpoint that cannot be used with these settings.

    The message starts with the option at fault (``--init: ...``, ``--out: ...``).
    """


# --- schedules -------------------------------------------------------------------------------


def lr_factor(settings: TrainSettings, step: int) -> float:
    """Learning rate of iteration ``step`` (0-based) relative to ``lr``.

    Linear warm-up over ``warmup`` steps (Adam's early moment estimates are noisy),
    then cosine or exponential decay to ``decay_to`` at the last step.
    """
    if step < settings.warmup:
        return (step + 1) / settings.warmup
    span = max(1, settings.steps - settings.warmup - 1)
    progress = min(1.0, (step - settings.warmup) / span)
    if settings.decay == "cosine":
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return settings.decay_to + (1.0 - settings.decay_to) * cosine
    if settings.decay == "exp":
        return settings.decay_to**progress
    return 1.0


def gamma_at(settings: TrainSettings, step: int) -> float:
    """Annealing factor of iteration ``step``: ``anneal_from`` at 0, 1 from ``anneal_steps`` on."""
    if settings.anneal_from >= 1.0 or step >= settings.anneal_steps:
        return 1.0
    frac = step / settings.anneal_steps
    g0 = settings.anneal_from
    if settings.anneal_schedule == "geometric":
        return g0 ** (1.0 - frac)
    return g0 + (1.0 - g0) * frac
