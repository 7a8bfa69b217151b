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
bound it needs enough events, not chains longer than ``tau_int``.

Equilibrium: a set of frozen chains sits in the sector mix of its thermalization, and a higher
sector changes more often, so ``<dQ^2>`` and the event rate are measured per starting sector
``|Q_Z| = q`` and averaged with the exact sector weights (over the sectors some pair starts from,
renormalized). Errors by the jackknife over chains: events cluster within a chain (a charge that
tunnels and comes back), which a binomial error would ignore. Only where the exact charge
distribution is known (2D U(1)); elsewhere there is no integer charge to count and no exact
``<Q^2>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dlhmc.analysis.exact import exact_charge_sq, exact_sectors


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


def _reweighted(totals: np.ndarray, counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_q w_q totals_q / counts_q`` over the sectors with ``counts_q > 0``, the weights
    renormalized over those sectors; the last axis runs over sectors."""
    present = counts > 0
    w = np.where(present, weights, 0.0)
    norm = w.sum(axis=-1)
    per_sector = np.where(present, totals / np.maximum(counts, 1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w * per_sector).sum(axis=-1) / norm


def _jackknife_error(full: float, leave_one_out: np.ndarray) -> float:
    n = len(leave_one_out)
    if n < 2 or not math.isfinite(full) or not np.all(np.isfinite(leave_one_out)):
        return math.nan
    return float(np.sqrt((n - 1) / n * np.sum((leave_one_out - leave_one_out.mean()) ** 2)))


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

    def estimates(c, e, s):
        rate = _reweighted(e, c, weights)
        dq2 = _reweighted(s, c, weights)
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = np.where(dq2 > 0, 2.0 * q2.value / dq2 - 0.5, np.inf)
        return rate, tau

    rate, tau = estimates(counts.sum(0), events.sum(0), squares.sum(0))
    rate_j, tau_j = estimates(counts.sum(0) - counts, events.sum(0) - events,
                              squares.sum(0) - squares)  # fmt: skip
    return ChargeMoves(
        events=int(np.count_nonzero(dq)),
        pairs=int(dq.size),
        rate=float(rate),
        rate_err=_jackknife_error(float(rate), rate_j),
        tau_lag1=float(tau),
        tau_lag1_err=_jackknife_error(float(tau), tau_j),
    )
