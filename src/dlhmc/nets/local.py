"""The ``local`` L2HMC networks: periodic convolutions over gauge-invariant per-site maps.

Why this shape (physics.md, "Gauge equivariance and local layers"):

- Inputs are gauge invariant: the cosines and sines of the 2D U(1) plaquette and of the two
  1x2 rectangles at each site, the momenta ``v`` and the force ``F`` (invariant for an
  abelian group).  So every output ``s, t, q`` is invariant, which is what makes the shifts
  of the link update covariant.
- The same small kernels act at every site with circular padding, so the network is
  translation equivariant on the torus, its receptive field is fixed (``2 n + 1`` sites
  across for ``n`` 3x3 layers) and its parameter count does not depend on the lattice: a
  model trained on one torus runs, unchanged, on any other.
- Outputs are per link: two channels (directions ``mu = 0, 1``) for each of ``s, t, q``.
  The heads start near zero (:data:`~dlhmc.nets.dense.HEAD_INIT_SCALE`), so an untrained
  sampler is a leapfrog integrator, and ``s, q`` are bounded by trainable ``lambda tanh``
  like the dense heads (:func:`~dlhmc.nets.dense.bounded`): ``exp(eps s)`` can neither
  overflow nor collapse a variable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dlhmc.nets.dense import HEAD_INIT_SCALE, bounded, make_activation

# Loop maps per site: the plaquette P(n) and the rectangles P(n) + P(n + e1) (two plaquettes
# along x) and P(n) + P(n + e0) (two along t).
N_LOOPS = 3
# cos and sin of each loop map.
N_LOOP_FEATURES = 2 * N_LOOPS


def loop_angles(plaq: torch.Tensor) -> torch.Tensor:
    """``[B, 3, Nt, Nx]``: the plaquette angles ``plaq`` ``[B, Nt, Nx]`` (unwrapped) and the
    1x2 rectangles built from them; the shared inner link cancels in each sum, so the
    rectangles are Wilson loops too (gauge invariant)."""
    return torch.stack((plaq, plaq + plaq.roll(-1, 2), plaq + plaq.roll(-1, 1)), dim=1)


def loop_features(angles: torch.Tensor) -> torch.Tensor:
    """``[B, 6, Nt, Nx]``: ``cos`` then ``sin`` of the loop maps of :func:`loop_angles`."""
    return torch.cat((torch.cos(angles), torch.sin(angles)), dim=1)


def loop_incidence(links: torch.Tensor) -> torch.Tensor:
    """How many marked links each loop of :func:`loop_angles` runs over, ``[3, Nt, Nx]``.

    ``links`` ``[2, Nt, Nx]`` (0/1) marks links; a link the loop traverses twice (tiny
    tori, where a rectangle wraps) counts twice, so a zero means the loop is certainly
    made of unmarked links only.
    """
    m0, m1 = links[0], links[1]

    def at(m, dt, dx):  # m(n + dt e0 + dx e1) at n
        return m.roll((-dt, -dx), (0, 1))

    plaq = m0 + at(m1, 1, 0) + at(m0, 0, 1) + m1
    rect_x = m0 + at(m1, 1, 0) + at(m1, 1, 1) + at(m0, 0, 2) + at(m1, 0, 1) + m1
    rect_t = m0 + at(m0, 1, 0) + at(m1, 2, 0) + at(m0, 1, 1) + at(m0, 0, 1) + m1
    return torch.stack((plaq, rect_x, rect_t))


class _TorusPad(torch.autograd.Function):
    """Periodic padding by one site on each side of the last two dims.

    The forward is ``F.pad(mode="circular")``; its autograd backward builds the gradient
    from zero-filled slice copies, which dominated the backward of these small networks.
    Here the padded gradient is folded back in place: copy the interior, add the wrapped
    rows, then the wrapped columns.  First derivatives only (training needs no more).
    """

    @staticmethod
    def forward(ctx, h):
        return F.pad(h, (1, 1, 1, 1), mode="circular")

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        rows = grad[..., 1:-1, :].clone()
        rows[..., 0, :].add_(grad[..., -1, :])
        rows[..., -1, :].add_(grad[..., 0, :])
        out = rows[..., 1:-1].clone()
        out[..., 0].add_(rows[..., -1])
        out[..., -1].add_(rows[..., 0])
        return out


class TorusConv2d(nn.Conv2d):
    """A 3x3 convolution on the torus: the input is padded periodically by one site
    (:class:`_TorusPad`, measured about 3x cheaper forward plus backward than
    ``padding_mode="circular"``).  Parameters are those of ``nn.Conv2d``."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, 3)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.conv2d(_TorusPad.apply(h), self.weight, self.bias)


