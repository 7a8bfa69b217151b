"""The ``dense`` L2HMC networks (the paper's design): maps from frozen variables to the (s, t, q)
of an update, each reading every link of the lattice.

Every network here is a function of variables the update it drives leaves unchanged
(links and force for a momentum update; the frozen half of the links and the
momentum for a link update).  That is what makes each update invertible in closed
form with a Jacobian that is a product of ``exp(s)`` factors.

The heads start close to zero (``init_scale``), so an untrained sampler is a
leapfrog integrator with step sizes ``eps_v, eps_x`` and training starts from a
sampler with sensible acceptance instead of from random dynamics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

ACTIVATIONS = {"swish": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh}

# Scale of the initial head weights relative to PyTorch's default initialization.
HEAD_INIT_SCALE = 1e-2


def make_activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        known = ", ".join(ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r} (expected one of {known})") from None


class HeadLinear(nn.Module):
    """``z W + b`` with the weight stored ``[in, out]``, initialized like ``nn.Linear`` times
    ``scale`` (bias zero).

    The heads map a narrow last hidden layer onto every unit.  With this layout the
    weight gradient is ``z^T g`` (a ``[in, out]`` product) instead of ``g^T z``, which
    MKL computes up to twice as fast for such shapes (measured: 22 -> 512 features).
    """

    def __init__(self, in_size: int, out_size: int, scale: float = 1.0):
        super().__init__()
        bound = scale / math.sqrt(in_size)
        self.weight = nn.Parameter(torch.empty(in_size, out_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(out_size))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, z, self.weight)


class STQHead(nn.Module):
    """``s = lambda_s tanh(W_s z)``, ``t = W_t z``, ``q = lambda_q tanh(W_q z)``.

    The tanh bounds the log-scales so that ``exp(eps s)`` can neither overflow nor
    collapse a variable to zero; the trainable amplitudes ``lambda`` let training
    choose how large those scalings may get.  ``with_s=False`` is for link updates
    that cannot scale their variable (SU(3) links); ``s`` is then ``None``.

    ``tanh u = 2 sigmoid(2 u) - 1`` is evaluated through the sigmoid, several times
    cheaper than ``tanh`` on CPUs: the heads are the widest layers of every network.
    (Concatenating the three heads into one matrix product measured no faster: the
    products are large enough already, and the concatenation copies the weights.)
    """

    def __init__(self, width: int, out_size: int, with_s: bool = True):
        super().__init__()
        self.s = HeadLinear(width, out_size, HEAD_INIT_SCALE) if with_s else None
        self.t = HeadLinear(width, out_size, HEAD_INIT_SCALE)
        self.q = HeadLinear(width, out_size, HEAD_INIT_SCALE)
        self.lambda_s = nn.Parameter(torch.ones(())) if with_s else None
        self.lambda_q = nn.Parameter(torch.ones(()))

    def forward(self, z: torch.Tensor):
        q = bounded(self.q(z), self.lambda_q)
        s = bounded(self.s(z), self.lambda_s) if self.s is not None else None
        return s, self.t(z), q


def bounded(u: torch.Tensor, amplitude: torch.Tensor) -> torch.Tensor:
    """``amplitude * tanh(u)``, evaluated as ``amplitude * (2 sigmoid(2 u) - 1)``.

    The same function (to rounding), measured 6x cheaper than ``torch.tanh`` per element on
    CPUs, where the bounded heads of every network are a visible part of a layer.
    """
    return torch.sigmoid(u * 2.0).mul(2.0 * amplitude).sub_(amplitude)


class Gather(nn.Module):
    """Picks the frozen links' features and flattens them: the network never sees the rest.

    ``index`` selects units of ``[B, n_units, f]`` features; the selection is done on
    the flattened ``[B, n_units * f]`` tensor with one index per feature, whose
    backward (an ``index_add``) is several times faster than one along a middle dim.
    """

    def __init__(self, index: torch.Tensor, n_features: int):
        super().__init__()
        flat = (index[:, None] * n_features + torch.arange(n_features)).flatten()
        self.register_buffer("index", flat, persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.flatten(1).index_select(1, self.index)


class PeriodicConv(nn.Module):
    """Convolutional front end for 2D U(1) link features with periodic padding.

    Input ``[B, n_links = 2 * Nt * Nx, f]`` (links of direction ``mu`` at site ``(t, x)``),
    rearranged to ``[B, 2 f, Nt, Nx]`` channels.  Links whose ``keep`` entry is 0 are
    zeroed first, so an x-network built on it still sees only the frozen links.
    Circular padding respects the torus, so the features are translation covariant.
    """

    kernel_size = 3

    def __init__(
        self,
        lattice: tuple[int, int],
        n_features: int,
        channels: Sequence[int],
        activation: str,
        keep: torch.Tensor | None = None,
    ):
        super().__init__()
        self.lattice = tuple(lattice)
        self.n_features = n_features
        sizes = [2 * n_features, *channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, self.kernel_size)
            for c_in, c_out in zip(sizes, sizes[1:], strict=False)
        )
        self.act = make_activation(activation)
        keep = torch.ones(2 * lattice[0] * lattice[1]) if keep is None else keep.float()
        self.register_buffer("keep", keep, persistent=False)
        self.out_size = channels[-1] * lattice[0] * lattice[1]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch = features.shape[0]
        h = features * self.keep.to(features.dtype)[None, :, None]
        h = h.reshape(batch, 2, *self.lattice, self.n_features)
        h = h.permute(0, 1, 4, 2, 3).reshape(batch, 2 * self.n_features, *self.lattice)
        pad = self.kernel_size // 2
        for conv in self.convs:
            h = self.act(conv(F.pad(h, (pad, pad, pad, pad), mode="circular")))
        return h.flatten(1)


class LeapfrogNet(nn.Module):
    """MLP ``(a, b) -> (s, t, q)`` on two inputs, each flattened per chain.

    ``a`` (links: features of all or of the frozen links) passes a front end
    (``Gather``, ``PeriodicConv`` or plain flattening), ``b`` (force or momentum) is
    flattened; both enter the first hidden layer through their own weights.
    """

    def __init__(
        self,
        a_size: int,
        b_size: int,
        out_size: int,
        hidden: Sequence[int],
        activation: str,
        with_s: bool = True,
        front: nn.Module | None = None,
    ):
        super().__init__()
        if not hidden:
            raise ValueError("hidden: at least one hidden layer is needed")
        self.front = front if front is not None else nn.Flatten()
        self.a_in = nn.Linear(a_size, hidden[0])
        self.b_in = nn.Linear(b_size, hidden[0], bias=False)
        self.act = make_activation(activation)
        layers: list[nn.Module] = []
        for w_in, w_out in zip(hidden, hidden[1:], strict=False):
            layers += [nn.Linear(w_in, w_out), make_activation(activation)]
        self.body = nn.Sequential(*layers)
        self.head = STQHead(hidden[-1], out_size, with_s)

    def forward(self, a: torch.Tensor, b: torch.Tensor):
        # b's weights accumulate onto a's first layer in the same matrix product.
        z = self.act(torch.addmm(self.a_in(self.front(a)), b.flatten(1), self.b_in.weight.t()))
        return self.head(self.body(z))
