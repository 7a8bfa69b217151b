"""One gauge-equivariant coupling layer: the ``local`` family's link update without momenta.

Layer ``(mu, o)`` moves the links of direction ``mu`` whose coordinate across ``mu`` is
``o mod p`` (the masks of :func:`dlhmc.families.local_u1.link_masks`, period ``p`` 4 or 2).
Each moving link ``x_mu(n)`` is the only moving link of its *active* plaquette ``P(n)``
(orientation ``sign``: ``+1`` for ``mu = 0``, ``-1`` for ``mu = 1``), so the layer can set
that plaquette to ``h(P) + t`` (:mod:`dlhmc.flows.mixture`) by adding ``sign (h(P) + t - P)``
to the link; its other (passive) plaquette changes as a consequence and nothing reads it.

The parameters of ``h`` and ``t`` come from a network of periodic 3x3 convolutions over the
cosines and sines of the loops made of *frozen* links only (plaquettes and 1x2 rectangles that
contain no moving link; the rest zeroed), read at the active plaquettes.  Hence:

- *gauge equivariance*: under ``x_mu(n) -> x_mu(n) + a(n) - a(n + mu)`` every loop is
  unchanged, so the shift added to each moving link is invariant and the layer commutes with
  the transformation;
- *exact inverse and Jacobian*: the network reads nothing the layer moves, so the inverse
  recomputes its parameters from the moved links and inverts ``h`` (bisection), and
  ``dx'/dx`` is triangular with diagonal ``h'(P)`` on the moving links:
  ``log|J| = sum over active plaquettes of log h'(P)``;
- *any volume*: only the masks depend on the lattice (non-persistent buffers), the weights do
  not, so a flow trained on one torus runs on any other that the masks fit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dlhmc.families.local_u1 import SIGNS, link_masks
from dlhmc.flows import mixture
from dlhmc.group.u1 import wrap
from dlhmc.lattice.u1 import plaquette_angles
from dlhmc.nets.dense import HEAD_INIT_SCALE, make_activation
from dlhmc.nets.local import N_LOOPS, TorusConv2d, loop_angles, loop_features, loop_incidence


def kept_loops(mu: int, offset: int, period: int) -> tuple[int, ...]:
    """The loop maps (of :func:`~dlhmc.nets.local.loop_angles`) that hold frozen loops for the
    mask ``(mu, offset)``: read on a torus of ``4 p`` sites each way, where no loop wraps, so
    the network's input channels are the same on every lattice."""
    side = 4 * period
    subs, masks = link_masks((side, side), period)
    frozen = loop_incidence(masks[subs.index((mu, offset))].double()) == 0
    return tuple(loop for loop in range(N_LOOPS) if frozen[loop].any())


class FlowNet(nn.Module):
    """Loop features ``[B, C, Nt, Nx]`` -> the map's parameters ``[B, N_PARAMETERS, Nt, Nx]``.

    3x3 periodic convolutions (translation equivariant, a receptive field of ``2 n + 1`` sites
    for ``n`` layers, weights independent of the volume) and a per-site linear head started near
    zero, so that an untrained layer is close to the identity (``h`` with ``s = 0``, uniform
    weights, ``t = 0``): training starts from the Haar prior.
    """

    def __init__(self, in_channels: int, hidden: Sequence[int], activation: str):
        super().__init__()
        sizes = [in_channels, *hidden]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(sizes, sizes[1:], strict=False):
            layers += [TorusConv2d(c_in, c_out), make_activation(activation)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(sizes[-1], mixture.N_PARAMETERS, 1)
        with torch.no_grad():
            self.head.weight.mul_(HEAD_INIT_SCALE)
            self.head.bias.zero_()

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(maps))

    def at_sites(self, maps: torch.Tensor, dim: int, offset: int, step: int) -> torch.Tensor:
        """:meth:`forward` at the sites whose coordinate along ``dim`` (-1 or -2) is ``offset
        mod step`` only, up to rounding.

        Why: a layer reads its parameters at the active plaquettes alone (a quarter or half of
        the sites), so the last convolution runs strided over them and the head on them only:
        the same weights, less work in every pass through the flow.
        """
        h = self.body[:-2](maps)
        last, act = self.body[-2], self.body[-1]
        # Periodic padding by one site (cat: its backward is a cheap slice of the gradient).
        h = torch.cat((h[..., -1:, :], h, h[..., :1, :]), dim=-2)
        h = torch.cat((h[..., -1:], h, h[..., :1]), dim=-1)
        h = h.narrow(dim, offset, h.shape[dim] - offset)
        stride = (1, step) if dim == -1 else (step, 1)
        return self.head(act(F.conv2d(h, last.weight, last.bias, stride=stride)))


class PlaquetteCoupling(nn.Module):
    """The coupling layer of mask ``(mu, offset)`` on links ``[B, 2, Nt, Nx]``.

    ``moving`` is the mask's moving links on this lattice (``[2, Nt, Nx]``, from
    :func:`~dlhmc.families.local_u1.link_masks`), or ``None`` where the lattice is too small
    to hold a column (row) of offset ``offset``: the layer is then the identity there.
    """

    def __init__(self, mu: int, offset: int, period: int, moving: torch.Tensor | None,
                 hidden: Sequence[int], activation: str):
        super().__init__()
        self.mu, self.offset, self.period = mu, offset, period
        self.sign = SIGNS[mu]
        self.loops = kept_loops(mu, offset, period)
        self.net = FlowNet(2 * len(self.loops), hidden, activation)
        self.empty = moving is None
        if not self.empty:
            frozen = (loop_incidence(moving.double()) == 0)[list(self.loops)]
            # cos, then sin, of each kept loop map: zero where the loop holds a moving link.
            self.register_buffer("keep", frozen.repeat(2, 1, 1).double(), persistent=False)

    def _at(self, a: torch.Tensor) -> torch.Tensor:
        """``a [..., Nt, Nx]`` at the moving links: columns (``mu = 0``) or rows (``mu = 1``)
        of coordinate ``offset mod period``."""
        if self.mu == 0:
            return a[..., self.offset::self.period]
        return a[..., self.offset::self.period, :]

    def _parameters_at_active(self, plaq: torch.Tensor) -> torch.Tensor:
        """The network's outputs at the active plaquettes, from the frozen loops of ``plaq``."""
        maps = loop_features(loop_angles(plaq)[:, list(self.loops)]) * self.keep
        return self.net.at_sites(maps, -1 if self.mu == 0 else -2, self.offset, self.period)

    def _move(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """``x`` with each moving link shifted so that its active plaquette moves by ``delta``."""
        out = x.clone()
        self._at(out[:, self.mu]).copy_(wrap(self._at(x[:, self.mu]) + self.sign * delta))
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x', log|dx'/dx|)`` per chain."""
        if self.empty:
            return x, x.new_zeros(x.shape[0])
        plaq = plaquette_angles(x)
        delta, log_d = mixture.forward(wrap(self._at(plaq)), self._parameters_at_active(plaq))
        return self._move(x, delta), log_d.sum((-2, -1))

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, log|dx/dx'|)`` for the output ``x'`` of :meth:`forward`."""
        if self.empty:
            return x, x.new_zeros(x.shape[0])
        plaq = plaquette_angles(x)
        delta, log_d = mixture.inverse(self._at(plaq), self._parameters_at_active(plaq))
        return self._move(x, -delta), -log_d.sum((-2, -1))
