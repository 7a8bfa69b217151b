"""Hybrid Monte Carlo: a symplectic integrator plus a Metropolis-Hastings test per chain.

Written once for every gauge group against :class:`dlhmc.theory.Theory`.  The
state carries the action and force of its links, so a trajectory costs
``integrator.force_evaluations(nlf)`` force evaluations (``N_LF`` for the leapfrog),
not one more.

Winding HMC (arXiv:2106.14234) is the same kernel with ``instanton_hits > 0``: after
each trajectory, that many Metropolis instanton hits (:mod:`dlhmc.samplers.instanton`)
let the charge jump between sectors, which the continuous trajectory cannot do at
large beta.  Each move keeps the Boltzmann distribution, so their composition does.
"""

from __future__ import annotations

import torch

from dlhmc.groups import GROUPS
from dlhmc.samplers.base import Info, State, acceptance, metropolis
from dlhmc.samplers.instanton import check_instanton_options, instanton_hits
from dlhmc.samplers.integrators import checked_integrator, integrate
from dlhmc.theory import Theory


class HMC:
    """HMC kernel: ``nlf`` steps of size ``eps`` of the named integrator per trajectory,
    then ``instanton_hits`` instanton hits of size ``instanton_size`` (U(1) only)."""

    differentiates = False  # the force is the theory's own, in closed form

    def __init__(
        self,
        theory: Theory,
        nlf: int,
        eps: float,
        integrator: str = "leapfrog",
        instanton_hits: int = 0,
        instanton_size: int = 0,
    ):
        coefficients = checked_integrator(nlf, eps, integrator)
        self.theory = theory
        self.nlf = nlf
        self.eps = eps
        self.integrator = coefficients
        self.instanton_hits, self.instanton_size = check_instanton_options(
            theory, instanton_hits, instanton_size
        )

    @property
    def force_evaluations(self) -> int:
        """Force evaluations per trajectory: the cost unit when comparing integrators."""
        return self.integrator.force_evaluations(self.nlf)

    def init(self, x: torch.Tensor) -> State:
        return State(x=x, action=self.theory.action(x), force=self.theory.force(x))

    def step(self, state: State, generator: torch.Generator,
             record_layers: bool = False) -> tuple[State, Info]:
        """One trajectory for every chain of the batch; each chain accepts on its own
        (``record_layers`` asks for nothing: HMC has no layers to record).

        Draws the momenta, then one uniform per chain (this order fixes the chains of a seed),
        then the instanton hits' numbers.  Chains whose links a hit changed get their cached
        force recomputed; ``info.extras["instanton_accepted"]`` counts the accepted hits.
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
        extras = {}
        if self.instanton_hits:
            new_state, extras["instanton_accepted"] = self._hits(new_state, generator)
        return new_state, Info(accept_prob=accept_prob, accepted=accepted, dH=dH,
                               divergent=divergent, extras=extras)

    def _hits(self, state: State, generator: torch.Generator) -> tuple[State, torch.Tensor]:
        theory = self.theory
        x, action, n_accepted = instanton_hits(
            theory, state.x, state.action, self.instanton_hits, self.instanton_size, generator
        )
        changed = n_accepted > 0
        force = state.force
        if bool(changed.any()):
            force = force.clone()
            force[changed] = theory.force(x[changed])
        return State(x=x, action=action, force=force), n_accepted


@torch.no_grad()
def thermalize(theory, x: torch.Tensor, trajectories: int, generator: torch.Generator):
    """``trajectories`` HMC trajectories of length 1 (the group's integrator and step size,
    ``GroupFacts.therm_steps``) from ``x``.

    A learned sampler moves the links by its few short layers per trajectory: from a hot start on
    a larger volume than it was trained on it needs hundreds of trajectories to reach equilibrium
    (SU(3) 6^4 at beta 6), and a training buffer that starts hot teaches the networks the
    thermalization instead of the target (SU(3) 4^4: training plaquette 0.575 against 0.596).
    Thermalization only has to end in equilibrium, so any exact sampler may do it; inference
    records the learned sampler's chain alone, and training learns from where HMC left it.
    """
    if trajectories == 0:
        return x
    nlf, eps = GROUPS[theory.name].therm_steps
    kernel = HMC(theory, nlf, eps, GROUPS[theory.name].integrator)
    state = kernel.init(x)
    for _ in range(trajectories):
        state, _ = kernel.step(state, generator)
    return state.x
