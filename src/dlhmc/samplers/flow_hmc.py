"""Flow HMC: HMC in the latent variables of a normalizing flow (trivializing-map HMC, Luscher
2009; field-transformation HMC, Jin arXiv:2112.01586).

With ``U = f(z)`` and ``U`` distributed as ``exp(-S(U))``, the latent ``z`` is distributed as
``exp(-S_F(z))`` with respect to the prior's (Haar) measure, ``S_F(z) = S(f(z)) - log|J_f(z)|``
(change of variables; the uniform prior adds no term).  HMC on ``z`` with this action is exact
for any invertible ``f``, and the chain of ``U = f(z)`` samples ``exp(-S)``: a good flow makes
``S_F`` nearly flat (the map nearly trivializes the theory), so the latent trajectory
decorrelates ``U`` at a cost of one force through the flow per step.  With ``f`` the identity
``S_F = S`` and this is ordinary HMC, step for step (a test).

The latent variables are angles like the links (the flow maps the torus to itself), so they are
moved by the theory's own ``evolve_links``; the force ``dS_F/dz`` is computed by autograd
through the flow.  The integrators are those of :mod:`dlhmc.samplers.integrators`, applied to
:class:`LatentAction` in place of the theory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlhmc.samplers.base import Info, State, acceptance, metropolis
from dlhmc.samplers.integrators import checked_integrator, integrate


@dataclass(frozen=True)
class LatentState(State):
    """``x`` the latent ``z``, ``action`` and ``force`` of ``S_F`` there, and ``u = f(z)``: the
    links the chain records (:attr:`links`), kept so that no recorded trajectory pays another
    pass through the flow."""

    u: torch.Tensor | None = None

    @property
    def links(self) -> torch.Tensor:
        return self.u


class LatentAction:
    """``S_F(z) = S(f(z)) - log|J_f(z)|`` as the integrators see a theory: a force and a way
    to move the variables along their momenta (the links' own, since ``z`` are angles)."""

    def __init__(self, flow):
        self.flow = flow
        self.theory = flow.theory

    def evaluate(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``S_F(z)`` ``[B]`` and the links ``f(z)``, without gradients."""
        with torch.no_grad():
            u, logdet = self.flow.forward(z)
            return self.theory.action(u) - logdet, u

    def force(self, z: torch.Tensor) -> torch.Tensor:
        """``dS_F/dz`` by autograd through the flow (enabled here: chains run under
        ``no_grad``); each chain's action depends on its own ``z`` only, so the gradient of
        the batch sum is every chain's force."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            u, logdet = self.flow.forward(z)
            s = self.theory.action(u) - logdet
            (grad,) = torch.autograd.grad(s.sum(), z)
        return grad

    def evolve_links(self, z: torch.Tensor, p: torch.Tensor, eps) -> torch.Tensor:
        return self.theory.evolve_links(z, p, eps)


class FlowHMC:
    """HMC kernel in the flow's latent variables: ``nlf`` steps of size ``eps`` of the named
    integrator on ``S_F``, one Metropolis test on ``H = S_F + p^2/2``; ``theory`` is the flow's
    (the chains record its observables of ``f(z)``)."""

    differentiates = True  # the force on z is autograd through the flow (LatentAction.force)

    def __init__(self, flow, nlf: int, eps: float, integrator: str = "leapfrog"):
        coefficients = checked_integrator(nlf, eps, integrator)
        self.flow = flow
        self.theory = flow.theory
        self.latent = LatentAction(flow)
        self.nlf = nlf
        self.eps = eps
        self.integrator = coefficients

    @property
    def force_evaluations(self) -> int:
        """Forces through the flow per trajectory (each a forward and a backward pass)."""
        return self.integrator.force_evaluations(self.nlf)

    def init(self, x: torch.Tensor) -> LatentState:
        """The state of links ``x`` from anywhere (hot start, HMC): ``z = f^-1(x)``."""
        with torch.no_grad():
            z, _ = self.flow.inverse(x)
        return self._state(z)

    def _state(self, z: torch.Tensor) -> LatentState:
        action, u = self.latent.evaluate(z)
        return LatentState(x=z, action=action, force=self.latent.force(z), u=u)

    def step(self, state: LatentState, generator: torch.Generator,
             record_layers: bool = False) -> tuple[LatentState, Info]:
        """One latent trajectory per chain, accepted per chain (no layers to record).

        Draws the momenta, then one uniform per chain, in the order of :class:`HMC`, so that
        the identity flow reproduces HMC's chains of the same seed.  The trajectory's end
        costs one more pass through the flow (``S_F`` and ``f(z)`` without gradients) besides
        its ``force_evaluations``.
        """
        theory = self.theory
        p0 = theory.sample_momentum(state.x.shape[0], generator)
        h0 = state.action + theory.kinetic_energy(p0)
        z1, p1, f1 = integrate(self.latent, state.x, p0, state.force, self.nlf, self.eps,
                               self.integrator)
        s1, u1 = self.latent.evaluate(z1)
        dH = s1 + theory.kinetic_energy(p1) - h0
        accept_prob, divergent = acceptance(-dH)
        proposed = LatentState(x=z1, action=s1, force=f1, u=u1)
        new_state, accepted = metropolis(accept_prob, proposed, state, generator)
        return new_state, Info(accept_prob=accept_prob, accepted=accepted, dH=dH,
                               divergent=divergent)
