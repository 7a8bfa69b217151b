"""L2HMC / DLHMC: leapfrog layers with their own networks and step sizes, plus an MH test.

Each of the ``N_LF`` layers ``k`` does (physics.md, seed 003 eqs. 1-2), for ``d = +1``:

1. ``v <- v exp(eps_v/2 s_v) - eps_v/2 (F exp(eps_v q_v) + t_v)``, nets on ``(x, F(x))``;
2. x update of the units in ``mbar = 1 - m^k``, nets on the frozen ``m^k`` units and ``v``;
3. x update of the ``m^k`` units, nets on the (already moved) ``mbar`` units and ``v``;
4. the v update of step 1 again at the new links.

Each step is invertible in closed form because its networks read only variables that
step leaves alone; ``d = -1`` applies the inverses, layers and steps in reverse order.
Drawing ``d`` uniformly per chain and per trajectory makes the map an involution on
``(x, v, d)``, so the Metropolis-Hastings test with ``exp(-dH + sum log|J|)`` is exact
whatever the networks are: training can only change efficiency, never the target.

The networks and updates of a layer are a family's, behind one contract (``features(x)``
and ``layer(...)``, chosen once by ``network``): ``dense``, the paper's MLPs over every
unit (:mod:`dlhmc.samplers.l2hmc_dense`), or ``local``, gauge-covariant sub-updates in
place of steps 2-3 whose weights run on any volume (U(1): plaquette-coupled,
:mod:`dlhmc.samplers.l2hmc_local`; SU(3): left multiplication built from frozen loops,
:mod:`dlhmc.samplers.l2hmc_local_su3`).  The step sizes, the winding translation, the
directions and the MH test are this module's, the same for every family.

``winding`` (U(1) only, a deviation from physics.md documented in docs/results.md): the
x updates of the middle layer also add ``d * winding`` lattice instantons, a constant
translation of the links that shifts every plaquette angle by ``2 pi / V`` and so moves
the integer charge of a smooth configuration by ``d * winding``.  A continuous trajectory
must carry one plaquette through ``pi`` (action barrier about ``2 beta``) to change the
charge, and the loss gradient cannot grow a discrete winding out of nothing; the
translation jumps the barrier instead, at the action cost of one instanton.  It is a
constant shift (Jacobian 1) applied as ``+A`` forward and ``-A`` backward, so the proposal
stays an exact involution and the Metropolis test is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from dlhmc.nets import ACTIVATIONS
from dlhmc.samplers.base import Info, State, acceptance, metropolis
from dlhmc.samplers.l2hmc_local import PERIODS
from dlhmc.theory import Theory

MASKS = ("checkerboard", "random")
# dense: the paper's MLPs over all links; local: gauge-covariant convolutional layers
# (dlhmc.samplers.l2hmc_local), whose weights run on any volume.
NETWORKS = ("dense", "local")


@dataclass(frozen=True)
class L2HMCConfig:
    """Architecture of the sampler; stored in checkpoints via ``to_dict``.

    ``hidden`` are the widths of each network's hidden layers: MLP units for
    ``network: dense``, channels per site of the 3x3 convolutions (U(1)) or of the
    nearest-neighbour stencils (SU(3)) for ``network: local``
    (whose masks are fixed, so ``mask`` must stay ``checkerboard`` and ``conv_channels``
    empty there).  ``local_period`` (2 or 4, ``network: local`` only) is the period of
    the local U(1) link masks, see :mod:`dlhmc.samplers.l2hmc_local` (SU(3) masks are
    the checkerboard and do not read it).  Checkpoints from before ``network`` existed
    load as ``dense``.  These defaults are those of ``dlhmc train``:
    :class:`dlhmc.settings.TrainSettings` takes them from here.
    """

    nlf: int = 4
    hidden: tuple[int, ...] = (32, 32)
    activation: str = "swish"
    mask: str = "checkerboard"
    eps_init: float = 0.1
    conv_channels: tuple[int, ...] = ()
    mask_seed: int = 0
    winding: int = 0
    network: str = "dense"
    local_period: int = 4

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))
        if self.nlf < 1:
            raise ValueError(f"nlf: need at least one leapfrog layer, got {self.nlf}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden: need one or more positive layer widths, got {self.hidden}")
        if self.conv_channels and min(self.conv_channels) < 1:
            raise ValueError(f"conv_channels: widths must be positive, got {self.conv_channels}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)}, "
                             f"got {self.activation!r}")
        if self.mask not in MASKS:
            raise ValueError(f"mask: expected one of {', '.join(MASKS)}, got {self.mask!r}")
        if not (self.eps_init > 0 and math.isfinite(self.eps_init)):
            raise ValueError(f"eps_init: expected a positive step size, got {self.eps_init}")
        if isinstance(self.winding, bool) or int(self.winding) != self.winding:
            raise ValueError(f"winding: expected an integer, got {self.winding!r}")
        object.__setattr__(self, "winding", int(self.winding))
        if self.network not in NETWORKS:
            raise ValueError(f"network: expected one of {', '.join(NETWORKS)}, "
                             f"got {self.network!r}")
        if self.network == "local" and (self.mask != "checkerboard" or self.conv_channels):
            raise ValueError("network: local layers have their own masks and convolutions; "
                             "mask and conv_channels are for network dense")
        if self.local_period not in PERIODS or (self.network == "dense" and self.local_period != 4):
            raise ValueError(f"local_period: expected one of {PERIODS} with network local, "
                             f"got {self.local_period!r} with network {self.network}")

    @property
    def any_volume(self) -> bool:
        """Whether the weights fit every lattice of the group: the local networks are
        convolutions over gauge-invariant maps, the dense ones read every link of one volume."""
        return self.network == "local"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["conv_channels"] = list(self.conv_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> L2HMCConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown L2HMC config keys: {', '.join(sorted(unknown))}")
        return cls(**d)


@dataclass(frozen=True)
class Proposal:
    """One trajectory per chain, before the accept/reject decision.

    ``action`` is the action of the proposed links; ``divergent`` flags chains whose
    log-acceptance ``sumlogdet - dH`` is not finite (their ``accept_prob`` is 0).
    ``layers`` (when requested) holds ``[N_LF + 1, B]`` tensors, index 0 being the
    input: ``plaq``, ``energy`` (``H - cumulative sum log|J|``) and ``charge_real``
    along the trajectory (the paper's figure 5).
    """

    x: torch.Tensor
    action: torch.Tensor
    sumlogdet: torch.Tensor
    dH: torch.Tensor
    accept_prob: torch.Tensor
    divergent: torch.Tensor
    direction: torch.Tensor
    layers: dict[str, torch.Tensor] | None = None


def check_network(theory: Theory, config: L2HMCConfig) -> None:
    """Raise ``ValueError`` where the networks of ``config`` cannot be built for ``theory``,
    without building the (possibly large) dense ones.

    The local layers are small, so they are built here: their masks must give every moving
    link a plaquette of its own on this lattice (``lattice: ...``), and only some groups have
    them (``network: ...``).  Dense networks fit any lattice of their group.
    """
    if config.network == "local":
        theory.l2hmc_kind().local_layers(config)


def _real_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.empty((), dtype=dtype).real.dtype


# Where the family's module sits.  Its state-dict keys are stored under the family's own
# ``state_prefix`` instead (dense: ``vnets.*``, ``xnets.*``; local: ``local.*``), the layout
# checkpoints have always had, so old and new checkpoints load into either code.
LAYERS = "layers."


def _stored_layout(module, state_dict, prefix, local_metadata):
    """State-dict hook: rename ``layers.*`` to the family's ``state_prefix``, in order."""
    current, stored = prefix + LAYERS, prefix + module.layers.state_prefix
    for key in [k for k in state_dict if k.startswith(current)]:
        state_dict[stored + key[len(current):]] = state_dict.pop(key)


def _merge(parts: list[tuple[torch.Tensor, torch.Tensor]], dim: int = 0) -> torch.Tensor:
    """Reassemble sub-batch results ``(index, value)`` in the original chain order."""
    index = torch.cat([i for i, _ in parts])
    value = torch.cat([v for _, v in parts], dim=dim)
    return value.index_select(dim, torch.argsort(index))


class L2HMCDynamics(nn.Module):
    """The trainable sampler.  ``theory`` is a plain attribute: replace it with
    ``theory.with_beta(b)`` to move along an annealing schedule or a beta ladder.
    """

    def __init__(self, theory: Theory, config: L2HMCConfig):
        super().__init__()
        self.theory = theory
        self.config = config
        self.kind = theory.l2hmc_kind()
        # The one place the family is chosen; both build their networks before anything
        # else draws from the global RNG, so a seed gives the same weights as ever.
        self.layers = (self.kind.local_layers(config) if config.network == "local"
                       else self.kind.dense_layers(config))
        log_eps = math.log(config.eps_init)
        self.log_eps_v = nn.Parameter(torch.full((config.nlf,), log_eps))
        self.log_eps_x = nn.Parameter(torch.full((config.nlf,), log_eps))
        # The topological translation (U(1) only): the whole winding is applied in the x
        # updates of one layer, so no intermediate state carries a fractional instanton
        # (whose one plaquette near pi would kick the momenta through the force).
        self.winding_layer = config.nlf // 2
        translation = self.kind.winding_field(config.winding) if config.winding else None
        self.register_buffer("translation", translation, persistent=False)
        self._register_state_dict_hook(_stored_layout)
        self.to(device=theory.device, dtype=_real_dtype(theory.dtype))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Read the stored layout (:func:`_stored_layout`) back under ``layers.``."""
        stored = prefix + self.layers.state_prefix
        owned = {name for name, _ in self.layers.named_children()}
        owned |= {name for name, _ in self.layers.named_parameters(recurse=False)}
        owned |= {name for name, _ in self.layers.named_buffers(recurse=False)}
        for key in [k for k in state_dict if k.startswith(stored)]:
            if key[len(stored):].split(".")[0] in owned:
                state_dict[prefix + LAYERS + key[len(stored):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def eps_v(self) -> torch.Tensor:
        return torch.exp(self.log_eps_v)

    @property
    def eps_x(self) -> torch.Tensor:
        return torch.exp(self.log_eps_x)

    def _layer(self, k, x, v, force, features, inverse):
        """Layer ``k`` of the family (or its inverse), with the step sizes (``self``'s
        ``eps_v``, ``eps_x``) and, in the middle layer, the winding translation."""
        translation = self.translation if k == self.winding_layer else None
        return self.layers.layer(self.theory, k, x, v, force, features, self, inverse,
                                 translation)

    def _monitor(self, x, v, logdet):
        theory = self.theory
        return {
            "plaq": theory.plaquette(x),
            "energy": theory.action(x) + theory.kinetic_energy(v) - logdet,
            "charge_real": theory.charge_real(x),
        }

    def trajectory(self, x, v, direction: int, record_layers: bool = False):
        """All ``N_LF`` layers forward (``direction = +1``) or their inverses in reverse order.

        Returns ``(x', v', sum log|J|, layers)``; ``layers`` is ``None`` unless recorded.
        """
        inverse = direction < 0
        order = range(self.config.nlf - 1, -1, -1) if inverse else range(self.config.nlf)
        features = self.layers.features(x)
        force = self.theory.force(x)
        sumlogdet = x.new_zeros(x.shape[0], dtype=v.dtype)
        records = [self._monitor(x, v, sumlogdet)] if record_layers else None
        for k in order:
            x, v, force, features, logdet = self._layer(k, x, v, force, features, inverse)
            sumlogdet = sumlogdet + logdet
            if record_layers:
                records.append(self._monitor(x, v, sumlogdet))
        layers = None
        if record_layers:
            layers = {key: torch.stack([r[key] for r in records]) for key in records[0]}
        return x, v, sumlogdet, layers

    # -- proposals and transitions -----------------------------------------------------

    def propose(self, x: torch.Tensor, generator: torch.Generator,
                record_layers: bool = False, action: torch.Tensor | None = None) -> Proposal:
        """Draw ``v`` and ``d`` per chain and run the trajectory; differentiable in the
        network parameters and step sizes (this is what training back-propagates through).
        ``action`` is the action of ``x`` when the caller has it cached.
        """
        theory = self.theory
        batch = x.shape[0]
        v = theory.sample_momentum(batch, generator)
        direction = torch.randint(0, 2, (batch,), generator=generator, device=x.device) * 2 - 1
        h0 = (theory.action(x) if action is None else action) + theory.kinetic_energy(v)
        outs = []
        for sign in (1, -1):
            index = (direction == sign).nonzero().squeeze(1)
            if index.numel():
                sub = self.trajectory(x[index], v[index], sign, record_layers)
                outs.append((index, sub))
        x1 = _merge([(i, o[0]) for i, o in outs])
        v1 = _merge([(i, o[1]) for i, o in outs])
        sumlogdet = _merge([(i, o[2]) for i, o in outs])
        layers = None
        if record_layers:
            keys = outs[0][1][3]
            layers = {key: _merge([(i, o[3][key]) for i, o in outs], dim=1) for key in keys}
        s1 = theory.action(x1)
        dH = s1 + theory.kinetic_energy(v1) - h0
        accept_prob, divergent = acceptance(sumlogdet - dH)
        return Proposal(x=x1, action=s1, sumlogdet=sumlogdet, dH=dH, accept_prob=accept_prob,
                        divergent=divergent, direction=direction, layers=layers)

    @torch.no_grad()
    def init(self, x: torch.Tensor) -> State:
        return State(x=x, action=self.theory.action(x))

    @torch.no_grad()
    def step(self, state: State, generator: torch.Generator,
             record_layers: bool = False) -> tuple[State, Info]:
        """One L2HMC trajectory per chain, accepted per chain (``Info.extras``: ``sumlogdet``).

        Draws the momenta, the directions, then one uniform per chain.  ``record_layers``
        adds the per-layer records of the proposal to ``Info.layers``.
        """
        prop = self.propose(state.x, generator, record_layers, action=state.action)
        proposed = State(x=prop.x, action=prop.action)
        new_state, accepted = metropolis(prop.accept_prob, proposed, state, generator)
        info = Info(accept_prob=prop.accept_prob, accepted=accepted, dH=prop.dH,
                    divergent=prop.divergent, extras={"sumlogdet": prop.sumlogdet},
                    layers=prop.layers)
        return new_state, info
