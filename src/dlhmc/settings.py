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

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from dlhmc.families import NETWORKS
from dlhmc.families.dense import MASKS
from dlhmc.families.local import CONV_KINDS, PERIODS
from dlhmc.flows.model import FLOW_GRADIENTS, FlowConfig
from dlhmc.groups import GROUPS, MAX_INSTANTON_HITS, groups_with
from dlhmc.lattice import PRECISIONS
from dlhmc.nets import ACTIVATIONS
from dlhmc.samplers.integrators import INTEGRATORS
from dlhmc.samplers.l2hmc import L2HMCConfig
from dlhmc.setting_spec import (  # noqa: F401 (re-exported: the settings' vocabulary)
    INTEGER,
    NONNEGATIVE_FLOAT,
    NONNEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    UNIT_FRACTION,
    Option,
    Range,
    defaults,
    option_fields,
    required,
    same_as,
    setting,
)
from dlhmc.trained_samplers import SAMPLERS, trained_sampler

# Trajectories of an L2HMC inference run whose layers are recorded, unless --layer-samples says.
LAYER_SAMPLES = 10
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
# Default depth of a flow (Albergo et al.: 16 coupling layers, each link moved twice at period 4).
FLOW_LAYERS = FlowConfig().layers


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
    sampler: str = setting(
        "l2hmc",
        choices=tuple(SAMPLERS),
        help="l2hmc: leapfrog layers with networks and a Metropolis test; flow: a normalizing "
        "flow from the Haar prior trained by the reverse KL divergence (U1); bridge: a flow from "
        "the --data ensemble at --beta-from to --beta (U1)",
    )
    flow_layers: int = setting(
        FLOW_LAYERS, range=POSITIVE_INT, metavar="K", help="coupling layers (flow, bridge)"
    )
    flow_gradient: str = setting("reparam", choices=FLOW_GRADIENTS, help="flow: reverse-KL "
                                 "gradient; path: no score term (same mean, less noise)")
    beta_from: float | None = setting(None, range=POSITIVE_FLOAT, metavar="B1",
                                      help="bridge: the coupling of --data, mapped to --beta")
    data: str | None = setting(None, value_type=Path, metavar="CHAINS.nc", help="bridge: chain "
                               "file of dlhmc hmc --save-every at --beta-from to train on (its "
                               "last quarter of chains held out to measure the ESS)")
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
    local_period: int = setting(MODEL_DEFAULTS["local_period"], choices=PERIODS, value_type=int,
                                help="period of the link masks of network local (2 needs even "
                                "extents)")
    local_conv: str = setting(MODEL_DEFAULTS["local_conv"], choices=CONV_KINDS, help="3x3 "
                              "convolutions of network local (U1; SU3 has full only): separable "
                              "(depthwise, then pointwise) has ~5x fewer multiply-adds, measured "
                              "1.25-1.3x faster local layers and the same learning within the "
                              "seed spread on 8x8 at beta 3-4")
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
    therm_hmc: int = setting(
        0,
        range=NONNEGATIVE_INT,
        metavar="K",
        help="HMC trajectories (length 1) at --beta from the hot start before the first step: "
        "the networks then learn on equilibrium configurations",
    )
    init: str | None = setting(
        None, value_type=Path, metavar="OTHER_RUN_DIR", help="warm start: model weights of that run"
    )

    def __post_init__(self):
        if self.warmup is None:
            object.__setattr__(self, "warmup", min(1000, self.steps // 10))
        if self.anneal_steps is None:
            object.__setattr__(self, "anneal_steps", max(1, 3 * self.steps // 4))
        self._check_sampler()

    def _check_sampler(self) -> None:
        """``ValueError`` naming the setting when a setting of another sampler is changed from
        its default (it would be silently ignored) or the sampler cannot move this group."""
        own = trained_sampler(self.sampler)
        for other in SAMPLERS.values():
            for name in (o for o in other.options if o not in own.options):
                default = _FIELD_DEFAULTS[name]
                if _plain_tuple(getattr(self, name)) != _plain_tuple(default):
                    leave = "out" if default is None else f"at {_shown(default)}"
                    raise ValueError(f"{name}: a setting of sampler {other.name}, not of sampler "
                                     f"{self.sampler}; leave it {leave}")
        if own.groups is not None and self.group not in own.groups:
            raise ValueError(f"sampler: {self.sampler} is implemented for "
                             f"{', '.join(own.groups)} only, got group {self.group}")

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

    def flow_config(self) -> FlowConfig:
        return FlowConfig(
            layers=self.flow_layers,
            hidden=tuple(self.hidden),
            activation=self.activation,
            local_period=self.local_period,
        )

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
            local_conv=self.local_conv,
        )


_FIELD_DEFAULTS = {f.name: f.default for f in fields(TrainSettings)}


def _plain_tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _shown(value) -> str:
    """A default as it is written on the command line."""
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) if value else "empty"
    return str(value)


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
    instanton_hits: int = setting(0, range=NONNEGATIVE_INT, metavar="K", help=_only(
        "instanton_hits", "instanton hits after each trajectory (winding HMC), at most "
        f"{MAX_INSTANTON_HITS}"))
    instanton_size: int = setting(0, range=NONNEGATIVE_INT, metavar="W", help=_only(
        "instanton_size", "patch of a hit: W x W plaquettes, 0 = delocalized; needs "
        "--instanton-hits"))
    chains: int = setting(64, range=POSITIVE_INT, help="independent chains (batch)")
    trajectories: int = setting(
        2000, range=POSITIVE_INT, help="recorded trajectories per chain, after thermalization"
    )
    therm: int = setting(200, range=NONNEGATIVE_INT, help="unrecorded thermalization trajectories")
    save_every: int = setting(0, range=NONNEGATIVE_INT, metavar="K", help="also store the links "
                              "after every K-th recorded trajectory (variable links): the ensemble "
                              "a bridge flow trains on and dlhmc derivative maps; 0: none")
    seed: int = setting(0, range=NONNEGATIVE_INT, help="seed of the one generator")
    device: str = setting("auto", help="auto (CUDA when present), cpu, cuda[:N]")
    precision: str = setting("double", choices=PRECISIONS, help="links")
    start: str = setting("hot", choices=STARTS, help="initial links")
    out: Path = setting(value_type=Path, help="chain file to write (.nc)")
    no_progress: bool = setting(False, help="no progress bar")


@dataclass(frozen=True, kw_only=True)
class TrexSettings:
    """``dlhmc trex``: replica exchange across a ladder of couplings, plain (parallel tempering)
    or through bridge flows (T-REX); HMC moves each replica with ``dlhmc hmc``'s settings."""

    group: str = same_as(HMCSettings, "group")
    lattice: tuple[int, ...] = same_as(HMCSettings, "lattice")
    betas: tuple[float, ...] = setting(
        range=POSITIVE_FLOAT, nargs="+", metavar="B", help="the ladder: 2 or more strictly "
        "increasing couplings"
    )
    bridges: tuple[Path, ...] = setting(
        (), value_type=Path, nargs="+", metavar="RUN_DIR", help="T-REX: one bridge flow run per "
        "neighbouring pair, mapping beta_k to beta_k+1 (default: plain parallel tempering)"
    )
    nlf: int = same_as(HMCSettings, "nlf")
    eps: float = same_as(HMCSettings, "eps")
    integrator: str = same_as(HMCSettings, "integrator")
    chains: int = setting(
        HMCSettings.chains, range=POSITIVE_INT, help="independent ladders (batch)"
    )
    trajectories: int = same_as(HMCSettings, "trajectories")
    therm: int = same_as(HMCSettings, "therm")
    swap_every: int = setting(
        1, range=POSITIVE_INT, metavar="S", help="a swap round after every S trajectories"
    )
    seed: int = same_as(HMCSettings, "seed")
    device: str = same_as(HMCSettings, "device")
    precision: str = same_as(HMCSettings, "precision")
    start: str = same_as(HMCSettings, "start")
    out_dir: Path = setting(
        value_type=Path, metavar="DIR", help="directory of the chain files (beta<B>.nc), "
        "swaps.csv and round_trips.csv"
    )
    no_progress: bool = same_as(HMCSettings, "no_progress")


@dataclass(frozen=True, kw_only=True)
class InferSettings:
    """``dlhmc infer``: chains of a trained sampler at the true target."""

    checkpoint: Path = setting(value_type=Path, metavar="RUN_DIR", help="training run")
    chains: int = setting(128, range=POSITIVE_INT, help="independent chains")
    trajectories: int = setting(300, range=POSITIVE_INT, help="measured trajectories")
    therm: int = setting(50, range=NONNEGATIVE_INT, help="discarded trajectories")
    therm_hmc: int = setting(0, range=NONNEGATIVE_INT, metavar="K", help="HMC trajectories "
                             "(length 1) from the hot start before --therm: a learned sampler's "
                             "short trajectories thermalize a large volume slowly")
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
        help="volume to sample (default: the checkpoint's); a network local model or a flow runs "
        "on any volume of its group that its masks fit, a dense one on its own only",
    )
    device: str = setting("auto", help="auto (CUDA when present), cpu, cuda[:N]")
    layer_samples: int | None = setting(
        None,
        range=POSITIVE_INT,
        metavar="K",
        help=f"L2HMC runs: trajectories whose layers feed the lf diagnostics (default "
        f"{LAYER_SAMPLES})",
    )
    flow_hmc: bool = setting(
        False,
        help="flow runs: HMC in the flow's latent variables (needs --nlf, --eps) instead of "
        "independence Metropolis with flow proposals",
    )
    nlf: int | None = setting(
        None, range=POSITIVE_INT, help="--flow-hmc: integrator steps per trajectory"
    )
    eps: float | None = setting(None, range=POSITIVE_FLOAT, help="--flow-hmc: step size")
    no_progress: bool = setting(False, help="no progress bar")
