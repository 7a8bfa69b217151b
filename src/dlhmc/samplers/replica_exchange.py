"""Replica exchange across a ladder of couplings: parallel tempering and T-REX.

A ladder holds one replica per coupling ``beta_0 < beta_1 < ... < beta_{K-1}``; the joint target
is the product ``prod_k p_k(U_k)`` with ``p_k ~ exp(-S_k)`` and ``S_k = beta_k S'``.  Each replica
is moved by its own HMC kernel, which keeps its factor.  Every few trajectories a *swap round*
proposes to exchange the configurations of neighbouring couplings: a configuration that tunnelled
between topological sectors at small beta, where HMC does so easily, travels up to large beta,
where HMC alone freezes (Swendsen and Wang 1986; Hukushima and Nemoto 1996).

Plain parallel tempering proposes ``(U_k, U_{k+1}) -> (U_{k+1}, U_k)``: a symmetric, volume
preserving move accepted with ``min(1, exp((beta_{k+1} - beta_k)(S'(U_{k+1}) - S'(U_k))))``.
Its acceptance falls like ``exp(-c dbeta^2 V)``: the two ensembles overlap less on larger volumes.

T-REX (Abbott et al. arXiv:2404.11674) puts a *bridge* ``f`` between the two couplings, a flow
trained to map the ensemble of ``beta_k`` onto that of ``beta_{k+1}``, and proposes
``(U_k, U_{k+1}) -> (f^-1(U_{k+1}), f(U_k))``.  The proposal is an involution of the pair (apply
it twice: the identity), so Metropolis-Hastings needs only the target ratio and the Jacobian of
the map of the pair, ``|J_f(U_k)| |J_{f^-1}(U_{k+1})|``:

    log A = S_k(U_k) + S_{k+1}(U_{k+1}) - S_k(f^-1 U_{k+1}) - S_{k+1}(f U_k)
            + log|J_f(U_k)| + log|J_{f^-1}(U_{k+1})|.

This is exact for *any* invertible ``f`` with the right Jacobian: training only raises the
acceptance.  With ``f`` the identity (zero log-Jacobian) it is the plain swap, so both are one
code path here (:class:`IdentityBridge`).

Swaps follow the deterministic even-odd scheme: round ``r`` proposes the pairs ``(0, 1), (2, 3),
...`` when ``r`` is even and ``(1, 2), (3, 4), ...`` when odd.  Within a round the pairs are
disjoint, so each swap is a Metropolis step on its own two replicas that keeps the joint target
(detailed balance for each); alternating the two rounds (a non-reversible composition of
reversible steps) moves replicas through the ladder faster than random pair choices, which is
what the round-trip rate measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from dlhmc.samplers.base import Info, State, acceptance, metropolis
from dlhmc.samplers.hmc import HMC


class Bridge(Protocol):
    """An invertible map of a batch of links and its log-Jacobian per chain (as
    :class:`dlhmc.flows.model.GaugeFlow`): ``forward(x) -> (f(x), log|det df/dx|)`` and
    ``inverse(y) -> (f^-1(y), log|det df^-1/dy|)``."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class IdentityBridge:
    """The plain swap's map: the identity, with log-Jacobian 0."""

    layers: tuple = ()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x.new_zeros(x.shape[0])

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y, y.new_zeros(y.shape[0])


def bridge_layers(bridge: Bridge) -> int:
    """Coupling layers of a bridge (a pass through it costs that many learned layers)."""
    return len(getattr(bridge, "layers", ()))


def swap_pairs(round_index: int, rungs: int) -> tuple[int, ...]:
    """Lower rungs ``k`` of the pairs ``(k, k + 1)`` that round ``round_index`` proposes: even
    rounds start at 0, odd rounds at 1 (the deterministic even-odd scheme)."""
    return tuple(range(round_index % 2, rungs - 1, 2))


@dataclass(frozen=True)
class Ladder:
    """The state of ``C`` independent ladders of ``K`` rungs.

    ``states[k]`` holds the HMC state (links, cached action and force) of the replicas at
    ``beta_k``, the chains of the batch being the ladders; ``replica[k, c]`` names the replica
    (``0..K-1``, its starting rung) that sits at rung ``k`` of ladder ``c``; ``rounds`` counts the
    swap rounds done, whose parity chooses the next round's pairs.
    """

    states: tuple[State, ...]
    replica: torch.Tensor
    rounds: int = 0


@dataclass(frozen=True)
class SwapRound:
    """What one swap round did: for each proposed pair (lower rung ``pairs[i]``) an ``Info``
    whose ``dH`` is minus the log-acceptance ratio (so ``accept_prob = min(1, exp(-dH))`` as for
    HMC); ``passes`` bridge passes (``f`` or ``f^-1``) per ladder, ``refreshes`` the forces
    recomputed (summed over ladders) for the configurations the accepted swaps brought."""

    pairs: tuple[int, ...]
    infos: tuple[Info, ...]
    passes: int
    refreshes: torch.Tensor


