"""Local, gauge-covariant L2HMC leapfrog layers for 4D SU(3) (config ``network: local``).

A layer is, as for U(1) (:mod:`dlhmc.families.local_u1`): momentum update, link
sub-updates covering every link once, momentum update.  Momenta and forces are the 8
components ``omega^a`` of ``P = omega^a T^a``; under ``U_mu(n) -> G(n) U_mu(n) G(n+mu)^dagger``
they rotate in the adjoint at the base site ``n`` (physics.md, "Gauge equivariance").
Networks read gauge-invariant per-site maps only, so every coefficient they output is
invariant, and every vector they move a momentum or a link along is a combination of
traceless anti-Hermitian projections ``TA(W)`` of loops ``W`` closed at ``n``, which rotate
in that same adjoint.  Invariant dot products ``a . b`` of adjoint vectors are the Killing
form (``Tr T^a T^b = delta^ab / 2``), so they too are invariant.

**Momentum update**, per link ``(mu, n)``::

    v' = v exp(eps/2 s_v) - eps/2 (F exp(eps q_v) + sum_a c_a TA(U_mu(n) S_a(n)))

over the six staples ``S_a`` of the link (``U S_a``: the six plaquettes through the link,
rooted at ``n``).  ``s_v, q_v, c_a`` are invariant scalars per link from a
:class:`~dlhmc.nets.local.StencilNet` on the plaquette traces of the six planes and, per
link, ``|F|^2`` and ``F . TA(U S_a)``.  A scalar per link times the whole adjoint vector is
covariant (a separate scale per component would not be), and
``log|J| = sum over links 8 eps/2 s_v``.

**Link sub-updates** ``(mu, p)``: the links of direction ``mu`` at sites of parity ``p``
(``sum_i n_i mod 2``) move, 8 per layer::

    U_mu(n)' = exp(i eps (v exp(eps q) + sum_k c_k TA(W_k(n)))) U_mu(n)

with nine loops closed at ``n`` made only of frozen links: the plaquettes at ``n`` of the
three planes without ``mu``, the three ``S_up,nu^dagger S_low,nu`` (the 2x1 rectangle across
the link with the link taken out) and the three ``S_up,nu^dagger S_up,rho`` (``nu < rho``).
A staple of ``U_mu(n)`` holds ``U_mu(n +- nu)``, of the other parity on an even torus, and
links of other directions: frozen.  The network reads the traces of those loops (at the
moving sites; zero elsewhere), ``v . TA(W_k)``, ``|v_nu|^2``, the moving-site indicator
and the direction ``mu``: nothing the sub-update moves.  So the update of the moving links
is left multiplication by a fixed group element: Haar measure is kept (unit Jacobian),
it is inverted by the opposite element, and it is covariant.  With all networks zero the
sub-updates together are ``U <- exp(i eps v) U``: a layer is one leapfrog step.

The masks need every extent even (otherwise ``n + nu`` wraps to a site of the same
parity); one network per layer serves the eight sub-updates, one the two momentum
updates.  ``config.hidden`` are the stencil widths; ``config.local_period`` (the U(1)
mask period) is not read: the SU(3) masks are the checkerboard.  ``config.local_conv`` must be
``full``: the stencils have no depthwise-separable kind (refused, not ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlhmc.group import su3
from dlhmc.lattice.su3 import link_loops, link_staples, plaquette_matrix
from dlhmc.nets.local import StencilNet

DIRECTIONS = 4
PLANES = tuple((mu, nu) for mu in range(4) for nu in range(mu + 1, 4))
N_STAPLES = 6
# x-update loops: 3 plaquettes, 3 rectangles S_up^dagger S_low, 3 chairs S_up^dagger S_up.
N_X_LOOPS = 9
# x-net input: Re/Im Tr of the 9 loops, v . TA(W_k), |v_nu|^2, moving sites, one-hot mu.
X_IN = 2 * N_X_LOOPS + N_X_LOOPS + DIRECTIONS + 1 + DIRECTIONS
# v-net input: Re/Im Tr of the 6 plaquettes at n; per link |F|^2 and F . TA(U S_a).
V_IN = 2 * len(PLANES) + DIRECTIONS * (1 + N_STAPLES)
# The staple index (upper staple of mu in the plane of nu) of each plane's plaquette.
PLANE_STAPLE = tuple(2 * [d for d in range(4) if d != mu].index(nu) for mu, nu in PLANES)
CHAIRS = ((0, 1), (0, 2), (1, 2))


def parity_masks(lattice: tuple[int, ...]) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """The sub-updates ``(mu, p)`` and their moving sites ``[8, Nt, Nx, Ny, Nz]`` (bool).

    Raises ``ValueError`` on an odd extent, where a staple of a moving link would hold a
    link of the same parity (a moving one).
    """
    if any(n % 2 for n in lattice):
        raise ValueError(f"lattice: network local for SU3 needs even extents (checkerboard "
                         f"masks), got lattice {tuple(lattice)}")
    grids = torch.meshgrid(*(torch.arange(n) for n in lattice), indexing="ij")
    parity = sum(grids) % 2
    subs = [(mu, p) for mu in range(DIRECTIONS) for p in (0, 1)]
    return subs, torch.stack([parity == p for _, p in subs])


def _check_conv(config) -> None:
    """The stencils have one kind: ``local_conv`` other than ``full`` is refused, not ignored."""
    if config.local_conv != "full":
        raise ValueError(f"local_conv: {config.local_conv} is implemented for U1 only (the SU3 "
                         f"local networks are stencils, not 3x3 convolutions); use full")


def traces(loops: torch.Tensor) -> torch.Tensor:
    """``[..., 2 K]``: ``Re Tr`` then ``Im Tr`` of ``K`` loops ``[..., K, 3, 3]``."""
    tr = torch.diagonal(loops, dim1=-2, dim2=-1).sum(-1)
    return torch.cat((tr.real, tr.imag), dim=-1)


def combine(coefficients: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``sum_k c_k w_k``: coefficients ``[..., K]``, adjoint vectors ``[..., K, 8]``."""
    return (coefficients.unsqueeze(-2) @ vectors).squeeze(-2)


