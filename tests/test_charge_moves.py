"""Counted charge changes and the lag-1 bound of tau_int (analysis.charge_moves, the report's
tunnelling table), against a Metropolis walk on the charge whose rates are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dlhmc.analysis.autocorr import gamma_method
from dlhmc.analysis.charge_moves import MIN_SECTOR_PAIRS, charge_moves
from dlhmc.analysis.exact import exact_charge_sq, exact_sectors
from dlhmc.analysis.tunnelling import tunnelling_table

LATTICE = (8, 8)
BETA = 3.0
STAY = 0.4  # a walk step proposes Q -> Q +- 1 with probability (1 - STAY) / 2 each


def _target():
    """The signed charge distribution of the sectors exact_sectors keeps (renormalized)."""
    sectors = exact_sectors("U1", LATTICE, BETA)
    top = max(sectors)
    values = np.arange(-top, top + 1)
    p = np.array([sectors[abs(q)].value / (1 if q == 0 else 2) for q in values])
    return values, p / p.sum()


def _walk(n_chains, n_traj, seed):
    """A reversible Metropolis walk on Q_Z in equilibrium, and its exact event rate."""
    values, p = _target()
    rng = np.random.default_rng(seed)
    index = rng.choice(len(values), size=n_chains, p=p)
    out = np.empty((n_chains, n_traj))
    padded = np.concatenate([[0.0], p, [0.0]])
    for t in range(n_traj):
        out[:, t] = values[index]
        step = rng.choice([-1, 0, 1], size=n_chains, p=[(1 - STAY) / 2, STAY, (1 - STAY) / 2])
        ratio = padded[index + 1 + step] / padded[index + 1]
        index = np.where(rng.random(n_chains) < ratio, index + step, index)
    half = (1 - STAY) / 2
    rate = sum(p[i] * half * (min(1.0, padded[i] / p[i]) + min(1.0, padded[i + 2] / p[i]))
               for i in range(len(p)))  # fmt: skip
    return out, rate


def test_rate_and_tau_lag1_agree_with_the_walk_exactly():
    charge, rate = _walk(64, 3000, seed=1)
    moves = charge_moves(charge, "U1", LATTICE, BETA)
    q2 = exact_charge_sq("U1", LATTICE, BETA).value
    assert moves.pairs == 64 * 2999
    assert moves.events == int(np.count_nonzero(np.diff(charge, axis=1)))
    assert abs(moves.rate - rate) < 4 * moves.rate_err
    # jumps of one: <dQ^2> is the event rate
    tau = 2 * q2 / rate - 0.5
    assert abs(moves.tau_lag1 - tau) < 4 * moves.tau_lag1_err
    assert moves.rate_err < 0.05 * rate  # the check above has power


def test_tau_lag1_is_a_lower_bound_of_tau_int_and_close_to_it():
    """Jensen over the spectrum of a reversible chain: tau_int >= tau_lag1; a walk over three
    or four sectors decorrelates mostly by one mode, so the bound is close."""
    charge, _ = _walk(64, 6000, seed=2)
    moves = charge_moves(charge, "U1", LATTICE, BETA)
    gamma = gamma_method(charge, known_mean=0.0)
    assert not gamma.frozen
    assert moves.tau_lag1 <= gamma.tau_int + 3 * math.hypot(gamma.tau_int_err, moves.tau_lag1_err)
    assert moves.tau_lag1 > 0.6 * gamma.tau_int


def test_error_describes_the_spread_of_replicas():
    """Chains as independent clusters: the error of one replica is the spread of many."""
    rates, errors = [], []
    for seed in range(24):
        charge, _ = _walk(16, 400, seed=100 + seed)
        moves = charge_moves(charge, "U1", LATTICE, BETA)
        rates.append(moves.rate)
        errors.append(moves.rate_err)
    assert 0.6 < np.std(rates, ddof=1) / np.mean(errors) < 1.6


def test_sectors_are_reweighted_to_their_exact_weights():
    """Frozen chains sit in the sector mix of their start: each sector's own rate counts with its
    exact weight, renormalized over the sectors with enough pairs; a jump of two is one event
    and four in <dQ^2>. The expectation is counted pair by pair."""
    charge = np.array([
        [0] * 121,
        [1] * 60 + [0] + [1] * 60,
        [2] * 59 + [3] + [0] * 61,  # one pair starts in |Q| = 3: too few to count
    ], dtype=float)  # fmt: skip
    w = {q: e.value for q, e in exact_sectors("U1", LATTICE, BETA).items()}
    pairs, events, squares = {}, {}, {}
    for row in charge:
        for a, b in zip(row[:-1], row[1:], strict=True):
            q = int(abs(a))
            pairs[q] = pairs.get(q, 0) + 1
            events[q] = events.get(q, 0) + (a != b)
            squares[q] = squares.get(q, 0) + (b - a) ** 2
    kept = [q for q in pairs if pairs[q] >= MIN_SECTOR_PAIRS]
    assert sorted(kept) == [0, 1, 2] and pairs[3] == 1
    norm = sum(w[q] for q in kept)
    rate = sum(w[q] * events[q] / pairs[q] for q in kept) / norm
    dq2 = sum(w[q] * squares[q] / pairs[q] for q in kept) / norm
    moves = charge_moves(charge, "U1", LATTICE, BETA)
    assert (moves.events, moves.pairs) == (4, 360)
    assert moves.rate == pytest.approx(rate, rel=1e-12)
    q2 = exact_charge_sq("U1", LATTICE, BETA).value
    assert moves.tau_lag1 == pytest.approx(2 * q2 / dq2 - 0.5, rel=1e-12)
    assert moves.rate != pytest.approx(4 / 360, rel=0.05)  # not the raw fraction


def test_frozen_chains_have_no_rate_and_an_infinite_bound():
    moves = charge_moves(np.ones((4, 50)), "U1", LATTICE, BETA)
    assert (moves.events, moves.rate, moves.tau_lag1) == (0, 0.0, math.inf)
    assert math.isnan(moves.tau_lag1_err)


def test_chains_too_short_for_any_sector_measure_nothing():
    """Fewer than MIN_SECTOR_PAIRS pairs in every sector: NaN, not the inf of a frozen charge."""
    charge = np.zeros((2, MIN_SECTOR_PAIRS // 2))
    charge[0, -1] = 1.0
    moves = charge_moves(charge, "U1", LATTICE, BETA)
    assert moves.events == 1
    assert math.isnan(moves.rate) and math.isnan(moves.tau_lag1)


def test_nothing_to_count_without_an_exact_charge_distribution_or_a_second_trajectory():
    assert charge_moves(np.zeros((4, 50)), "SU3", (2, 2, 2, 2), 6.0) is None
    assert charge_moves(np.zeros((4, 1)), "U1", LATTICE, BETA) is None


def _row(category, nlf, tau_lag1, err, role="main", observable="charge", **extra):
    row = {"experiment": "e", "group": "U1", "lattice": "8x8", "beta": BETA,
           "category": category, "sampler": "hmc" if category == "hmc" else "l2hmc",
           "role": role, "observable": observable, "nlf": nlf, "eps": 0.1,
           "instanton_hits": 0, "lf_per_traj": float(nlf), "network": "local",
           "flow_layers": math.nan, "accept_rate": 0.8, "charge_events": 10,
           "charge_pairs": 1000, "tunnel_rate": 0.01, "tunnel_rate_err": 0.001,
           "tau_int": 50.0, "tau_int_err": 5.0, "frozen": False, "tau_lag1": tau_lag1,
           "tau_lag1_err": err, "file": f"{category}_{nlf}_{role}.nc"}  # fmt: skip
    row.update(extra)
    return row


def test_table_ranks_every_file_against_the_best_plain_hmc_point():
    table = pd.DataFrame([
        _row("hmc", 10, 100.0, 10.0),
        _row("hmc", 20, 40.0, 4.0),  # N_LF tau_lag1 800 against 1000: the best point
        _row("l2hmc", 8, 10.0, 1.0),
        _row("l2hmc", 8, 20.0, 2.0, role="transfer_volume"),
        _row("hmc", 20, math.inf, math.nan, frozen=True, eps=0.01, tunnel_rate=0.0),
        _row("hmc", 10, math.nan, math.nan, observable="plaq"),
    ])  # fmt: skip
    moves = tunnelling_table(table).set_index(["category", "role", "nlf", "eps"])
    assert len(moves) == 5
    learned = moves.loc[("l2hmc", "main", 8, 0.1)]
    assert learned.ratio_lag1 == pytest.approx(800 / 80)
    assert learned.ratio_lag1_err == pytest.approx(10 * math.hypot(0.1, 0.1))
    assert moves.loc[("l2hmc", "transfer_volume", 8, 0.1)].ratio_lag1 == pytest.approx(5)
    assert learned.lf_per_event == pytest.approx(800)
    frozen = moves.loc[("hmc", "main", 20, 0.01)]
    assert frozen.lf_per_event == math.inf and math.isnan(frozen.ratio_lag1)


def test_a_table_without_counts_gives_an_empty_section():
    table = pd.DataFrame([_row("hmc", 10, math.nan, math.nan)]).drop(columns=["tau_lag1"])
    assert tunnelling_table(table).empty