class ReplicaExchange:
    """HMC at every coupling of a ladder plus swap rounds between neighbours.

    ``kernels[k]`` is the HMC kernel of ``beta_k`` (strictly increasing); ``bridges[k]`` the map
    from ``beta_k`` to ``beta_{k+1}`` (T-REX), or ``None`` for plain parallel tempering.
    """

    def __init__(self, kernels: Sequence[HMC], bridges: Sequence[Bridge] | None = None):
        betas = [float(kernel.theory.beta) for kernel in kernels]
        if len(betas) < 2:
            raise ValueError(f"betas: a ladder needs at least 2 couplings, got {len(betas)}")
        if any(b >= c for b, c in zip(betas, betas[1:], strict=False)):
            raise ValueError(f"betas: expected strictly increasing couplings, got {betas}")
        if bridges is not None and len(bridges) != len(betas) - 1:
            raise ValueError(f"bridges: expected one per neighbouring pair ({len(betas) - 1}), "
                             f"got {len(bridges)}")
        self.kernels = tuple(kernels)
        self.betas = tuple(betas)
        self.bridged = bridges is not None
        self.bridges = tuple(bridges) if bridges is not None else (IdentityBridge(),) * (
            len(betas) - 1)

    @property
    def rungs(self) -> int:
        return len(self.kernels)

    def init(self, xs: Sequence[torch.Tensor]) -> Ladder:
        """The ladder of start links ``xs[k]`` (``[C, ...]`` each), replica ``k`` at rung ``k``."""
        states = tuple(kernel.init(x) for kernel, x in zip(self.kernels, xs, strict=True))
        chains = states[0].x.shape[0]
        replica = torch.arange(self.rungs, device=states[0].x.device)[:, None].repeat(1, chains)
        return Ladder(states=states, replica=replica)

    def trajectory(self, ladder: Ladder, generator: torch.Generator
                   ) -> tuple[Ladder, tuple[Info, ...]]:
        """One HMC trajectory at every rung, rung 0 first (this order fixes a seed's chains)."""
        moved = [kernel.step(state, generator)
                 for kernel, state in zip(self.kernels, ladder.states, strict=True)]
        states = tuple(state for state, _ in moved)
        return Ladder(states, ladder.replica, ladder.rounds), tuple(info for _, info in moved)

    def swap(self, ladder: Ladder, generator: torch.Generator) -> tuple[Ladder, SwapRound]:
        """One swap round: the pairs of this round's parity, lowest first, one uniform per
        ladder and pair."""
        states, replica = list(ladder.states), ladder.replica.clone()
        pairs = swap_pairs(ladder.rounds, self.rungs)
        infos, refreshes = [], replica.new_zeros(())
        for k in pairs:
            states[k], states[k + 1], info, accepted = self._swap_pair(
                k, states[k], states[k + 1], generator)
            replica[k:k + 2] = torch.where(accepted, replica[k:k + 2].flip(0), replica[k:k + 2])
            refreshes = refreshes + 2 * accepted.sum()
            infos.append(info)
        passes = 2 * len(pairs) if self.bridged else 0
        return (Ladder(tuple(states), replica, ladder.rounds + 1),
                SwapRound(pairs, tuple(infos), passes, refreshes))

    def _swap_pair(self, k: int, low: State, high: State, generator: torch.Generator):
        """The T-REX move of the pair ``(k, k + 1)`` (the plain swap for the identity bridge).

        The configurations a swap brings need their forces at their new coupling for the next
        trajectory's first kick: they are recomputed for the accepted ladders only.
        """
        lower, upper = self.kernels[k].theory, self.kernels[k + 1].theory
        bridge = self.bridges[k]
        up, log_j_up = bridge.forward(low.x)  # f(U_k), proposed at beta_{k+1}
        down, log_j_down = bridge.inverse(high.x)  # f^-1(U_{k+1}), proposed at beta_k
        s_down, s_up = lower.action(down), upper.action(up)
        log_ratio = (low.action + high.action) - (s_down + s_up) + (log_j_up + log_j_down)
        accept_prob, divergent = acceptance(log_ratio)
        proposed = State(torch.stack((down, up), 1), torch.stack((s_down, s_up), 1))
        current = State(torch.stack((low.x, high.x), 1), torch.stack((low.action, high.action), 1))
        chosen, accepted = metropolis(accept_prob, proposed, current, generator)
        new_low = State(chosen.x[:, 0], chosen.action[:, 0], _refresh(lower, chosen.x[:, 0],
                                                                      low.force, accepted))
        new_high = State(chosen.x[:, 1], chosen.action[:, 1], _refresh(upper, chosen.x[:, 1],
                                                                       high.force, accepted))
        info = Info(accept_prob=accept_prob, accepted=accepted, dH=-log_ratio,
                    divergent=divergent)
        return new_low, new_high, info, accepted


