"""Analytic flows with the face of ``dlhmc.flows.model.GaugeFlow``, for the flow samplers' tests.

The samplers must be exact for any invertible flow whose ``log|J|`` is right, trained or not, so
their tests use flows whose maps and Jacobians are known in closed form: the identity (proposals
from the Haar prior) and :class:`PlaquetteFlow`, gauge-equivariant coupling layers that move one
link of each active plaquette so that its plaquette angle goes through a circle map ``h(P) = P +
a sin P`` (``log|J| = sum log h'(P)``).  ``jacobian_scale`` misstates the Jacobian on purpose:
the exactness tests must fail with it.
"""

from __future__ import annotations

import math

import torch

from dlhmc.lattice.u1 import plaquette_angles

TWO_PI = 2 * math.pi


def wrap(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + math.pi, TWO_PI) - math.pi


class HaarFlow(torch.nn.Module):
    """The shared parts: the uniform prior on the link angles and ``sample``."""

    def __init__(self, theory):
        super().__init__()
        self.theory = theory

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        links = z[0].numel()
        return torch.full((z.shape[0],), -links * math.log(TWO_PI), dtype=z.dtype,
                          device=z.device)

    def sample(self, n: int, generator: torch.Generator):
        z = self.theory.hot_start(n, generator)
        x, logdet = self.forward(z)
        return x, self.prior_log_prob(z) - logdet


class IdentityFlow(HaarFlow):
    def forward(self, z):
        return z, torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)

    def inverse(self, x):
        return x, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)


class PlaquetteFlow(HaarFlow):
    """Four coupling layers on a lattice of even extents.  Layer ``(mu, parity)`` moves the
    links ``x_mu(n)`` with ``n_(1-mu)`` (``mu = 0``) or ``n_0`` (``mu = 1``) of that parity; the
    active plaquette ``P(n)`` of such a link holds no other moving link, so the layer is
    triangular, ``P(n) -> h(P(n))``, and gauge-equivariant (the shift is gauge invariant).
    Negative amplitudes draw the plaquettes towards 0, like ``exp(beta cos P)``: at beta 1 on
    4x4 the default ones accept ~40 % of independent proposals (the identity: ~8 %)."""

    LAYERS = ((0, 0), (1, 0), (0, 1), (1, 1))

    def __init__(self, theory, amplitudes=(-0.3, -0.25, -0.35, -0.3), jacobian_scale: float = 1.0):
        super().__init__(theory)
        if any(n % 2 for n in theory.lattice):
            raise ValueError("PlaquetteFlow needs even extents")
        self.amplitudes = amplitudes
        self.jacobian_scale = jacobian_scale

    def _mask(self, mu: int, parity: int, like: torch.Tensor) -> torch.Tensor:
        nt, nx = self.theory.lattice
        t = torch.arange(nt, device=like.device)[:, None]
        s = torch.arange(nx, device=like.device)[None, :]
        coordinate = s if mu == 0 else t
        return ((coordinate % 2 == parity) & torch.ones(nt, nx, dtype=torch.bool,
                                                        device=like.device))

    def _layer(self, x, k, inverse: bool):
        mu, parity = self.LAYERS[k]
        a = self.amplitudes[k]
        mask = self._mask(mu, parity, x)
        p = plaquette_angles(x)
        wrapped = wrap(p)
        if inverse:
            target = self._solve(wrapped, a)  # h(target) = wrapped
            shift, logdet_p = target - wrapped, -torch.log1p(a * torch.cos(target))
        else:
            shift, logdet_p = a * torch.sin(wrapped), torch.log1p(a * torch.cos(wrapped))
        sign = 1.0 if mu == 0 else -1.0  # x_0(n) enters P(n) with +, x_1(n) with -
        moved = x[:, mu] + sign * torch.where(mask, shift, torch.zeros_like(shift))
        x = torch.stack([moved, x[:, 1]] if mu == 0 else [x[:, 0], moved], dim=1)
        logdet = torch.where(mask, logdet_p, torch.zeros_like(logdet_p)).sum(dim=(1, 2))
        return wrap(x), logdet

    @staticmethod
    def _solve(y, a, iterations: int = 60):
        """``theta`` with ``theta + a sin(theta) = y`` by Newton steps (``h' >= 1 - |a|``)."""
        theta = y.clone()
        for _ in range(iterations):
            theta = theta - (theta + a * torch.sin(theta) - y) / (1 + a * torch.cos(theta))
        return theta

    def forward(self, z):
        logdet = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for k in range(len(self.LAYERS)):
            z, ld = self._layer(z, k, inverse=False)
            logdet = logdet + ld
        return z, self.jacobian_scale * logdet

    def inverse(self, x):
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for k in reversed(range(len(self.LAYERS))):
            x, ld = self._layer(x, k, inverse=True)
            logdet = logdet + ld
        return x, self.jacobian_scale * logdet


def autograd_log_jacobian(flow, z: torch.Tensor) -> float:
    """``log|det dx/dz|`` of one configuration ``z`` (links ``[2, Nt, Nx]``) by the autograd
    Jacobian, checking that the flow keeps the orientation (every circle map increases)."""
    jac = torch.autograd.functional.jacobian(
        lambda v: flow(v.view(1, *z.shape))[0].flatten(), z.flatten(), vectorize=True
    )
    sign, logabs = torch.linalg.slogdet(jac)
    assert sign > 0
    return logabs.item()