class TorusSeparableConv2d(nn.Module):
    """A depthwise-separable 3x3 convolution on the torus: one periodic 3x3 filter per input
    channel (``depthwise``, no bias), then a per-site linear map across channels
    (``pointwise``, a 1x1 convolution with bias).

    Why: a 3x3 convolution from ``c_in`` to ``c_out`` channels costs ``9 c_in c_out``
    multiply-adds per site, this one ``c_in (9 + c_out)``: about 5x fewer at 16 channels,
    with the same receptive field.  It is a convolution of its input maps like the full one,
    so it keeps gauge invariance (the inputs are invariant) and translation covariance.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        dw = self.depthwise.weight
        return self.pointwise(F.conv2d(_TorusPad.apply(h), dw, groups=dw.shape[0]))


CONVS = {"full": TorusConv2d, "separable": TorusSeparableConv2d}


class LocalHead(nn.Module):
    """``s = lambda_s tanh(.)``, ``t`` linear, ``q = lambda_q tanh(.)``, two channels each,
    from one 1x1 convolution (a per-site linear map) initialized near zero."""

    def __init__(self, width: int, with_s: bool = True):
        super().__init__()
        self.with_s = with_s
        self.conv = nn.Conv2d(width, 2 * (3 if with_s else 2), 1)
        with torch.no_grad():
            self.conv.weight.mul_(HEAD_INIT_SCALE)
            self.conv.bias.zero_()
        self.lambda_s = nn.Parameter(torch.ones(())) if with_s else None
        self.lambda_q = nn.Parameter(torch.ones(()))

    def _linear(self, z: torch.Tensor, rows=slice(None)) -> torch.Tensor:
        """The 1x1 convolution (output channels ``rows``) as one batched matrix product,
        measured 3x cheaper than ``conv2d`` with a 1x1 kernel at these widths."""
        weight = self.conv.weight[rows].flatten(1)
        bias = self.conv.bias[rows].unsqueeze(1)
        out = torch.baddbmm(bias, weight.expand(z.shape[0], -1, -1), z.flatten(2))
        return out.view(z.shape[0], -1, *z.shape[2:])

    def forward(self, z: torch.Tensor):
        out = self._linear(z)
        if self.with_s:
            s, t, q = out.split(2, dim=1)
            s = bounded(s, self.lambda_s)
        else:
            (t, q), s = out.split(2, dim=1), None
        return s, t, bounded(q, self.lambda_q)

    def direction(self, z: torch.Tensor, mu: int):
        """``(s, t, q)`` of direction ``mu`` only, each ``[B, *sites]``: a link sub-update
        moves one direction, so the other rows of the map are never read."""
        rows = [mu, 2 + mu, 4 + mu] if self.with_s else [mu, 2 + mu]
        out = self._linear(z, rows)
        q = bounded(out[:, -1], self.lambda_q)
        s = bounded(out[:, 0], self.lambda_s) if self.with_s else None
        return s, out[:, -2], q


def _torus_pad_channels_last(h: torch.Tensor, width: int) -> torch.Tensor:
    """Periodic padding by ``width`` sites, written in channels-last layout (``F.pad``
    returns channels-first): oneDNN's strided convolution is measured 2x faster on it."""
    n, c, rows, cols = h.shape
    w = width
    out = torch.empty((n, c, rows + 2 * w, cols + 2 * w), dtype=h.dtype, device=h.device,
                      memory_format=torch.channels_last)
    out[..., w:-w, w:-w] = h
    out[..., :w, w:-w] = h[..., -w:, :]
    out[..., -w:, w:-w] = h[..., :w, :]
    out[..., :w] = out[..., -2 * w:-w]
    out[..., -w:] = out[..., w:2 * w]
    return out


