"""Local, gauge-covariant L2HMC leapfrog layers for 2D U(1) (config ``network: local``).

A layer is, as for the dense family: momentum update, link updates covering every link
once, momentum update.  What changes is what the networks read and how links move.

**Momentum update**, ``v' = v exp(eps/2 s_v) - eps/2 (F exp(eps q_v) + t_v)`` with
``(s_v, t_v, q_v)`` from a :class:`~dlhmc.nets.local.LocalNet` on the plaquette and
rectangle maps of the links and the force.  All are gauge invariant, and so are ``v`` and
``F`` in U(1): ``v'`` is invariant and ``log|J| = sum eps/2 s_v``.

**Link updates** (equivariant flows, Kanwar et al. arXiv:2003.06413).  Sub-update
``(mu, o)`` moves the links of direction ``mu`` whose coordinate across ``mu`` is
``o mod p`` (``p = config.local_period``, ``o = 0..p-1``): ``2 p`` sub-updates per layer,
each link once.  No two moving links are then neighbours across ``mu``, so each moving
link ``x_mu(n)`` is the only moving link of its *active* plaquette ``P(n)`` (orientation
``sign = +1`` for ``mu = 0``, ``-1`` for ``mu = 1``) and of one passive plaquette, which
nothing reads.  With ``s, t, q`` from a network that reads only loops made of frozen links
(zeroed elsewhere), the indicator of the moving links and ``v``::

    h(P)    = 2 atan(exp(eps s) tan(P/2))        (the non-compact projection, a circle map)
    x_mu'   = x_mu + sign (h(P) - P) + eps (v exp(eps q) + t)     on the moving links.

The active plaquette becomes ``h(P) + sign eps (v exp(eps q) + t)``.

*Covariance.*  Under ``x_mu(n) -> x_mu(n) + a(n) - a(n + mu)`` the plaquettes, ``v`` and
hence ``s, t, q`` are unchanged, so the shift added to ``x_mu`` is invariant and the update
commutes with every gauge transformation.  (The dense family's ``tan(x/2)`` scaling of a
link angle does not: it does not commute with ``x -> x + a``.)  The winding translation of
the middle layer is a constant shift, covariant as well; it is added to the shift of each
sub-update.

*Exactness.*  The networks read nothing a sub-update moves (the frozen loops and ``v``),
so it is inverted in closed form: recompute the active plaquette from ``x'`` and the
frozen links, undo the momentum shift, invert ``h`` (``h^-1`` is ``h`` with ``-s``) and move
the link back.  Each moving link enters only its own active plaquette, so the Jacobian of
a sub-update is diagonal with entries ``dx'/dx = h'(P)``, and
``log|J| = sum over active plaquettes of log h'(P)``.  With all networks zero, ``h`` is the
identity and the sub-updates together are the drift ``x += eps v`` of every link: one layer
is one leapfrog step.

*Period 4 or 2.*  With ``p = 4`` (the published flows) the networks read the plaquettes of
the two untouched columns (rows) of every four and the 1x2 rectangle around each moving
link (the link cancels between its active and passive plaquette, so the rectangle is
frozen).  With ``p = 2`` every plaquette holds a moving link, and only those rectangles
are frozen; but the action depends on a moving link only through its two plaquettes,
whose sum is that rectangle ``R``: given the frozen links, the active plaquette is
distributed as ``exp(beta cos P + beta cos(R - P))``, a function of ``R`` alone, which the
network does read.  ``p = 2`` needs half the network evaluations (measured 40%
less time per trajectory at 16x16).  The masks need no two moving columns (rows) to be
neighbours on the torus: ``p = 4`` refuses extents ``4k + 1`` (``k >= 1``), ``p = 2`` odd
extents.

One network per layer serves all sub-updates (the indicator channels tell it which
links move), and one per layer the two momentum updates, as in the dense family.
"""

from __future__ import annotations

import torch
from torch import nn

from dlhmc.group.u1 import circle_map, wrap
from dlhmc.lattice.u1 import plaquette_angles
from dlhmc.nets.local import (
    N_LOOP_FEATURES,
    N_LOOPS,
    LocalNet,
    loop_angles,
    loop_features,
    loop_incidence,
)

# Orientation of the moving link x_mu(n) in its active plaquette P(n).
SIGNS = (1.0, -1.0)


def link_masks(lattice: tuple[int, int], period: int
               ) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """The non-empty sub-updates ``(mu, o)`` and their moving links ``[n_sub, 2, Nt, Nx]``.

    Raises ``ValueError`` where the masks cannot give every moving link an active plaquette
    of its own.
    """
    nt, nx = lattice
    across = (
        torch.arange(nx).view(1, nx).expand(nt, nx),  # mu = 0 links: the x coordinate
        torch.arange(nt).view(nt, 1).expand(nt, nx),  # mu = 1 links: the t coordinate
    )
    subs, masks = [], []
    for mu in (0, 1):
        for offset in range(period):
            mask = torch.zeros(2, nt, nx, dtype=torch.bool)
            mask[mu] = across[mu] % period == offset
            if mask.any():
                subs.append((mu, offset))
                masks.append(mask)
    masks = torch.stack(masks)
    for mask in masks:
        moving_in_plaquette = loop_incidence(mask.double())[0]
        if (moving_in_plaquette[mask.any(0)] != 1).any():
            need = "even extents" if period == 2 else "extents other than 4k + 1 (k >= 1)"
            raise ValueError(f"lattice: the local link masks of period {period} need {need}, "
                             f"got {tuple(lattice)}")
    return subs, masks


