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

The layer is written once here (:func:`leapfrog_layer`); the networks and the link
sub-updates are a family's, behind one contract (:mod:`dlhmc.families.contract`), chosen
once by ``network`` from :data:`dlhmc.families.FAMILIES`: ``dense``, the paper's MLPs over
every unit, or ``local``, gauge-covariant sub-updates whose weights run on any volume.  The
momentum update, the step sizes, the winding translation, the directions and the MH test are
this module's, the same for every family.

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

from dlhmc.families import families, family
from dlhmc.families.adapters import adapter_for
from dlhmc.nets import ACTIVATIONS
from dlhmc.samplers.base import Info, State, acceptance, metropolis
from dlhmc.theory import Theory


@dataclass(frozen=True)
class L2HMCConfig:
    """Architecture of the sampler; stored in checkpoints via ``to_dict``.

    ``network`` names the family (:data:`dlhmc.families.FAMILIES`).  ``hidden`` are the
    widths of each network's hidden layers: MLP units for ``network: dense``, channels per
    site of the 3x3 convolutions (U(1)) or of the nearest-neighbour stencils (SU(3)) for
    ``network: local``.  Some fields belong to one family (its ``options``: ``mask``,
    ``mask_seed``, ``conv_channels`` to dense, ``local_period`` to local, the period of the
    U(1) link masks, and ``local_conv``, the kind of its 3x3 convolutions, ``full`` or
    depthwise-``separable``); every other family must leave them at their defaults, so that no
    setting is silently ignored.  These defaults are those of ``dlhmc train``:
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
    local_conv: str = "full"

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
        if not (self.eps_init > 0 and math.isfinite(self.eps_init)):
            raise ValueError(f"eps_init: expected a positive step size, got {self.eps_init}")
        if isinstance(self.winding, bool) or int(self.winding) != self.winding:
            raise ValueError(f"winding: expected an integer, got {self.winding!r}")
        object.__setattr__(self, "winding", int(self.winding))
        own = family(self.network)
        for other in families():
            for option in (o for o in other.options if o not in own.options):
                default = _DEFAULTS[option]
                if getattr(self, option) != default:
                    raise ValueError(f"{option}: a setting of network {other.name}, not of "
                                     f"network {self.network}; leave it at {default!r}")
        own.check_config(self)

    @property
    def any_volume(self) -> bool:
        """Whether the weights fit every lattice of the group: the local networks are
        convolutions over gauge-invariant maps, the dense ones read every link of one volume."""
        return family(self.network).any_volume

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["conv_channels"] = list(self.conv_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> L2HMCConfig:
        """The architecture a checkpoint stored, every field present and of its type.

        A damaged or hand-edited checkpoint must fail here with the key named (``hidden:
        expected a list of integers, got ['abc']``), not as a ``TypeError`` in the networks'
        constructors, and a missing ``network`` must not silently build the default family.
        """
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown L2HMC config keys: {', '.join(sorted(unknown))}")
        missing = sorted(known - set(d))
        if missing:
            raise ValueError(f"{missing[0]}: missing")
        for name, value in d.items():
            _check_type(name, value, _DEFAULTS[name])
        return cls(**d)


_DEFAULTS = {f.name: f.default for f in fields(L2HMCConfig)}


def _check_type(name: str, value, default) -> None:
    """``value`` has the type of the field's ``default``: integers (not booleans), numbers,
    strings, or lists of integers for the widths."""
    if isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value)
        what = "a list of integers"
    elif isinstance(default, int):
        ok, what = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        what = "a number"
    else:
        ok, what = isinstance(value, str), "a string"
    if not ok:
        raise ValueError(f"{name}: expected {what}, got {value!r}")


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
    """Raise ``ValueError`` where the layers of ``config`` cannot be built for ``theory``,
    without building the (possibly large) networks: the family must support the group
    (``network: ...``) and its masks must fit the lattice (``lattice: ...``)."""
    own = family(config.network)
    if theory.name not in own.groups:
        raise ValueError(f"network: {config.network} is not yet implemented for {theory.name}")
    own.check(theory, config)


def _real_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.empty((), dtype=dtype).real.dtype


def _merge(parts: list[tuple[torch.Tensor, torch.Tensor]], dim: int = 0) -> torch.Tensor:
    """Reassemble sub-batch results ``(index, value)`` in the original chain order."""
    index = torch.cat([i for i, _ in parts])
    value = torch.cat([v for _, v in parts], dim=dim)
    return value.index_select(dim, torch.argsort(index))


def momentum_update(v, force, terms, eps, inverse: bool):
    """``v' = v exp(eps/2 s_v) - eps/2 (F exp(eps q_v) + t_v)`` (or its inverse) and
    ``log|J| = sum eps/2 s_v`` over every momentum component (negated for the inverse).

    ``terms = (s_v, t_v, q_v)`` from the family's networks, which read only the links and
    the force, never ``v``: so the update is affine in ``v`` with a diagonal Jacobian.
    """
    s, t, q = terms
    half = 0.5 * eps
    # kick / half = F exp(eps q) + t (2 (eps / 2) is eps exactly); addcmul fuses the products.
    kick = torch.addcmul(t, force, torch.exp(2.0 * half * q))
    log_scale = half * s
    logdet = log_scale.expand_as(v).flatten(1).sum(1)
    if inverse:
        return torch.addcmul(v, kick, half) * torch.exp(-log_scale), -logdet
    return torch.addcmul(v * torch.exp(log_scale), kick, half, value=-1.0), logdet


def leapfrog_layer(layers, theory, k, x, v, force, features, log_eps_v, log_eps_x,
                   inverse: bool, translation=None):
    """Layer ``k`` (or its inverse): momentum half-update, the family's link sub-updates in
    order (reversed for the inverse), momentum half-update at the new links.

    ``force`` and ``features`` belong to ``x`` and are returned for the new links, so that
    each configuration along the trajectory is evaluated once.  ``log_eps_v``, ``log_eps_x``
    are the log step sizes of every layer; each update takes its own ``exp`` (so the
    gradients of the step sizes are the sum over updates).  ``translation`` (the winding
    field) is added to the shift of every link sub-update.
    """
    v, logdet = momentum_update(v, force, layers.v_terms(k, force, features),
                                torch.exp(log_eps_v)[k], inverse)
    n = layers.n_sub_updates
    carry = features
    for j in range(n - 1, -1, -1) if inverse else range(n):
        x, ld, carry = layers.x_update(theory, k, j, x, v, torch.exp(log_eps_x)[k], inverse,
                                       translation, carry)
        logdet = logdet + ld
    force, features = theory.force(x), layers.features(x)
    v, ld = momentum_update(v, force, layers.v_terms(k, force, features),
                            torch.exp(log_eps_v)[k], inverse)
    return x, v, force, features, logdet + ld


class L2HMCDynamics(nn.Module):
    """The trainable sampler: a family's layers, the step sizes and the winding translation.

    ``theory`` is the theory it was built for (lattice, device, precision); proposals at
    another coupling of the same lattice take that theory as an argument
    (:meth:`propose`), so an annealing schedule or a beta ladder never mutates the sampler.
    """

    differentiates = False  # step takes no gradients (training differentiates propose)

    def __init__(self, theory: Theory, config: L2HMCConfig):
        super().__init__()
        check_network(theory, config)
        self.theory = theory
        self.config = config
        self.family = family(config.network)
        adapter = adapter_for(theory)
        # Built before anything else draws from the global RNG: a seed fixes the weights.
        self.layers = self.family.build(theory, adapter, config)
        log_eps = math.log(config.eps_init)
        self.log_eps_v = nn.Parameter(torch.full((config.nlf,), log_eps))
        self.log_eps_x = nn.Parameter(torch.full((config.nlf,), log_eps))
        # The topological translation (U(1) only): the whole winding is applied in the x
        # updates of one layer, so no intermediate state carries a fractional instanton
        # (whose one plaquette near pi would kick the momenta through the force).
        self.winding_layer = config.nlf // 2
        translation = adapter.winding_field(config.winding) if config.winding else None
        self.register_buffer("translation", translation, persistent=False)
        self.to(device=theory.device, dtype=_real_dtype(theory.dtype))

    @property
    def eps_v(self) -> torch.Tensor:
        return torch.exp(self.log_eps_v)

    @property
    def eps_x(self) -> torch.Tensor:
        return torch.exp(self.log_eps_x)

    def layer(self, theory, k, x, v, force, features, inverse):
        """Layer ``k`` of this sampler (or its inverse) at ``theory``: :func:`leapfrog_layer`."""
        translation = self.translation if k == self.winding_layer else None
        return leapfrog_layer(self.layers, theory, k, x, v, force, features, self.log_eps_v,
                              self.log_eps_x, inverse, translation)

    @staticmethod
    def _monitor(theory, x, v, logdet):
        return {
            "plaq": theory.plaquette(x),
            "energy": theory.action(x) + theory.kinetic_energy(v) - logdet,
            "charge_real": theory.charge_real(x),
        }

    def trajectory(self, x, v, direction: int, record_layers: bool = False,
                   theory: Theory | None = None):
        """All ``N_LF`` layers forward (``direction = +1``) or their inverses in reverse order.

        Returns ``(x', v', sum log|J|, layers)``; ``layers`` is ``None`` unless recorded.
        """
        theory = self.theory if theory is None else theory
        inverse = direction < 0
        order = range(self.config.nlf - 1, -1, -1) if inverse else range(self.config.nlf)
        features = self.layers.features(x)
        force = theory.force(x)
        sumlogdet = x.new_zeros(x.shape[0], dtype=v.dtype)
        records = [self._monitor(theory, x, v, sumlogdet)] if record_layers else None
        for k in order:
            x, v, force, features, logdet = self.layer(theory, k, x, v, force, features, inverse)
            sumlogdet = sumlogdet + logdet
            if record_layers:
                records.append(self._monitor(theory, x, v, sumlogdet))
        layers = None
        if record_layers:
            layers = {key: torch.stack([r[key] for r in records]) for key in records[0]}
        return x, v, sumlogdet, layers

    # -- proposals and transitions -----------------------------------------------------

    def propose(self, x: torch.Tensor, generator: torch.Generator,
                record_layers: bool = False, action: torch.Tensor | None = None,
                theory: Theory | None = None) -> Proposal:
        """Draw ``v`` and ``d`` per chain and run the trajectory; differentiable in the
        network parameters and step sizes (this is what training back-propagates through).
        ``action`` is the action of ``x`` when the caller has it cached; ``theory`` the target
        when it is not the sampler's own (the couplings of an annealing schedule).
        """
        theory = self.theory if theory is None else theory
        batch = x.shape[0]
        v = theory.sample_momentum(batch, generator)
        direction = torch.randint(0, 2, (batch,), generator=generator, device=x.device) * 2 - 1
        h0 = (theory.action(x) if action is None else action) + theory.kinetic_energy(v)
        outs = []
        for sign in (1, -1):
            index = (direction == sign).nonzero().squeeze(1)
            if index.numel():
                sub = self.trajectory(x[index], v[index], sign, record_layers, theory)
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