def _site_conv(h, conv, sites=None, pad=1, channels=None):
    """The convolution ``conv`` (:data:`CONVS`) of ``h`` in channels-last layout, reading
    only the input ``channels`` of its weights (``None``: all); with ``sites = (dim, offset,
    step)`` only at the sites whose coordinate along ``dim`` (-1 or -2) is ``offset mod
    step`` (a strided convolution).

    ``h`` is padded periodically by ``pad`` sites first: 1 gives the map on the lattice,
    2 the map already padded by one site, which the next convolution reads as it is (no
    copy of the wide hidden layer); 0 means that ``h`` is padded already.  The pointwise
    part of a separable convolution is one matrix product over the channels-last sites.
    """
    padded = _torus_pad_channels_last(h, pad) if pad else h
    stride = 1
    if sites is not None:
        dim, offset, step = sites
        padded = padded.narrow(dim, offset, padded.shape[dim] - offset)
        stride = (step, 1) if dim == -2 else (1, step)
    if isinstance(conv, TorusConv2d):
        weight = conv.weight if channels is None else conv.weight[:, channels]
        return F.conv2d(padded, weight, conv.bias, stride)
    depthwise, pointwise = conv.depthwise.weight, conv.pointwise.weight.flatten(1)
    if channels is not None:
        depthwise, pointwise = depthwise[channels], pointwise[:, channels]
    h = F.conv2d(padded, depthwise, None, stride, groups=depthwise.shape[0])
    return F.linear(h.permute(0, 2, 3, 1), pointwise, conv.pointwise.bias).permute(0, 3, 1, 2)


class LocalNet(nn.Module):
    """Per-site maps ``[B, in_channels, Nt, Nx]`` -> ``(s, t, q)``, each ``[B, 2, Nt, Nx]``.

    ``channels`` are the widths of the 3x3 periodic convolutions (at least one), ``conv``
    their kind (:data:`CONVS`: ``full`` or depthwise-``separable``).
    """

    def __init__(self, in_channels: int, channels: Sequence[int], activation: str,
                 with_s: bool = True, conv: str = "full"):
        super().__init__()
        if not channels:
            raise ValueError("hidden: a local network needs at least one convolution width")
        sizes = [in_channels, *channels]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(sizes, sizes[1:], strict=False):
            layers += [CONVS[conv](c_in, c_out), make_activation(activation)]
        self.body = nn.Sequential(*layers)
        self.head = LocalHead(sizes[-1], with_s)

    def forward(self, maps: torch.Tensor):
        """``self.head(self.body(maps))``; in inference every convolution after the first
        reads the hidden layer already padded (:func:`_site_conv` with ``pad=2``),
        channels-last.  Training keeps the modules: :class:`_TorusPad`'s backward is the
        cheaper one there."""
        if torch.is_grad_enabled():
            return self.head(self.body(maps))
        h = self.body[1](_site_conv(maps, self.body[0], pad=2))
        n_convs = len(self.body) // 2
        if n_convs == 1:
            return self.head(h[..., 1:-1, 1:-1])
        for i in range(1, n_convs):
            conv, act = self.body[2 * i], self.body[2 * i + 1]
            h = act(_site_conv(h, conv, pad=0 if i == 1 else 1))
        return self.head(h)

    def at_sites(self, maps, channels, sites, mu):
        """``(s, t, q)`` of direction ``mu`` at ``sites = (dim, offset, step)`` (see
        :func:`_site_conv`), each ``[B, *sites]``: what :meth:`forward` gives there, up to
        rounding, for the input that is ``maps`` on ``channels`` and zero on every other one.

        Why: a link sub-update reads the networks only at its moving links, and most input
        channels of its networks are zero (loops through a moving link).  Those are not
        convolved, and the last convolution and the head run only at the moving links
        (half or a quarter of the sites): the same weights, a fraction of the work.  The
        input is padded by two sites, so that the first convolution gives the hidden layer
        already padded for the next one (no copy of the wide hidden layer).
        """
        dim, offset, step = sites
        h = self.body[1](_site_conv(maps, self.body[0], pad=2, channels=list(channels)))
        n_convs = len(self.body) // 2
        if n_convs == 1:
            h = h[..., 1:-1, 1:-1]
            h = h[..., offset::step, :] if dim == -2 else h[..., offset::step]
        for i in range(1, n_convs):
            conv, act = self.body[2 * i], self.body[2 * i + 1]
            last = i == n_convs - 1
            h = act(_site_conv(h, conv, sites if last else None, pad=0 if i == 1 else 1))
        return self.head.direction(h, mu)


