"""Symmetric splitting integrators for ``H = S(x) + p^2 / 2``, as coefficient lists.

One step of size ``eps`` is ``kick(k_0) drift(d_0) kick(k_1) ... drift(d_{n-1}) kick(k_n)``,
where ``kick(k)`` is ``p -= k eps F(x)`` and ``drift(d)`` moves the links by ``d eps``
along ``p``.  A palindromic list gives a symmetric, symplectic map: exactly reversible
under ``p -> -p`` and volume preserving, which is what makes the Metropolis test with
``exp(-dH)`` alone exact.  The last kick of a step and the first of the next act at the
same links, so they are merged: a trajectory of ``nlf`` steps costs ``nlf * n`` force
evaluations (the force at the start is the cached force of the state).

A new integrator is a new coefficient list; ``integrate`` applies any of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dlhmc.theory import Theory


@dataclass(frozen=True)
class Integrator:
    """Kick fractions ``k_0..k_n`` and drift fractions ``d_0..d_{n-1}`` of one step."""

    name: str
    kicks: tuple[float, ...]
    drifts: tuple[float, ...]

    def __post_init__(self):
        if len(self.kicks) != len(self.drifts) + 1 or not self.drifts:
            raise ValueError(f"{self.name}: need n >= 1 drifts and n + 1 kicks")
        if self.kicks != self.kicks[::-1] or self.drifts != self.drifts[::-1]:
            raise ValueError(f"{self.name}: coefficients must be palindromic (reversibility)")
        if abs(sum(self.kicks) - 1.0) > 1e-12 or abs(sum(self.drifts) - 1.0) > 1e-12:
            raise ValueError(f"{self.name}: kicks and drifts must each sum to 1 (consistency)")

    def force_evaluations(self, nlf: int) -> int:
        """Force evaluations of a trajectory of ``nlf`` steps (the first force is cached)."""
        return nlf * len(self.drifts)


LEAPFROG = Integrator("leapfrog", kicks=(0.5, 0.5), drifts=(1.0,))

# Second-order minimum norm (Omelyan, Mryglod, Folk 2002): lambda minimizes the leading
# error term, so the energy error is several times smaller than leapfrog's at equal eps,
# for two force evaluations per step (physics.md, "Integrators").
OMELYAN_LAMBDA = 0.1931833
OMELYAN = Integrator(
    "omelyan",
    kicks=(OMELYAN_LAMBDA, 1.0 - 2.0 * OMELYAN_LAMBDA, OMELYAN_LAMBDA),
    drifts=(0.5, 0.5),
)

INTEGRATORS = {integrator.name: integrator for integrator in (LEAPFROG, OMELYAN)}


def checked_integrator(nlf: int, eps: float, integrator: str) -> Integrator:
    """The integrator named ``integrator`` once ``nlf`` steps of size ``eps`` are known to make
    a trajectory (at least one step, a positive finite size); ``ValueError`` naming the setting
    otherwise.  Every sampler that integrates (HMC, flow HMC) checks its settings here."""
    if nlf < 1:
        raise ValueError(f"nlf: need at least one integrator step, got {nlf}")
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps: expected a positive step size, got {eps}")
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator: expected one of {', '.join(INTEGRATORS)}, "
                         f"got {integrator!r}")
    return INTEGRATORS[integrator]


def integrate(
    theory: Theory,
    x: torch.Tensor,
    p: torch.Tensor,
    force: torch.Tensor,
    nlf: int,
    eps: float,
    integrator: Integrator = LEAPFROG,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``nlf`` steps of ``integrator`` from ``(x, p)`` with ``force = F(x)``.

    Returns the final links, momenta and force.
    """
    kicks, drifts = integrator.kicks, integrator.drifts
    last = len(drifts) - 1
    p = p - kicks[0] * eps * force
    for step in range(nlf):
        for j, drift in enumerate(drifts):
            x = theory.evolve_links(x, p, drift * eps)
            force = theory.force(x)
            kick = kicks[j + 1]
            if j == last and step < nlf - 1:
                kick = kick + kicks[0]
            p = p - kick * eps * force
    return x, p, force