class LocalU1Layers(nn.Module):
    """Networks and updates of the ``local`` family on an ``Nt x Nx`` U(1) torus.

    Only the masks depend on the lattice, and they are not saved with the weights
    (non-persistent buffers): the same state dict loads into a model for any volume.
    ``config.hidden`` are the channel widths of every network's 3x3 convolutions,
    ``config.local_period`` the period of the link masks.

    ``config.local_conv`` is the kind of those convolutions (:data:`dlhmc.nets.local.CONVS`):
    ``full``, the architecture of every model stored before the setting existed (checkpoint
    format 4 gives them ``full``), or ``separable`` (depthwise 3x3 then pointwise 1x1: about
    5x fewer multiply-adds, measured 1.25-1.3x cheaper per trajectory at 16x16 and learning
    as well on 8x8, docs/results.md, 2026-12-06 third session), whose weights have other
    shapes.
    """

    # Input channels of the momentum and the link networks (all loops and the force; frozen
    # loops, v and the moving-link indicator), and their outputs (s, t, q per direction).
    widths = ((N_LOOP_FEATURES + 2, N_LOOP_FEATURES + 2 + 2), (6, 6))

    def __init__(self, lattice: tuple[int, int], config):
        super().__init__()
        self.subs, masks = link_masks(tuple(lattice), config.local_period)
        self.n_sub_updates = len(self.subs)
        keep = torch.stack([loop_incidence(m.double()) == 0 for m in masks])
        self.register_buffer("moving", masks, persistent=False)
        # Loop features (cos, then sin, of each loop map) kept for each sub-update.
        self.register_buffer("keep", keep.repeat(1, 2, 1, 1), persistent=False)
        # Float copies (moved to the model's precision with it), read on every sub-update.
        self.register_buffer("keep_float", self.keep.double(), persistent=False)
        self.register_buffer("moving_float", masks.double(), persistent=False)
        # Per sub-update: the loops that are not zero everywhere (with p = 2 one rectangle)
        # and where its moving links sit.
        self.loops = [tuple(loop for loop in range(N_LOOPS) if keep_j[loop].any())
                      for keep_j in keep]
        self.sites = [(-1 if mu == 0 else -2, offset, config.local_period)
                      for mu, offset in self.subs]
        (v_in, x_in), _ = self.widths
        self.vnets = nn.ModuleList(
            LocalNet(v_in, config.hidden, config.activation, conv=config.local_conv)
            for _ in range(config.nlf)
        )
        self.xnets = nn.ModuleList(
            LocalNet(x_in, config.hidden, config.activation, conv=config.local_conv)
            for _ in range(config.nlf)
        )

    @staticmethod
    def check_lattice(lattice: tuple[int, int], config) -> None:
        link_masks(lattice, config.local_period)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the momentum networks read of the links: ``[B, 6, Nt, Nx]`` loop maps."""
        return loop_features(loop_angles(plaquette_angles(x)))

    def v_terms(self, k, force, features):
        return self.vnets[k](torch.cat((features, force), dim=1))

    def x_inputs(self, j, x, v):
        """Plaquette angles of ``x`` and the link network's input for sub-update ``j``:
        loops of frozen links only (the rest zeroed), ``v`` and the moving-link indicator."""
        plaq = plaquette_angles(x)
        frozen = loop_features(loop_angles(plaq)) * self.keep[j].to(x.dtype)
        indicator = self.moving[j].to(x.dtype).expand(x.shape[0], -1, -1, -1)
        return plaq, torch.cat((frozen, v, indicator), dim=1)

    def x_update(self, theory, k, j, x, v, eps, inverse, translation, carry):
        """Sub-update ``j`` of layer ``k`` (or its inverse): the circle map of each active
        plaquette plus the momentum shift, moved onto its one moving link.

        The network is what :meth:`x_inputs` feeds ``xnets[k]``, evaluated only at the
        moving links and without its input channels that are zero everywhere
        (:meth:`LocalNet.at_sites`); the update runs on the moving links alone and every
        other link is copied.
        """
        mu, sign = self.subs[j][0], SIGNS[self.subs[j][0]]
        dim, offset, step = self.sites[j]
        loops = self.loops[j]
        kept = (*loops, *(N_LOOPS + loop for loop in loops))
        plaq = plaquette_angles(x)
        frozen = loop_features(loop_angles(plaq)[:, loops]) * self.keep_float[j, kept]
        indicator = self.moving_float[j].expand(x.shape[0], -1, -1, -1)
        channels = (*kept, *range(N_LOOP_FEATURES, N_LOOP_FEATURES + 4))
        s, t, q = self.xnets[k].at_sites(torch.cat((frozen, v, indicator), dim=1), channels,
                                         self.sites[j], mu)

        def at(a):  # a [..., Nt, Nx] at the moving links of sub-update j
            return a[..., offset::step, :] if dim == -2 else a[..., offset::step]

        plaq, x_mu = at(plaq), at(x[:, mu])
        es = eps * s
        shift = eps * (at(v[:, mu]) * torch.exp(eps * q) + t)
        if translation is not None:
            shift = shift + at(translation[mu])
        # y: the active plaquette before the circle map (after it, inverse).
        if inverse:
            y, es = wrap(plaq - sign * shift), -es
        else:
            y = wrap(plaq)
        mapped, log_jac = circle_map(y, es)
        if inverse:
            link = x_mu - shift + sign * (mapped - y)
        else:
            link = x_mu + sign * (mapped - y) + shift
        out = x.clone()
        at(out[:, mu]).copy_(wrap(link))
        return out, log_jac.sum((1, 2)), None