class TorusStencil(nn.Module):
    """Nearest-neighbour linear map on a periodic lattice of ``ndim`` dimensions.

    Channel-last maps ``[B, *lattice, c_in]``: the site and its ``2 ndim`` neighbours
    (``torch.roll``, so periodic) are concatenated and mapped by one linear layer.  torch
    has no 4D convolution; this stencil is its translation-equivariant stand-in, with a
    parameter count ``(2 ndim + 1) c_in c_out + c_out`` that does not depend on the lattice.
    """

    def __init__(self, c_in: int, c_out: int, ndim: int):
        super().__init__()
        self.ndim = ndim
        self.linear = nn.Linear((2 * ndim + 1) * c_in, c_out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        parts = [h]
        for dim in range(1, self.ndim + 1):
            parts += [h.roll(1, dim), h.roll(-1, dim)]
        return self.linear(torch.cat(parts, dim=-1))


class StencilNet(nn.Module):
    """Channel-last per-site maps ``[B, *lattice, in_channels]`` -> ``(s, t, q)``.

    ``channels`` are the widths of the stencil layers (at least one); the head is a
    per-site linear map to ``n_s + n_t + n_q`` channels initialized near zero (an
    untrained sampler is a leapfrog integrator), with ``s = lambda_s tanh``, ``t`` linear,
    ``q = lambda_q tanh`` as in :class:`LocalHead`.  ``s`` is ``None`` when ``n_s = 0``.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], activation: str,
                 outputs: tuple[int, int, int], ndim: int):
        super().__init__()
        if not channels:
            raise ValueError("hidden: a local network needs at least one stencil width")
        sizes = [in_channels, *channels]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(sizes, sizes[1:], strict=False):
            layers += [TorusStencil(c_in, c_out, ndim), make_activation(activation)]
        self.body = nn.Sequential(*layers)
        self.outputs = tuple(outputs)
        self.head = nn.Linear(sizes[-1], sum(self.outputs))
        with torch.no_grad():
            self.head.weight.mul_(HEAD_INIT_SCALE)
            self.head.bias.zero_()
        self.lambda_s = nn.Parameter(torch.ones(())) if self.outputs[0] else None
        self.lambda_q = nn.Parameter(torch.ones(()))

    def forward(self, maps: torch.Tensor):
        s, t, q = self.head(self.body(maps)).split(self.outputs, dim=-1)
        s = bounded(s, self.lambda_s) if self.lambda_s is not None else None
        return s, t, bounded(q, self.lambda_q)
