"""Shared set-up of the L2HMC exactness tests: random networks and the autograd Jacobian."""

from __future__ import annotations

import torch

from dlhmc.samplers.l2hmc import L2HMCDynamics


def randomize(dyn: L2HMCDynamics, scale: float = 0.3, seed: int = 0) -> L2HMCDynamics:
    """Weights of order ``scale`` and step sizes spread around their initial value."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in dyn.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if name.startswith("log_eps"):
                p.add_(0.3 * noise)
            else:
                p.copy_(scale * noise)
    return dyn


def sumlogdet_and_autograd_logdet(dyn: L2HMCDynamics, direction: int, seed: int = 6):
    """``sum log|J|`` of one trajectory and ``log|det|`` of its full ``(x, v)`` Jacobian.

    The angle wrap has derivative 1, so autograd sees the smooth map the Jacobian is of.
    """
    theory = dyn.theory
    gen = torch.Generator().manual_seed(seed)
    x, v = theory.hot_start(1, gen), theory.sample_momentum(1, gen)
    n = x.numel()

    def flow(z):
        x1, v1, _, _ = dyn.trajectory(z[:n].view(x.shape), z[n:].view(v.shape), direction)
        return torch.cat([x1.flatten(), v1.flatten()])

    jac = torch.autograd.functional.jacobian(flow, torch.cat([x.flatten(), v.flatten()]))
    _, logabsdet = torch.linalg.slogdet(jac)
    _, _, sumlogdet, _ = dyn.trajectory(x, v, direction)
    return sumlogdet.item(), logabsdet.item()
