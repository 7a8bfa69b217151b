"""Hybrid Monte Carlo: leapfrog integration plus a Metropolis-Hastings test per chain.

Written once for every gauge group against :class:`dlhmc.theory.GaugeTheory`.
The state carries the action and force of its links so that a trajectory costs
``N_LF`` force evaluations, not ``N_LF + 1``: the force at the end of one
trajectory is the force at the start of the next whenever the proposal is
accepted, and the force of the old links is kept when it is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlhmc.theory import GaugeTheory


@dataclass(frozen=True)
class HMCState:
    """Links of a batch of chains with their action ``[B]`` and force (momentum shaped)."""

    x: torch.Tensor
    action: torch.Tensor
    force: torch.Tensor


@dataclass(frozen=True)
class HMCInfo:
    """What one trajectory did, per chain: ``exp(-dH)`` capped at 1, the decision and ``dH``."""

    accept_prob: torch.Tensor
    accepted: torch.Tensor
    dH: torch.Tensor


def init_state(theory: GaugeTheory, x: torch.Tensor) -> HMCState:
    return HMCState(x=x, action=theory.action(x), force=theory.force(x))


def leapfrog(
    theory: GaugeTheory,
    x: torch.Tensor,
    p: torch.Tensor,
    force: torch.Tensor,
    nlf: int,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``nlf`` kick-drift-kick steps, merging the adjacent half kicks.

    Symmetric and symplectic, hence exactly reversible under ``p -> -p`` and
    volume preserving, which is what makes the Metropolis test with
    ``exp(-dH)`` alone exact.  Returns the final links, momenta and force.
    """
    p = p - 0.5 * eps * force
    for step in range(nlf):
        x = theory.evolve_links(x, p, eps)
        force = theory.force(x)
        kick = eps if step < nlf - 1 else 0.5 * eps
        p = p - kick * force
    return x, p, force


def _select(accepted: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    mask = accepted.reshape(accepted.shape + (1,) * (new.dim() - 1))
    return torch.where(mask, new, old)


def hmc_step(
    theory: GaugeTheory,
    state: HMCState,
    nlf: int,
    eps: float,
    generator: torch.Generator,
) -> tuple[HMCState, HMCInfo]:
    """One HMC trajectory for every chain of the batch; each chain accepts on its own."""
    batch = state.x.shape[0]
    p0 = theory.sample_momentum(batch, generator)
    h0 = state.action + theory.kinetic_energy(p0)
    x1, p1, f1 = leapfrog(theory, state.x, p0, state.force, nlf, eps)
    s1 = theory.action(x1)
    dH = s1 + theory.kinetic_energy(p1) - h0
    accept_prob = torch.exp(torch.clamp(-dH, max=0.0)).nan_to_num(0.0)
    u = torch.rand(batch, generator=generator, device=dH.device, dtype=dH.dtype)
    accepted = u < accept_prob
    new_state = HMCState(
        x=_select(accepted, x1, state.x),
        action=torch.where(accepted, s1, state.action),
        force=_select(accepted, f1, state.force),
    )
    return new_state, HMCInfo(accept_prob=accept_prob, accepted=accepted, dH=dH)
