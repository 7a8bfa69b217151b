"""One source of defaults, ranges and choices of ``dlhmc train``, ``dlhmc hmc``, ``dlhmc infer``.

Each setting is a dataclass field whose metadata says how it is given on the command line (help
text, range or choices, several values or one).  The argparse options are generated from these
fields (``dlhmc.commands.options.add_settings``) and ``tests/test_settings_sources.py`` checks that
``workflow/schemas/config.schema.yaml`` states the same defaults, ranges and choices, so a default
is written once.  The choices themselves are defined where their meaning lives (groups, masks,
networks, activations, precisions) and imported here, and so are the defaults of the
sampler's architecture (:class:`~dlhmc.samplers.l2hmc.L2HMCConfig`), so that a model built in
Python without settings is the model ``dlhmc train`` builds by default.

The names of the learning-rate decays and annealing schedules are the exception: they are
defined here and :mod:`dlhmc.training.schedules` imports them, because training reads its settings
from this module and must not be imported by it.

``TrainSettings`` is everything that determines a trained model (a resume must repeat all of it);
``RunOptions`` is how a training run is executed and changes nothing in the model.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from dlhmc.families import NETWORKS
from dlhmc.families.dense import MASKS
from dlhmc.families.local import PERIODS
from dlhmc.groups import GROUPS, groups_with
from dlhmc.lattice import PRECISIONS
from dlhmc.nets import ACTIVATIONS
from dlhmc.samplers.integrators import INTEGRATORS
from dlhmc.samplers.l2hmc import L2HMCConfig

# Initial links of HMC chains: uniform (hot) or unit (cold).
STARTS = ("hot", "cold")
# Largest seed of one generator: torch generators take 64-bit seeds (training, whose ranks seed
# with seed + r, has its own limit: dlhmc.config_check.MAX_TRAIN_SEED).
MAX_SEED = 2**64 - 1
# Learning-rate decays after the warm-up, and the schedules of gamma_t (dlhmc.training.schedules).
DECAYS = ("cosine", "exp", "none")
ANNEAL_SCHEDULES = ("linear", "geometric")
# Defaults of the sampler's architecture (nlf, hidden, mask, network, ...).
MODEL_DEFAULTS = {f.name: f.default for f in fields(L2HMCConfig)}


@dataclass(frozen=True)
class Range:
    """A number's type and bounds, and the messages that say what was expected.

    ``bad`` is the message for text that is not a number of this type, ``out`` for a number
    outside the bounds (format fields ``text`` and ``value``).  Floats must also be finite.
    """

    name: str
    number_type: type  # int or float
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    bad: str = ""
    out: str = ""

    def contains(self, value) -> bool:
        if self.number_type is float and not math.isfinite(value):
            return False
        if self.minimum is not None and not value >= self.minimum:
            return False
        if self.exclusive_minimum is not None and not value > self.exclusive_minimum:
            return False
        return self.maximum is None or value <= self.maximum

    def parse(self, text: str):
        """The number ``text`` states; ``ValueError`` with the expectation otherwise."""
        try:
            value = self.number_type(text)
        except ValueError:
            raise ValueError(self.bad.format(text=text)) from None
        if not self.contains(value):
            raise ValueError(self.out.format(text=text, value=value))
        return value

    def schema(self) -> dict[str, Any]:
        """The same range in JSON-schema words (as in workflow/schemas/config.schema.yaml)."""
        words: dict[str, Any] = {"type": "integer" if self.number_type is int else "number"}
        for key, value in (
            ("minimum", self.minimum),
            ("exclusiveMinimum", self.exclusive_minimum),
            ("maximum", self.maximum),
        ):
            if value is not None:
                words[key] = value
        return words


POSITIVE_INT = Range(
    "positive_int",
    int,
    minimum=1,
    bad="expected a positive integer, got {text!r}",
    out="expected a positive integer, got {value}",
)
NONNEGATIVE_INT = Range(
    "nonnegative_int",
    int,
    minimum=0,
    bad="expected an integer >= 0, got {text!r}",
    out="expected an integer >= 0, got {value}",
)
INTEGER = Range(
    "integer",
    int,
    bad="expected an integer, got {text!r}",
    out="expected an integer, got {value}",
)
POSITIVE_FLOAT = Range(
    "positive_float",
    float,
    exclusive_minimum=0,
    bad="expected a positive number, got {text!r}",
    out="expected a positive finite number, got {text}",
)
NONNEGATIVE_FLOAT = Range(
    "nonnegative_float",
    float,
    minimum=0,
    bad="expected a finite number >= 0, got {text!r}",
    out="expected a finite number >= 0, got {text!r}",
)
UNIT_FRACTION = Range(
    "unit_fraction",
    float,
    exclusive_minimum=0,
    maximum=1,
    bad="expected a number in (0, 1], got {text!r}",
    out="expected a number in (0, 1], got {text!r}",
)


@dataclass(frozen=True)
class Option:
    """How a setting is given on the command line (``--name-with-dashes``)."""

    help: str
    range: Range | None = None  # a bounded number
    choices: tuple | None = None  # one of these
    value_type: type = str  # without range or choices: Path, int or str
    nargs: str | None = None  # "+" or "*" for several values
    metavar: str | None = None


def setting(default: Any = MISSING, **option: Any):
    """A dataclass field with its command-line description; no default means required."""
    return field(default=default, metadata={"option": Option(**option)})


def option_fields(cls) -> list:
    """The fields of a settings class that are command-line options, in declaration order."""
    return [f for f in fields(cls) if "option" in f.metadata]


def defaults(cls) -> dict[str, Any]:
    """Default of every option that has one (``None`` for defaults derived from other settings)."""
    return {f.name: f.default for f in option_fields(cls) if f.default is not MISSING}


def required(cls) -> tuple[str, ...]:
    return tuple(f.name for f in option_fields(cls) if f.default is MISSING)


def _only(option: str, text: str) -> str:
    """Help text of a group-specific option, naming the groups that have it."""
    return f"{text} ({', '.join(groups_with(option))} only)"


def _lattice_help() -> str:
    shapes = ", ".join(f"{facts.extents} for {name}" for name, facts in GROUPS.items())
    return f"lattice extents: {shapes}"


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """Everything that determines the trained model; a resume must repeat all of it.

    ``warmup`` and ``anneal_steps`` default to fractions of ``steps`` (``None`` here, resolved on
    construction), so that the same defaults fit a short test run and a paper-scale run.
    """

    group: str = setting(choices=tuple(GROUPS), help="gauge group")
    lattice: tuple[int, ...] = setting(
        range=POSITIVE_INT, nargs="+", metavar="N", help=_lattice_help()
    )
    beta: float = setting(range=POSITIVE_FLOAT, help="target coupling")
    nlf: int = setting(
        MODEL_DEFAULTS["nlf"], range=POSITIVE_INT, help="leapfrog layers per trajectory"
    )
    steps: int = setting(200, range=POSITIVE_INT, help="training steps")
    batch: int = setting(64, range=POSITIVE_INT, help="chains per rank")
    hidden: tuple[int, ...] = setting(
        MODEL_DEFAULTS["hidden"],
        range=POSITIVE_INT,
        nargs="+",
        metavar="W",
        help="hidden widths (network local: channels of the 3x3 convolutions)",
    )
    lr: float = setting(1e-3, range=POSITIVE_FLOAT, help="peak Adam learning rate")
    seed: int = setting(0, range=NONNEGATIVE_INT, help="seed; rank r samples with seed + r")
    precision: str = setting("single", choices=PRECISIONS, help="links and networks")
    activation: str = setting(
        MODEL_DEFAULTS["activation"], choices=tuple(ACTIVATIONS), help="of the hidden layers"
    )
    eps_init: float = setting(
        MODEL_DEFAULTS["eps_init"], range=POSITIVE_FLOAT, help="initial step sizes"
    )
    network: str = setting(
        MODEL_DEFAULTS["network"],
        choices=NETWORKS,
        help="dense: the paper's networks over every link of one volume; local: gauge-covariant "
        "convolutions whose weights run on any volume (U1 and SU3)",
    )
    local_period: int = setting(
        MODEL_DEFAULTS["local_period"],
        choices=PERIODS,
        value_type=int,
        help="period of the link masks of network local (2 needs even extents)",
    )
    mask: str = setting(MODEL_DEFAULTS["mask"], choices=MASKS, help="link halves per layer")
    mask_seed: int = setting(
        MODEL_DEFAULTS["mask_seed"], range=NONNEGATIVE_INT, help="seed of random masks"
    )
    conv_channels: tuple[int, ...] = setting(
        MODEL_DEFAULTS["conv_channels"],
        range=POSITIVE_INT,
        nargs="*",
        metavar="C",
        help=_only("conv_channels", "convolutional front end"),
    )
    winding: int = setting(
        MODEL_DEFAULTS["winding"],
        range=INTEGER,
        help=_only("winding", "topological translation: charge change built into one layer"),
    )
    warmup: int | None = setting(
        None, range=NONNEGATIVE_INT, help="linear warm-up steps (default min(1000, steps/10))"
    )
    decay: str = setting("cosine", choices=DECAYS, help="learning-rate decay")
    decay_to: float = setting(
        0.1, range=UNIT_FRACTION, metavar="F", help="final lr as a fraction of --lr"
    )
    clip: float = setting(1.0, range=NONNEGATIVE_FLOAT, help="gradient norm clip, 0 = off")
    anneal_from: float = setting(
        1.0, range=UNIT_FRACTION, metavar="GAMMA0", help="anneal beta_t = gamma_t beta"
    )
    anneal_steps: int | None = setting(
        None, range=POSITIVE_INT, metavar="N", help="steps to reach gamma 1 (default 3/4 steps)"
    )
    anneal_schedule: str = setting("linear", choices=ANNEAL_SCHEDULES, help="of gamma_t")
    plaq_weight: float = setting(
        0.0, range=NONNEGATIVE_FLOAT, help="weight of the plaquette term of the loss"
    )
    init: str | None = setting(
        None, value_type=Path, metavar="OTHER_RUN_DIR", help="warm start: model weights of that run"
    )

    def __post_init__(self):
        if self.warmup is None:
            object.__setattr__(self, "warmup", min(1000, self.steps // 10))
        if self.anneal_steps is None:
            object.__setattr__(self, "anneal_steps", max(1, 3 * self.steps // 4))

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists for tuples), for checkpoints and config.yaml."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        """Settings from a mapping (a checkpoint's config); other keys are ignored."""
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
            network=self.network,
            local_period=self.local_period,
        )


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How a training run is executed; none of it changes the trained model."""

    out: Path = setting(
        value_type=Path, metavar="RUN_DIR", help="run directory (resumed if present)"
    )
    checkpoint_every: int = setting(
        100, range=POSITIVE_INT, metavar="N", help="checkpoint period in steps"
    )
    device: str = setting("auto", help="auto (CUDA when present), cpu, cuda[:N]")
    no_progress: bool = setting(False, help="no progress bar")
    hash_log: Path | None = setting(
        None,
        value_type=Path,
        metavar="DIR",
        help="each rank appends per-step SHA-256 of its parameters and chains to DIR/rank<r>.log",
    )


@dataclass(frozen=True, kw_only=True)
class HMCSettings:
    """``dlhmc hmc``: one HMC chain file."""

    group: str = setting("U1", choices=tuple(GROUPS), help="gauge group")
    lattice: tuple[int, ...] = setting(
        range=POSITIVE_INT, nargs="+", metavar="N", help=_lattice_help()
    )
    beta: float = setting(range=POSITIVE_FLOAT, help="gauge coupling")
    nlf: int = setting(10, range=POSITIVE_INT, help="integrator steps per trajectory")
    eps: float = setting(0.1, range=POSITIVE_FLOAT, help="integrator step size")
    integrator: str = setting(
        "auto",
        choices=("auto", *INTEGRATORS),
        help="leapfrog or 2nd-order minimum norm (Omelyan); auto: the group's (U1 leapfrog, "
        "SU3 omelyan)",
    )
    instanton_hits: int = setting(
        0,
        range=NONNEGATIVE_INT,
        metavar="K",
        help=_only("instanton_hits", "instanton hits after each trajectory (winding HMC)"),
    )
    instanton_size: int = setting(
        0,
        range=NONNEGATIVE_INT,
        metavar="W",
        help=_only("instanton_size", "patch of a hit: W x W plaquettes, 0 = delocalized"),
    )
    chains: int = setting(64, range=POSITIVE_INT, help="independent chains (batch)")
    trajectories: int = setting(
        2000, range=POSITIVE_INT, help="recorded trajectories per chain, after thermalization"
    )
    therm: int = setting(200, range=NONNEGATIVE_INT, help="unrecorded thermalization trajectories")
    seed: int = setting(0, range=NONNEGATIVE_INT, help="seed of the one generator")
    device: str = setting("auto", help="auto (CUDA when present), cpu, cuda[:N]")
    precision: str = setting("double", choices=PRECISIONS, help="links")
    start: str = setting("hot", choices=STARTS, help="initial links")
    out: Path = setting(value_type=Path, help="chain file to write (.nc)")
    no_progress: bool = setting(False, help="no progress bar")


@dataclass(frozen=True, kw_only=True)
class InferSettings:
    """``dlhmc infer``: chains of a trained sampler at the true target."""

    checkpoint: Path = setting(value_type=Path, metavar="RUN_DIR", help="training run")
    chains: int = setting(128, range=POSITIVE_INT, help="independent chains")
    trajectories: int = setting(300, range=POSITIVE_INT, help="measured trajectories")
    therm: int = setting(50, range=NONNEGATIVE_INT, help="discarded trajectories")
    therm_hmc: int = setting(
        0,
        range=NONNEGATIVE_INT,
        metavar="K",
        help="HMC trajectories (length 1) from the hot start before --therm: a learned sampler's "
        "short trajectories thermalize a large volume slowly",
    )
    seed: int = setting(0, range=NONNEGATIVE_INT, help="sampling seed")
    out: Path = setting(value_type=Path, metavar="CHAINS.nc", help="chain file")
    beta: float | None = setting(
        None, range=POSITIVE_FLOAT, help="coupling (default: the checkpoint's)"
    )
    lattice: tuple[int, ...] | None = setting(
        None,
        range=POSITIVE_INT,
        nargs="+",
        metavar="N",
        help="volume to sample (default: the checkpoint's); a network local model runs on any "
        "volume of its group, a dense one on its own only",
    )
    device: str = setting("auto", help="auto (CUDA when present), cpu, cuda[:N]")
    layer_samples: int = setting(
        10,
        range=POSITIVE_INT,
        metavar="K",
        help="trajectories whose layers feed the lf diagnostics",
    )
    no_progress: bool = setting(False, help="no progress bar")
