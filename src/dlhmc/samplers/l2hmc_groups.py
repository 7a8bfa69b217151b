"""How L2HMC sees and moves the variables of each kind of theory: one object per kind.

The leapfrog layers of :mod:`dlhmc.samplers.l2hmc` are written once.  What differs
between U(1) angles, SU(3) matrices and the Euclidean toy is collected here:

- the maskable units (links, or coordinates of the toy) and their checkerboard parity;
- the real features networks read from them (``[cos x, sin x]`` for U(1), the 18 real
  numbers of a 3x3 complex matrix for SU(3), the coordinate itself for the toy);
- the x update of the active units and its log-Jacobian.

Each theory names its own kind (``theory.l2hmc_kind()``), so adding a theory means
adding one kind next to these, not branching the dynamics.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch

from dlhmc.group.u1 import cos_sin, wrap
from dlhmc.nets import Gather, LeapfrogNet, PeriodicConv
from dlhmc.samplers.l2hmc_dense import DenseLeapfrog
from dlhmc.samplers.l2hmc_local import LocalU1Leapfrog
from dlhmc.samplers.l2hmc_local_su3 import LocalSU3Leapfrog


class VNet(torch.nn.Module):
    """Momentum network ``(links, force) -> (s_v, t_v, q_v)``, each shaped like the force."""

    def __init__(self, net: LeapfrogNet):
        super().__init__()
        self.net = net

    def forward(self, features: torch.Tensor, force: torch.Tensor):
        s, t, q = self.net(features, force)
        return s.view(force.shape), t.view(force.shape), q.view(force.shape)


class XNet(torch.nn.Module):
    """Link network ``(frozen links, v) -> (s_x, t_x, q_x)`` on the active units.

    Outputs exist only for the active units: ``[B, n_active * components]``, entry ``i``
    belonging to entry ``active_index[i]`` of the flattened momentum (``s_x`` is ``None``
    for kinds whose x update has no scaling).  The x updates work on these compact
    tensors, so the frozen half of the links costs nothing.
    """

    def __init__(self, net: LeapfrogNet, active: torch.Tensor, components: int):
        super().__init__()
        self.net = net
        index = active.nonzero() * components + torch.arange(components)
        self.register_buffer("active_index", index.flatten(), persistent=False)

    def forward(self, features: torch.Tensor, v: torch.Tensor):
        return self.net(features, v)


class LinkKind(ABC):
    """Shared structure: ``n_units`` maskable units with ``n_features`` network inputs each
    and ``components`` momentum components each; momenta are ``[B, *unit_shape(, components)]``.

    A theory builds its kind (``theory.l2hmc_kind()``); each kind supplies the units, the
    features and the x update.
    """

    n_features: int
    components: int
    scales_x: bool

    def __init__(self, theory):
        self.unit_shape = self.units_of(theory)
        self.n_units = math.prod(self.unit_shape)
        self.lattice = tuple(theory.lattice)
        self.theory_name = theory.name

    @staticmethod
    @abstractmethod
    def units_of(theory) -> tuple[int, ...]:
        """Shape of the maskable units of ``theory`` (links ``(mu, n)``, or coordinates)."""

    def parity(self) -> torch.Tensor:
        """Checkerboard colour of each unit: ``(mu + sum_i n_i) mod 2`` for a link ``(mu, n)``."""
        grids = torch.meshgrid(*(torch.arange(n) for n in self.unit_shape), indexing="ij")
        return (sum(grids) % 2).flatten()

    @abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Real network inputs ``[B, n_units, n_features]``."""

    def front(self, config, keep: torch.Tensor | None) -> tuple[torch.nn.Module | None, int]:
        """Front end for the link input (``keep``: the frozen units, ``None`` = all units)."""
        if config.conv_channels:
            raise ValueError(f"conv_channels: no convolutional front end for {type(self).__name__}")
        if keep is None:
            return None, self.n_units * self.n_features
        index = keep.nonzero().squeeze(1)
        return Gather(index, self.n_features), index.numel() * self.n_features

    def vnet(self, config) -> VNet:
        front, a_size = self.front(config, None)
        size = self.n_units * self.components
        return VNet(LeapfrogNet(a_size, size, size, config.hidden, config.activation, True, front))

    def xnet(self, config, active: torch.Tensor) -> XNet:
        front, a_size = self.front(config, ~active)
        out = int(active.sum()) * self.components
        net = LeapfrogNet(
            a_size, self.n_units * self.components, out, config.hidden, config.activation,
            self.scales_x, front,
        )
        return XNet(net, active, self.components)

    @abstractmethod
    def update_x(self, theory, x, v, s, t, q, eps, index, inverse: bool):
        """Move the active units; returns the new links and ``log|dx'/dx|`` per chain.

        ``s, t, q`` are the compact outputs of an :class:`XNet` and ``index`` its
        ``active_index`` (positions in the flattened momentum).
        """

    def winding_field(self, winding: int) -> torch.Tensor:
        """Constant link translation that changes the topological charge by ``winding``.

        Only U(1) has one: a non-abelian link cannot be shifted by a constant field
        that moves every plaquette alike, so other kinds refuse a winding.
        """
        raise ValueError(f"winding: no topological translation for {type(self).__name__} "
                         "(U1 only); use winding 0")

    def dense_layers(self, config) -> DenseLeapfrog:
        """The ``dense`` leapfrog layers (MLPs over every unit) of this kind."""
        return DenseLeapfrog(self, config)

    def local_layers(self, config) -> torch.nn.Module:
        """The ``local`` (gauge-covariant, volume-independent) leapfrog layers of this kind."""
        raise ValueError(f"network: local is not yet implemented for {self.theory_name}")


