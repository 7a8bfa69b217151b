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

from dlhmc.families.local_u1 import SIGNS, link_masks
from dlhmc.flows import mixture
from dlhmc.group.u1 import wrap
from dlhmc.nets.dense import HEAD_INIT_SCALE, make_activation
from dlhmc.nets.local import N_LOOPS, TorusConv2d, loop_incidence


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
    weights, ``t = 0``): training starts from the Haar prior.  The head's output is multiplied
    by ``output_scale`` (a bridge's step, :func:`dlhmc.flows.model.bridge_output_scale`).  A
    coupling layer evaluates it with :meth:`at_sites`; :meth:`forward` is the same map on every
    site (the reference).
    """

    def __init__(self, in_channels: int, hidden: Sequence[int], activation: str,
                 output_scale: float = 1.0):
        super().__init__()
        self.output_scale = output_scale
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
        return self.head(self.body(maps)) * self.output_scale

    def at_sites(self, maps: torch.Tensor, gathers: Sequence[torch.Tensor]) -> torch.Tensor:
        """:meth:`forward` at some sites only, up to rounding, in batch-last layout: the maps
        ``[C, Nt * Nx, B]`` -> the parameters ``[N_PARAMETERS, n, B]``.

        ``gathers`` (:func:`site_gathers`) holds one index per convolution: the sites of its
        input that make the 3x3 neighbourhoods of the ``n_l`` sites at which it is needed,
        tap-major.  Why: a layer reads its parameters at the active plaquettes alone (a quarter
        or half of the sites), so each convolution runs only where the next one reads it, as
        one gather (``[C, 9 n_l, B]``, a view ``[C * 9, n_l * B]``: rows in the order of the
        ``nn.Conv2d`` weight ``[out, C, 3, 3]``) and one matrix product, and the head as
        another.  Batch last makes each gathered row ``B`` contiguous numbers and every product
        ``[out, K] @ [K, n_l B]``, the orientation that MKL runs fast for these narrow outputs:
        measured 2x cheaper forward plus backward than periodic ``conv2d``, its strided
        evaluation at the active sites and a 1x1 ``conv2d`` head (U(1) 8x8, batch 64).
        """
        h, batch = maps, maps.shape[-1]
        for conv, act, index in zip(self.body[::2], self.body[1::2], gathers, strict=True):
            cols = h.index_select(1, index).view(9 * h.shape[0], -1)
            h = act(torch.addmm(conv.bias.unsqueeze(1), conv.weight.flatten(1), cols))
            h = h.view(h.shape[0], -1, batch)
        scale = self.output_scale
        out = torch.addmm(self.head.bias.unsqueeze(1), self.head.weight.flatten(1), h.flatten(1),
                          beta=scale, alpha=scale)
        return out.view(out.shape[0], -1, batch)


def neighbourhoods(sites: torch.Tensor, lattice: tuple[int, int]) -> torch.Tensor:
    """``[9, n]``: the flat indices of the 3x3 periodic neighbourhoods of the flat ``sites``
    ``[n]`` on ``lattice``, row ``3 (dt + 1) + (dx + 1)`` for the neighbour at ``(dt, dx)``
    (the order of a 3x3 kernel's taps)."""
    nt, nx = lattice
    t, x = sites // nx, sites % nx
    return torch.stack([((t + dt) % nt) * nx + (x + dx) % nx
                        for dt in (-1, 0, 1) for dx in (-1, 0, 1)])


def site_gathers(sites: torch.Tensor, lattice: tuple[int, int], convolutions: int
                 ) -> list[torch.Tensor]:
    """The indices :meth:`FlowNet.at_sites` gathers with to evaluate a stack of
    ``convolutions`` 3x3 convolutions at the flat ``sites`` only: the last one at ``sites``,
    each earlier one at the sites the next one reads (the union of their neighbourhoods,
    ascending), the first one reading the full map.  Entry ``l`` (``[9 n_l]``, tap-major)
    indexes the sites of convolution ``l``'s input: all ``Nt * Nx`` for ``l = 0``, else
    those of convolution ``l - 1``."""
    needed = [sites]
    for _ in range(convolutions - 1):
        needed.insert(0, torch.unique(neighbourhoods(needed[0], lattice)))
    gathers, rows = [], torch.arange(lattice[0] * lattice[1])
    for at in needed:
        gathers.append(rows[neighbourhoods(at, lattice)].flatten())
        rows = torch.full((lattice[0] * lattice[1],), -1, dtype=torch.long)
        rows[at] = torch.arange(len(at))
    return gathers


def batch_last(x: torch.Tensor) -> torch.Tensor:
    """Links ``[B, 2, Nt, Nx]`` as the coupling layers take them, ``[2, Nt, Nx, B]``."""
    return x.permute(1, 2, 3, 0).contiguous()


def batch_first(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`batch_last`."""
    return x.permute(3, 0, 1, 2).contiguous()


def plaquettes(x: torch.Tensor) -> torch.Tensor:
    """:func:`dlhmc.lattice.u1.plaquette_angles` of batch-last links ``[2, Nt, Nx, B]``:
    ``x_0(n) + x_1(n + e0) - x_0(n + e1) - x_1(n)``, ``[Nt, Nx, B]``, not wrapped."""
    x0, x1 = x[0], x[1]
    return x0 - x1 + x1.roll(-1, 0) - x0.roll(-1, 1)


class PlaquetteCoupling(nn.Module):
    """The coupling layer of mask ``(mu, offset)`` on batch-last links ``[2, Nt, Nx, B]``
    (:func:`batch_last`: the flow converts once, every layer gathers whole rows of the batch).

    ``moving`` is the mask's moving links on this lattice (``[2, Nt, Nx]``, from
    :func:`~dlhmc.families.local_u1.link_masks`), or ``None`` where the lattice is too small
    to hold a column (row) of offset ``offset``: the layer is then the identity there.
    """

    def __init__(self, mu: int, offset: int, period: int, moving: torch.Tensor | None,
                 hidden: Sequence[int], activation: str, output_scale: float = 1.0):
        super().__init__()
        self.mu, self.offset, self.period = mu, offset, period
        self.sign = SIGNS[mu]
        self.loops = kept_loops(mu, offset, period)
        self.net = FlowNet(2 * len(self.loops), hidden, activation, output_scale)
        self.empty = moving is None
        if not self.empty:
            frozen = (loop_incidence(moving.double()) == 0)[list(self.loops)]
            # cos, then sin, of each kept loop map: zero where the loop holds a moving link
            # ([channels, Nt * Nx, 1], as FlowNet.at_sites reads the maps).
            keep = frozen.repeat(2, 1, 1).flatten(1).unsqueeze(-1).double()
            self.register_buffer("keep", keep, persistent=False)
            # What the network's convolutions gather to run at the active plaquettes only
            # (in the order of at_moving).
            lattice = tuple(moving.shape[1:])
            active = self.at_moving(torch.arange(moving[0].numel()).view(lattice)).flatten()
            self.gathers = len(hidden)
            for k, index in enumerate(site_gathers(active, lattice, len(hidden))):
                self.register_buffer(f"gather{k}", index, persistent=False)

    def at_moving(self, a: torch.Tensor) -> torch.Tensor:
        """``a [Nt, Nx, ...]`` at the moving links: columns (``mu = 0``) or rows (``mu = 1``)
        of coordinate ``offset mod period``; a view, so the path gradient
        (:mod:`dlhmc.flows.path`) writes the moving links' scores through it."""
        if self.mu == 0:
            return a[:, self.offset::self.period]
        return a[self.offset::self.period]

    def _parameters_at_active(self, plaq: torch.Tensor) -> torch.Tensor:
        """The network's outputs at the active plaquettes, ``[N_PARAMETERS,
        *at_moving(plaq).shape]``, from the frozen loops of ``plaq`` ``[Nt, Nx, B]``."""
        # The loops of loop_angles: plaquette, rectangles along x (dim 1) and along t (dim 0).
        angles = torch.stack([plaq if k == 0 else plaq + plaq.roll(-1, 2 - k)
                              for k in self.loops]).flatten(1, 2)
        maps = torch.cat((torch.cos(angles), torch.sin(angles))) * self.keep
        gathers = [getattr(self, f"gather{k}") for k in range(self.gathers)]
        params = self.net.at_sites(maps, gathers)
        return params.view(params.shape[0], *self.at_moving(plaq).shape)

    def _move(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """``x`` with each moving link shifted so that its active plaquette moves by ``delta``."""
        out = x.clone()
        self.at_moving(out[self.mu]).copy_(wrap(self.at_moving(x[self.mu]) + self.sign * delta))
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x', log|dx'/dx|)``, the latter per chain ``[B]``."""
        if self.empty:
            return x, x.new_zeros(x.shape[-1])
        plaq = plaquettes(x)
        # The map is elementwise over every dim but the components (dim 1): a batch of one.
        delta, log_d = mixture.forward(wrap(self.at_moving(plaq)).unsqueeze(0),
                                       self._parameters_at_active(plaq).unsqueeze(0))
        return self._move(x, delta[0]), log_d[0].sum((0, 1))

    def forward_with_slope(self, x: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward`'s ``(x', log|dx'/dx|)``, then ``log h'`` and ``d log h'/dP`` at the
        active plaquettes (``at_moving`` of ``[Nt, Nx, B]``, the latter a value only); not for an
        empty layer.  The path gradient (:mod:`dlhmc.flows.path`) reads them."""
        plaq = plaquettes(x)
        delta, log_d, d_log_d = mixture.forward_with_slope(
            wrap(self.at_moving(plaq)).unsqueeze(0), self._parameters_at_active(plaq).unsqueeze(0))
        return self._move(x, delta[0]), log_d[0].sum((0, 1)), log_d[0], d_log_d[0]

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, log|dx/dx'|)`` for the output ``x'`` of :meth:`forward`."""
        if self.empty:
            return x, x.new_zeros(x.shape[-1])
        plaq = plaquettes(x)
        delta, log_d = mixture.inverse(self.at_moving(plaq).unsqueeze(0),
                                       self._parameters_at_active(plaq).unsqueeze(0))
        return self._move(x, -delta[0]), -log_d[0].sum((0, 1))