def _refresh(theory, x: torch.Tensor, force: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
    """``force`` with the rows of the ``changed`` chains recomputed at ``x``."""
    if not bool(changed.any()):
        return force
    force = force.clone()
    force[changed] = theory.force(x[changed])
    return force


@dataclass
class LadderChains:
    """The recorded trajectories of a ladder run.

    ``per_traj[k]``: the chain-file variables ``[chain, traj]`` of rung ``k`` (the observables of
    the replica at ``beta_k`` after each trajectory and its swap round, that rung's HMC records,
    and ``replica``: which of its ladder's replicas is there, named by its starting rung
    ``0..K-1``); ``swaps[k]``: for the pair
    ``(k, k + 1)``, ``accepted``, ``accept_prob`` and ``divergent`` ``[chain, round]`` of its
    recorded proposals; ``flow_passes`` and ``force_refreshes``: per recorded trajectory of one
    ladder, the bridge passes and the forces recomputed after accepted swaps.
    """

    per_traj: list[dict[str, np.ndarray]]
    swaps: dict[int, dict[str, np.ndarray]]
    flow_passes: float
    force_refreshes: float


def run_ladder(exchange: ReplicaExchange, xs: Sequence[torch.Tensor], n_therm: int, n_traj: int,
               swap_every: int, generator: torch.Generator, progress=None) -> LadderChains:
    """Thermalize for ``n_therm`` trajectories (swaps included), then record ``n_traj``.

    A swap round follows every ``swap_every``-th trajectory (counted from the first, so rounds
    alternate their parity through thermalization and recording alike).  Records stay on the
    device until the end.
    """
    rungs = exchange.rungs
    records: list[dict[str, torch.Tensor]] = [{} for _ in range(rungs)]
    swaps: dict[int, dict[str, list]] = {}
    passes, refreshes = 0, 0
    with torch.no_grad():
        ladder = exchange.init(xs)
        chains = ladder.replica.shape[1]
        for step in range(n_therm + n_traj):
            measured = step - n_therm
            ladder, infos = exchange.trajectory(ladder, generator)
            if (step + 1) % swap_every == 0:
                ladder, round_ = exchange.swap(ladder, generator)
                if measured >= 0:
                    passes += round_.passes
                    refreshes = refreshes + round_.refreshes
                    for k, info in zip(round_.pairs, round_.infos, strict=True):
                        pair = swaps.setdefault(k, {"accepted": [], "accept_prob": [],
                                                    "divergent": []})
                        for name in pair:
                            pair[name].append(getattr(info, name))
            if measured >= 0:
                for k, (state, info) in enumerate(zip(ladder.states, infos, strict=True)):
                    theory = exchange.kernels[k].theory
                    values = {**theory.observables(state.links), **info.records(),
                              "replica": ladder.replica[k]}
                    for name, value in values.items():
                        if name not in records[k]:
                            records[k][name] = value.new_empty((n_traj, *value.shape))
                        records[k][name][measured] = value
            if progress is not None and not progress.disable:
                progress.update()
    per_traj = [{name: value.T.cpu().numpy() for name, value in rung.items()}
                for rung in records]
    swap_arrays = {k: {name: torch.stack(values, 1).cpu().numpy()
                       for name, values in pair.items()} for k, pair in sorted(swaps.items())}
    refreshed = float(refreshes) / (chains * n_traj)
    return LadderChains(per_traj, swap_arrays, passes / n_traj, refreshed)


def round_trips(replica: np.ndarray) -> np.ndarray:
    """Round trips per ladder ``[C]`` from the history ``replica [K, C, T]`` (which replica
    ``0..K-1`` sits at rung ``k`` of ladder ``c`` after step ``t``).

    A round trip is a replica's journey from the bottom rung to the top and back to the bottom:
    it is counted when the replica reaches the bottom having visited the top since it last was
    there (a replica first met at the top or in the middle starts counting at its first visit
    of the bottom).  A swap moves a replica by one rung, so a history recorded after every swap
    round sees every visit.
    """
    position = np.argsort(np.asarray(replica), axis=0, kind="stable")  # [replica, C, T]: its rung
    bottom, top = position == 0, position == position.shape[0] - 1
    # 0: not yet at the bottom; 1: left the bottom, heading up; 2: reached the top since.
    phase = np.zeros(position.shape[:2], dtype=np.int8)
    trips = np.zeros(position.shape[1], dtype=np.int64)
    for t in range(position.shape[2]):
        at_bottom, at_top = bottom[..., t], top[..., t]
        trips += np.count_nonzero((phase == 2) & at_bottom, axis=0)
        phase = np.where(at_bottom, 1, np.where(at_top & (phase == 1), 2, phase)).astype(np.int8)
    return trips