def dots(a: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``a . w_k`` ``[..., K]`` of an adjoint vector ``a [..., 8]`` and ``vectors [..., K, 8]``."""
    return (vectors @ a.unsqueeze(-1)).squeeze(-1)


@dataclass(frozen=True)
class FrozenPlaquettes:
    """The plaquettes of the three planes without ``mu``, for both sub-updates of ``mu``."""

    mu: int
    plaquettes: torch.Tensor


class LocalSU3Layers(nn.Module):
    """Networks and updates of the ``local`` family on an ``Nt x Nx x Ny x Nz`` SU(3) torus.

    Only the masks depend on the lattice (non-persistent buffers): the same state dict
    loads into a model for any even volume.
    """

    # Input channels of the momentum and the link networks, and their outputs per site.
    widths = ((V_IN, X_IN), (DIRECTIONS * (2 + N_STAPLES), N_X_LOOPS + 1))

    def __init__(self, lattice: tuple[int, ...], config):
        super().__init__()
        _check_conv(config)
        self.subs, masks = parity_masks(tuple(lattice))
        self.n_sub_updates = len(self.subs)
        self.register_buffer("moving", masks, persistent=False)
        # Flat indices of the moving sites: the loops and exponentials are evaluated there only.
        sites = torch.stack([m.flatten().nonzero().squeeze(1) for m in masks])
        self.register_buffer("sites", sites, persistent=False)
        ndim = len(lattice)
        self.vnets = nn.ModuleList(
            StencilNet(V_IN, config.hidden, config.activation,
                       (DIRECTIONS, DIRECTIONS * N_STAPLES, DIRECTIONS), ndim)
            for _ in range(config.nlf)
        )
        self.xnets = nn.ModuleList(
            StencilNet(X_IN, config.hidden, config.activation, (0, N_X_LOOPS, 1), ndim)
            for _ in range(config.nlf)
        )

    @staticmethod
    def check_lattice(lattice: tuple[int, ...], config) -> None:
        _check_conv(config)
        parity_masks(lattice)

    # -- momentum updates ----------------------------------------------------------------

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the momentum networks read of the links: the plaquette traces of the six
        planes ``[B, *lattice, 12]`` and ``TA(U_mu S_a)`` ``[B, 4, *lattice, 6, 8]``."""
        closed = link_loops(x)
        plaquettes = torch.stack(
            [closed[:, mu, ..., a, :, :] for (mu, _), a in zip(PLANES, PLANE_STAPLE, strict=True)],
            dim=-3,
        )
        return traces(plaquettes), su3.antihermitian_components(closed)

    def v_inputs(self, force, features):
        """The momentum network's input ``[B, *lattice, V_IN]``: plaquette traces, and per
        link ``|F|^2`` and ``F . TA(U S_a)`` (invariants of the force)."""
        maps, loops = features
        per_link = torch.cat((force.square().sum(-1, keepdim=True), dots(force, loops)), dim=-1)
        return torch.cat((maps, per_link.movedim(1, -2).flatten(-2)), dim=-1)

    def v_terms(self, k, force, features):
        """``s_v, q_v`` per link (broadcast over its 8 components: a scalar times the whole
        adjoint vector is covariant) and ``t_v = sum_a c_a TA(U_mu(n) S_a(n))``."""
        s, c, q = self.vnets[k](self.v_inputs(force, features))
        s, q = s.movedim(-1, 1).unsqueeze(-1), q.movedim(-1, 1).unsqueeze(-1)
        c = c.unflatten(-1, (DIRECTIONS, N_STAPLES)).movedim(-2, 1)
        return s, combine(c, features[1]), q

    # -- link sub-updates ----------------------------------------------------------------

    def frozen_plaquettes(self, x: torch.Tensor, mu: int) -> torch.Tensor:
        """The plaquettes at every site of the three planes without ``mu``,
        ``[B, *lattice, 3, 3, 3]``: the same for both sub-updates of direction ``mu``."""
        return torch.stack([plaquette_matrix(x, a, b) for a, b in PLANES if mu not in (a, b)],
                           dim=-3)

    def x_loops(self, j: int, x: torch.Tensor, plaquettes: torch.Tensor) -> torch.Tensor:
        """The nine loops, made of frozen links, closed at the moving sites of sub-update
        ``j``: ``[B, n_moving, 9, 3, 3]`` (``plaquettes``: :meth:`frozen_plaquettes`)."""
        mu, sites = self.subs[j][0], self.sites[j]
        staples = link_staples(x, mu, sites)
        upper, lower = staples[..., 0::2, :, :], staples[..., 1::2, :, :]
        chairs = torch.stack([upper[..., a, :, :].mH @ upper[..., b, :, :] for a, b in CHAIRS],
                             dim=-3)
        at_sites = plaquettes.flatten(1, 4).index_select(1, sites)
        return torch.cat((at_sites, upper.mH @ lower, chairs), dim=-3)

    def x_inputs(self, j, x, v, plaquettes=None):
        """Adjoint vectors ``TA(W_k)`` at the moving sites ``[B, n_moving, 9, 8]`` and the
        link network's input for sub-update ``j`` ``[B, *lattice, X_IN]``: the frozen
        plaquettes everywhere, the other loops and ``v . TA(W_k)`` at the moving sites
        (zero elsewhere), ``|v_nu|^2``, the moving sites and the direction."""
        mu, sites = self.subs[j][0], self.sites[j]
        if plaquettes is None:
            plaquettes = self.frozen_plaquettes(x, mu)
        loops = self.x_loops(j, x, plaquettes)
        vectors = su3.antihermitian_components(loops)
        v_mu = v[:, mu].flatten(1, -2).index_select(1, sites)
        tr = traces(loops)
        at_moving = torch.cat(
            (tr[..., 3:N_X_LOOPS], tr[..., N_X_LOOPS + 3:], dots(v_mu, vectors)), dim=-1
        )
        scattered = at_moving.new_zeros(v.shape[0], self.moving[j].numel(), at_moving.shape[-1])
        scattered = scattered.index_copy(1, sites, at_moving).unflatten(1, self.moving[j].shape)
        moving = self.moving[j].to(v.dtype).expand(v.shape[0], *self.moving[j].shape)[..., None]
        direction = torch.eye(DIRECTIONS, dtype=v.dtype, device=v.device)[mu]
        maps = torch.cat((traces(plaquettes), scattered, v.square().sum(-1).movedim(1, -1),
                          moving, direction.expand(*moving.shape[:-1], DIRECTIONS)), dim=-1)
        return vectors, maps

    def x_update(self, theory, k, j, x, v, eps, inverse, translation, carry):
        """Sub-update ``j`` of layer ``k`` (or its inverse): left multiplication of the moving
        links by a group element built from frozen loops and ``v`` (unit Jacobian).

        The two sub-updates of a direction are consecutive and leave the plaquettes of the
        other three planes alone: ``carry`` holds them for the second.
        ``translation`` is always ``None`` (SU(3) refuses a winding)."""
        mu, sites = self.subs[j][0], self.sites[j]
        if not (isinstance(carry, FrozenPlaquettes) and carry.mu == mu):
            carry = FrozenPlaquettes(mu, self.frozen_plaquettes(x, mu))
        vectors, maps = self.x_inputs(j, x, v, carry.plaquettes)
        _, c, q = self.xnets[k](maps)
        c, q = (h.flatten(1, -2).index_select(1, sites) for h in (c, q))
        v_mu = v[:, mu].flatten(1, -2).index_select(1, sites)
        omega = torch.addcmul(combine(c, vectors), v_mu, torch.exp(eps * q))
        links = x[:, mu].flatten(1, -3)
        moved = theory.evolve_links(links.index_select(1, sites), omega, -eps if inverse else eps)
        link = links.index_copy(1, sites, moved).view_as(x[:, mu])
        x = torch.cat((x[:, :mu], link.unsqueeze(1), x[:, mu + 1:]), dim=1)
        return x, x.new_zeros(x.shape[0], dtype=v.dtype), carry
