"""Hybrid Monte Carlo: a symplectic integrator plus a Metropolis-Hastings test per chain.

Written once for every gauge group against :class:`dlhmc.theory.Theory`.  The
state carries the action and force of its links, so a trajectory costs
``integrator.force_evaluations(nlf)`` force evaluations (``N_LF`` for the leapfrog),
not one more.
"""

from __future__ import annotations

import math

import torch

from dlhmc.samplers.base import Info, State, acceptance, metropolis
from dlhmc.samplers.integrators import INTEGRATORS, integrate
from dlhmc.theory import Theory


class HMC:
    """HMC kernel: ``nlf`` steps of size ``eps`` of the named integrator per trajectory."""

    def __init__(self, theory: Theory, nlf: int, eps: float, integrator: str = "leapfrog"):
        if nlf < 1:
            raise ValueError(f"nlf: need at least one integrator step, got {nlf}")
        if not (eps > 0 and math.isfinite(eps)):
            raise ValueError(f"eps: expected a positive step size, got {eps}")
        if integrator not in INTEGRATORS:
            raise ValueError(f"integrator: expected one of {', '.join(INTEGRATORS)}, "
                             f"got {integrator!r}")
        self.theory = theory
        self.nlf = nlf
        self.eps = eps
        self.integrator = INTEGRATORS[integrator]

    @property
    def force_evaluations(self) -> int:
        """Force evaluations per trajectory: the cost unit when comparing integrators."""
        return self.integrator.force_evaluations(self.nlf)

    def init(self, x: torch.Tensor) -> State:
        return State(x=x, action=self.theory.action(x), force=self.theory.force(x))

    def step(self, state: State, generator: torch.Generator) -> tuple[State, Info]:
        """One trajectory for every chain of the batch; each chain accepts on its own.

        Draws the momenta, then one uniform per chain (this order fixes the chains of a seed).
        """
        theory = self.theory
        p0 = theory.sample_momentum(state.x.shape[0], generator)
        h0 = state.action + theory.kinetic_energy(p0)
        x1, p1, f1 = integrate(theory, state.x, p0, state.force, self.nlf, self.eps,
                               self.integrator)
        s1 = theory.action(x1)
        dH = s1 + theory.kinetic_energy(p1) - h0
        accept_prob, divergent = acceptance(-dH)
        new_state, accepted = metropolis(accept_prob, State(x1, s1, f1), state, generator)
        return new_state, Info(accept_prob=accept_prob, accepted=accepted, dH=dH,
                               divergent=divergent)
