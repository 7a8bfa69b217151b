"""The seeds' toy experiment: L2HMC against HMC on a two-mode Gaussian mixture.

Training maximizes the expected squared jump ``E[A ||x' - x||^2]`` (Levy et al. 2017),
optionally with their reciprocal term, while the target is annealed from a high
temperature (``beta_init``) to the true one: at high temperature the modes overlap,
the networks learn moves as long as the distance between them, and they keep those
moves while the barrier grows.  Evaluation runs every sampler from the same start
(all chains in the first mode) at the true target, so a sampler that does not mix
keeps all its samples in that mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dlhmc.samplers.base import Kernel, metropolis
from dlhmc.samplers.l2hmc import L2HMCDynamics
from dlhmc.toy.gmm import GaussianMixture

# Fraction of the training steps over which beta rises from beta_init to 1.
ANNEAL_FRACTION = 0.8


def jump_loss(x, x_new, accept_prob, reciprocal_scale: float = 0.0) -> torch.Tensor:
    """``-E[A ||x'-x||^2]``; with ``reciprocal_scale = l > 0`` Levy et al.'s
    ``E[l^2 / (A d) - A d / l^2]``, whose first term punishes chains that do not move.
    """
    jump = accept_prob * (x_new - x).square().flatten(1).sum(1)
    if reciprocal_scale > 0:
        scale2 = reciprocal_scale**2
        return (scale2 / (jump + 1e-8) - jump / scale2).mean()
    return -jump.mean()


def anneal_beta(step: int, steps: int, beta_init: float) -> float:
    ramp = max(1, int(ANNEAL_FRACTION * steps))
    return min(1.0, beta_init + (1.0 - beta_init) * step / ramp)


def train(
    dyn: L2HMCDynamics,
    steps: int,
    batch: int,
    lr: float,
    beta_init: float,
    generator: torch.Generator,
    reciprocal_scale: float = 0.0,
) -> list[dict]:
    """Adam on the jump loss with a chain buffer carried over from accepted states."""
    target = dyn.theory
    opt = torch.optim.Adam(dyn.parameters(), lr=lr)
    x = target.hot_start(batch, generator)
    history = []
    for step in range(steps):
        dyn.theory = target.with_beta(anneal_beta(step, steps, beta_init))
        prop = dyn.propose(x, generator)
        loss = jump_loss(x, prop.x, prop.accept_prob, reciprocal_scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
        x, _ = metropolis(prop.accept_prob, prop.x, x, generator)
        history.append({"step": step, "beta": dyn.theory.beta, "loss": loss.item(),
                        "accept": prop.accept_prob.mean().item()})
    dyn.theory = target
    return history


@dataclass
class Samples:
    """Samples ``[T, C, 2]`` of ``C`` chains and their mean acceptance."""

    x: torch.Tensor
    accept_rate: float


def sample(kernel: Kernel, chains: int, trajectories: int, generator) -> Samples:
    """``trajectories`` transitions of ``chains`` chains, all started in the first mode."""
    state = kernel.init(kernel.theory.cold_start(chains))
    xs, acc = [], []
    with torch.no_grad():
        for _ in range(trajectories):
            state, info = kernel.step(state, generator)
            xs.append(state.x)
            acc.append(info.accept_prob.mean())
    return Samples(torch.stack(xs), torch.stack(acc).mean().item())


def mode_summary(theory: GaussianMixture, samples: Samples) -> dict:
    """Fraction of all samples in each mode, with an error from the spread over chains,
    and the rate at which a chain changes mode between consecutive samples.
    """
    t, c, _ = samples.x.shape
    modes = theory.mode(samples.x.reshape(t * c, 2)).reshape(t, c)
    n_modes = len(theory.centers_list)
    per_chain = torch.stack([(modes == m).double().mean(0) for m in range(n_modes)])
    return {
        "fractions": per_chain.mean(1).tolist(),
        "fraction_errors": (per_chain.std(1) / math.sqrt(c)).tolist(),
        "switch_rate": (modes[1:] != modes[:-1]).double().mean().item() if t > 1 else 0.0,
        "accept_rate": samples.accept_rate,
    }


def plot(theory: GaussianMixture, panels: list[tuple[str, Samples]], path: str) -> None:
    """Samples of each sampler over the density contours, one panel each (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centers = theory.centers.cpu()
    lo = centers.min(0).values - 4 * theory.sigma
    hi = centers.max(0).values + 4 * theory.sigma
    aspect = float((hi[1] - lo[1]) / (hi[0] - lo[0]))
    grid = torch.stack(torch.meshgrid(torch.linspace(lo[0], hi[0], 200),
                                      torch.linspace(lo[1], hi[1], 200), indexing="xy"), -1)
    density = torch.exp(-theory.with_beta(1.0).action(grid.reshape(-1, 2).to(theory.dtype)))
    size = (4.2 * len(panels), 0.8 + 4.0 * aspect)
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False)
    for ax, (title, samples) in zip(axes[0], panels, strict=True):
        ax.contour(grid[..., 0], grid[..., 1], density.reshape(200, 200).cpu(), levels=6,
                   colors="0.6", linewidths=0.8)
        pts = samples.x[:, : min(8, samples.x.shape[1])].reshape(-1, 2).cpu()
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4)
        ax.set_title(title)
        ax.set_xlim(float(lo[0]), float(hi[0]))
        ax.set_ylim(float(lo[1]), float(hi[1]))
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
