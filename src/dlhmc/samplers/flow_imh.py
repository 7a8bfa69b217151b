"""Independence Metropolis with normalizing-flow proposals (Kanwar et al. arXiv:2003.06413).

Every trajectory draws a fresh configuration ``U' = f(z)``, ``z`` from the flow's Haar prior,
independent of the chain's current ``U``, and accepts it with ``min(1, w(U') / w(U))``, where
``log w = -S - log q`` and ``q`` is the flow's density.  The proposal density cancels the
asymmetry of an independent proposal, so the chain samples ``exp(-S)`` exactly whatever the
flow: a poor flow lowers the acceptance, never the correctness.  That needs ``q`` of the
current state too: a configuration drawn from the flow brings it along; any other start (a hot
start, thermalized links) gets it by inverting the flow, ``log q(U) = log r(f^-1(U)) +
log|det d f^-1 / dU|``.

The flow is any object with the :class:`~dlhmc.flows.model.GaugeFlow` face (``theory``,
``sample``, ``inverse``, ``prior_log_prob``); the tests run the kernel with analytic flows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlhmc.samplers.base import Info, State, acceptance, metropolis


@dataclass(frozen=True)
class FlowState(State):
    """Links, their action and the flow's log density ``log q`` there ``[B]``: the acceptance
    compares the weight of the proposal with that of the current state, so both are kept."""

    log_q: torch.Tensor | None = None


def log_density(flow, x: torch.Tensor) -> torch.Tensor:
    """``log q(x)`` of the flow's pushforward of its prior, by the inverse map: ``log r(z) +
    log|det dz/dx|`` with ``z = f^-1(x)`` (change of variables)."""
    z, logdet_inv = flow.inverse(x)
    return flow.prior_log_prob(z) + logdet_inv


def log_weight(action: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``log w = -S - log q`` (up to the unknown ``log Z``), in float64: weights are
    exponentials of differences of sums over the whole volume, whose single-precision
    rounding would be of the order of the differences themselves on large lattices."""
    return -(action.to(torch.float64) + log_q.to(torch.float64))


class FlowIMH:
    """Independence Metropolis kernel over the flow's proposals; ``theory`` is the flow's.

    One proposal per trajectory: a flow sample (one pass through the flow), its action, one
    uniform per chain.
    """

    differentiates = False  # a proposal is one pass through the flow, no gradient

    def __init__(self, flow):
        self.flow = flow
        self.theory = flow.theory

    @torch.no_grad()
    def init(self, x: torch.Tensor) -> FlowState:
        """The state of links ``x`` from anywhere (hot start, HMC): their ``log q`` by the inverse
        flow, so the first acceptance compares true weights."""
        return FlowState(x=x, action=self.theory.action(x), log_q=log_density(self.flow, x))

    @torch.no_grad()
    def step(self, state: FlowState, generator: torch.Generator,
             record_layers: bool = False) -> tuple[FlowState, Info]:
        """One independent proposal per chain, accepted with ``min(1, w(U') / w(U))`` (a flow
        has no layers to record).

        Draws the prior sample, then one uniform per chain.  ``Info.dH`` is ``log w(U) -
        log w(U')``, so ``accept_prob = min(1, exp(-dH))`` reads as for HMC;
        ``extras["log_weight"]`` is ``log w`` of the proposal, an independent draw from the flow,
        whose spread over a run gives the flow's effective sample size.
        """
        theory = self.theory
        x1, log_q1 = self.flow.sample(state.x.shape[0], generator)
        s1 = theory.action(x1)
        log_w1 = log_weight(s1, log_q1)
        dH = log_weight(state.action, state.log_q) - log_w1
        accept_prob, divergent = acceptance(-dH)
        proposed = FlowState(x=x1, action=s1, log_q=log_q1)
        new_state, accepted = metropolis(accept_prob, proposed, state, generator)
        return new_state, Info(accept_prob=accept_prob, accepted=accepted, dH=dH,
                               divergent=divergent, extras={"log_weight": log_w1})
