"""Charge changes per trajectory: what a chain too short for ``tau_int(Q)`` still measures.

Where the charge freezes on chains of affordable length, the Gamma method gives ``tau_int`` of
every sampler only as a lower bound set by the chain length, and two such bounds cannot rank two
samplers. The changes of the integer charge ``Q_Z`` can be counted instead: a trajectory
*tunnels* when the charge of its chain differs after it. From the mean squared change per
trajectory at equilibrium, ``<dQ^2>``, and the exact ``<Q^2>`` follows the lag-1 autocorrelation
``rho(1) = 1 - <dQ^2> / (2 <Q^2>)`` and with it

    tau_lag1 = 1/2 + rho(1) / (1 - rho(1)) = 2 <Q^2> / <dQ^2> - 1/2,

the integrated autocorrelation time of a charge that decorrelates by a single exponential mode.
For a reversible chain (HMC and L2HMC, whose momenta and direction are drawn afresh every
trajectory, are; a composition such as HMC followed by instanton hits need not be) it is a lower
bound of ``tau_int``: ``rho(t) = int lambda^t dmu(lambda)`` over the spectrum in ``[-1, 1)``, so
``tau_int = 1/2 + int lambda / (1 - lambda) dmu``, and ``lambda / (1 - lambda)`` is convex
(Jensen's inequality). The charge decorrelates by one slow mode, the hops between sectors, so the
bound is close to ``tau_int`` where both are resolved (docs/results.md); unlike the Gamma method's
bound it needs enough events, not chains longer than ``tau_int``. It is loose where the
acceptance is low and varies between configurations (an independence sampler, a model far from
the volume it was trained on): runs of rejections then correlate the chain beyond one step.

Equilibrium: a set of frozen chains sits in the sector mix of its thermalization, and a higher
sector changes more often, so ``<dQ^2>`` and the event rate are measured per starting sector
``|Q_Z| = q`` and averaged with the exact sector weights (over the sectors at least
:data:`MIN_SECTOR_PAIRS` pairs start from, renormalized). Errors treat the chains as independent
clusters (the delta method over per-chain sums): events cluster within a chain (a charge that
tunnels and comes back), which a binomial error would ignore. Only where the exact charge
distribution is known (2D U(1)); elsewhere there is no integer charge to count and no exact
``<Q^2>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dlhmc.analysis.exact import exact_charge_sq, exact_sectors

# A sector enters the equilibrium average only with this many pairs starting in it: its rate
# from fewer is noise that its exact weight would carry into the average.
MIN_SECTOR_PAIRS = 50


@dataclass(frozen=True)
class ChargeMoves:
    """The charge changes of one chain set. ``rate`` (events per trajectory) and ``tau_lag1``
    are equilibrium values (sector-reweighted); ``events`` and ``pairs`` the raw counts."""

    events: int
    pairs: int
    rate: float
    rate_err: float
    tau_lag1: float
    tau_lag1_err: float


def _reweighted(totals: np.ndarray, counts: np.ndarray, weights: np.ndarray):
    """``sum_q w_q T_q / N_q`` over the sectors with at least :data:`MIN_SECTOR_PAIRS` pairs (the
    weights renormalized over them), and its variance with the chains as independent clusters.

    ``totals`` and ``counts`` are ``[chain, sector]``. The variance is the delta method's: the
    estimate is a smooth function of sums over chains, so chain ``c``'s influence is
    ``psi_c = sum_q w_q (T_cq - r_q N_cq) / N_q`` and ``Var = C / (C - 1) sum_c psi_c^2``. Not
    the leave-one-chain-out jackknife: where one chain holds nearly all pairs of a rare sector,
    deleting it leaves that sector's rate to a handful of pairs and the jackknife explodes.
    """
    n = counts.sum(axis=0)
    kept = n >= MIN_SECTOR_PAIRS
    if not kept.any():
        return math.nan, math.nan
    w = np.where(kept, weights, 0.0)
    w = w / w.sum()
    safe = np.where(kept, n, 1.0)
    rate = totals.sum(axis=0) / safe
    value = float((w * rate).sum())
    chains = counts.shape[0]
    if chains < 2:
        return value, math.nan
    influence = ((totals - rate * counts) * (w / safe)).sum(axis=1)
    return value, float(chains / (chains - 1) * (influence**2).sum())


def charge_moves(
    charge: np.ndarray, group: str, lattice: tuple[int, ...], beta: float
) -> ChargeMoves | None:
    """Counts, equilibrium rate and ``tau_lag1`` of ``charge`` (``[chain, traj]``, the stored
    integer charge); ``None`` where the theory has no exact charge distribution or no chain has
    two trajectories."""
    sectors = exact_sectors(group, lattice, beta)
    q2 = exact_charge_sq(group, lattice, beta)
    if not sectors or q2 is None or charge.shape[1] < 2:
        return None
    q = np.rint(charge)
    dq = np.diff(q, axis=1)
    start = np.abs(q[:, :-1])
    names = sorted(sectors)
    weights = np.array([sectors[s].value for s in names])
    # per chain and starting sector: pairs, events, summed dQ^2
    masks = np.stack([start == s for s in names], axis=-1)
    counts = masks.sum(axis=1).astype(np.float64)
    events = (masks & (dq != 0)[..., None]).sum(axis=1).astype(np.float64)
    squares = (masks * (dq**2)[..., None]).sum(axis=1)
    rate, rate_var = _reweighted(events, counts, weights)
    dq2, dq2_var = _reweighted(squares, counts, weights)
    # no sector with enough pairs: nothing measured (NaN), not a charge that never moves (inf)
    tau, tau_err = (math.nan, math.nan) if math.isnan(dq2) else (math.inf, math.nan)
    if dq2 > 0:
        tau = 2.0 * q2.value / dq2 - 0.5
        tau_err = 2.0 * q2.value / dq2**2 * math.sqrt(dq2_var)
    return ChargeMoves(
        events=int(np.count_nonzero(dq)),
        pairs=int(dq.size),
        rate=rate,
        rate_err=math.sqrt(rate_var),
        tau_lag1=tau,
        tau_lag1_err=tau_err,
    )
