"""The training loss and the Metropolis update of the chain buffer.

The loss (seed 003, appendix B) rewards proposals that move the topological charge
and are accepted: ``L = -E[A(xi'|xi) (Q_R(x') - Q_R(x))^2]`` with the differentiable
charge ``Q_R`` of the theory, optionally minus a plaquette jump term.  The
expectation runs over a buffer of chains that carries on between steps from the
states that passed the Metropolis test, so the loss is measured on (nearly)
equilibrium configurations rather than on hot starts.
"""

from __future__ import annotations

import math

import torch

from dlhmc.samplers.l2hmc import Proposal
from dlhmc.theory import GaugeTheory


def plaquette_count(theory: GaugeTheory) -> int:
    """Number of plaquettes: sites times planes ``d (d - 1) / 2``."""
    d = len(theory.lattice)
    return math.prod(theory.lattice) * d * (d - 1) // 2


def plaquette_from_action(theory: GaugeTheory, action: torch.Tensor) -> torch.Tensor:
    """Average plaquette per chain from the Wilson action ``S = beta sum_P (1 - P)``.

    Works for every group with the Wilson action and costs nothing extra when the
    action is at hand.
    """
    return 1.0 - action / (theory.beta * plaquette_count(theory))


def loss_terms(
    theory: GaugeTheory, x: torch.Tensor, proposal: Proposal, plaq_weight: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss and the per-step statistics it is made of.

    ``dq2 = E[A (Q_R' - Q_R)^2]`` (the expected squared charge jump, i.e. minus the
    charge part of the loss).  The plaquette term ``E[A N_P (P' - P)^2]`` uses the
    chain-averaged plaquette scaled by the number of plaquettes ``N_P``, which makes
    it O(1) at any volume, like ``dq2``; it rewards moving the short-distance
    degrees of freedom as well.
    """
    accept = proposal.accept_prob
    dq = theory.charge_real(proposal.x) - theory.charge_real(x)
    jump = accept * dq.square()
    loss = -jump.mean()
    if plaq_weight:
        dp = plaquette_from_action(theory, theory.action(proposal.x)) - plaquette_from_action(
            theory, theory.action(x)
        )
        loss = loss - plaq_weight * (accept * plaquette_count(theory) * dp.square()).mean()
    stats = {
        "accept": accept.detach().mean(),
        "dq2": jump.detach().mean(),
        "sumlogdet": proposal.sumlogdet.detach().mean(),
    }
    return loss, stats