class U1Kind(LinkKind):
    """U(1) angles with the non-compact projection of physics.md.

    Scaling an angle by ``exp(eps s)`` would not respect the circle; scaling
    ``tan(x/2)`` instead maps ``(-pi, pi)`` onto itself smoothly and fixes ``pi``,
    so the update is a diffeomorphism of the circle with an analytic Jacobian.

    ``instanton(lattice, winding)`` is the theory's lattice instanton
    (:func:`dlhmc.lattice.u1_instanton.lattice_instanton`), and the plaquette angles of the
    ``local`` layers are the theory's, both handed in by the theory so that the sampler does
    not depend on the lattice module.
    """

    n_features = 2
    components = 1
    scales_x = True

    def __init__(
        self,
        theory,
        instanton: Callable[[tuple[int, ...], int], torch.Tensor],
        plaquette_angles: Callable[[torch.Tensor], torch.Tensor],
    ):
        super().__init__(theory)
        self.instanton = instanton
        self.plaquette_angles = plaquette_angles

    @staticmethod
    def units_of(theory) -> tuple[int, ...]:
        return (2, *theory.lattice)

    def features(self, x):
        return cos_sin(x, dim=-1).flatten(1, -2)

    def front(self, config, keep):
        if not config.conv_channels:
            return super().front(config, keep)
        conv = PeriodicConv(self.lattice, self.n_features, config.conv_channels, config.activation,
                            keep)
        return conv, conv.out_size

    def local_layers(self, config):
        return LocalU1Leapfrog(self.lattice, config, self.plaquette_angles)

    def winding_field(self, winding):
        """``winding`` lattice instantons: every plaquette angle grows by ``2 pi winding / V``
        modulo ``2 pi``, a constant translation with Jacobian 1."""
        return self.instanton(self.lattice, winding)

    def update_x(self, theory, x, v, s, t, q, eps, index, inverse, translation=None):
        """``translation`` (the winding field of :meth:`winding_field`) adds a constant to
        the shift: the update stays invertible, with the same Jacobian."""
        links = x.flatten(1)
        x = links.index_select(1, index)
        shift = eps * (v.flatten(1).index_select(1, index) * torch.exp(eps * q) + t)
        if translation is not None:
            shift = shift + translation.flatten().index_select(0, index)
        es = -eps * s if inverse else eps * s
        y = wrap(x - shift) if inverse else x
        # tan(y/2) scaled by exp(es), through atan2 of the scaled half-angle sine and cosine
        # (cos(y/2) > 0 on [-pi, pi), so this is the same branch as atan and cheaper).
        cos_half, sin_half = cos_sin(0.5 * y)
        sin_half = torch.exp(es) * sin_half
        new = 2.0 * torch.atan2(sin_half, cos_half)
        if not inverse:
            new = wrap(new + shift)
        log_jac = es - torch.log(cos_half.square() + sin_half.square())
        return links.index_copy(1, index, new).view(v.shape), log_jac.sum(1)


class SU3Kind(LinkKind):
    """SU(3) links: ``U' = exp(i eps (P exp(eps q) + t)) U`` on the active links.

    ``q, t`` depend only on the frozen links and ``P``, so for the active links the
    update is left multiplication by a fixed group element: Haar measure is kept and
    the log-Jacobian is exactly 0.  There is no scaling ``s_x`` (a group element
    cannot be scaled).  ``staples``, ``plaquette`` and ``loops`` (the lattice's
    :func:`~dlhmc.lattice.su3.link_staples`, :func:`~dlhmc.lattice.su3.plaquette_matrix`
    and :func:`~dlhmc.lattice.su3.link_loops`) are the geometry of the ``local`` layers,
    handed in by the theory.
    """

    n_features = 18
    components = 8
    scales_x = False

    def __init__(
        self,
        theory,
        staples: Callable[[torch.Tensor, int], torch.Tensor],
        plaquette: Callable[[torch.Tensor, int, int], torch.Tensor],
        loops: Callable[[torch.Tensor], torch.Tensor],
    ):
        super().__init__(theory)
        self.staples = staples
        self.plaquette = plaquette
        self.loops = loops

    @staticmethod
    def units_of(theory) -> tuple[int, ...]:
        return (4, *theory.lattice)

    def local_layers(self, config):
        return LocalSU3Leapfrog(self.lattice, config, self.staples, self.plaquette, self.loops)

    def features(self, x):
        return torch.view_as_real(x).flatten(-3).flatten(1, -2)

    def update_x(self, theory, x, v, s, t, q, eps, index, inverse):
        active = v.flatten(1).index_select(1, index) * torch.exp(eps * q) + t
        p = v.new_zeros(v.shape[0], v[0].numel()).index_copy(1, index, active).view(v.shape)
        new = theory.evolve_links(x, p, -eps if inverse else eps)
        return new, x.new_zeros(x.shape[0], dtype=v.dtype)


class EuclideanKind(LinkKind):
    """Real coordinates ``x[B, n]`` (the toy): ``x' = x exp(eps s) + eps (v exp(eps q) + t)``."""

    n_features = 1
    components = 1
    scales_x = True

    @staticmethod
    def units_of(theory) -> tuple[int, ...]:
        return tuple(theory.lattice)

    def features(self, x):
        return x.flatten(1).unsqueeze(-1)

    def update_x(self, theory, x, v, s, t, q, eps, index, inverse):
        coords = x.flatten(1)
        x = coords.index_select(1, index)
        shift = eps * (v.flatten(1).index_select(1, index) * torch.exp(eps * q) + t)
        if inverse:
            new, log_jac = (x - shift) * torch.exp(-eps * s), -eps * s
        else:
            new, log_jac = x * torch.exp(eps * s) + shift, eps * s
        return coords.index_copy(1, index, new).view(v.shape), log_jac.sum(1)
