"""The charge-sector exactness check: ``P(|Q_Z| = q)`` of synthetic chains and of a real winding
HMC run against the exact 2D U(1) sector distribution. Chains drawn from the exact weights pass,
chains drawn from wrong weights FAIL, and chain sets that do not resolve the tunnelling get no
verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from chain_helpers import ar1, sector_chains, write_chain_file

from dlhmc.analysis.chains import load_chain_set
from dlhmc.analysis.checks import MIN_VISITS, PULL_LIMIT, exactness_checks, sector_checks
from dlhmc.analysis.exact import SECTOR_THRESHOLD, exact_charge_sq, exact_sectors
from dlhmc.analysis.table import sector_charge, tau_table
from dlhmc.cli import main
from dlhmc.lattice.u1_exact import sector_distribution

LATTICE, BETA = (8, 8), 2.0
VOLUME = LATTICE[0] * LATTICE[1]
N_CHAINS, N_TRAJ = 16, 2000


def _weights(beta: float = BETA) -> tuple[np.ndarray, np.ndarray]:
    """``(Q, P(Q))`` for ``|Q| <= 12`` straight from ``u1_exact``, normalized."""
    charges, probs, _ = sector_distribution(beta, VOLUME, 12)
    probs = np.clip(probs, 0.0, None)
    return charges, probs / probs.sum()


def _iid(probs: np.ndarray, rng, n_chains: int = N_CHAINS, n_traj: int = N_TRAJ) -> np.ndarray:
    """Independent charges with the given weights on ``Q = -12..12``."""
    charges, _ = _weights()
    return rng.choice(charges, size=(n_chains, n_traj), p=probs / probs.sum()).astype(np.float64)


def _checks(tmp_path, charge: np.ndarray, name: str = "c"):
    rng = np.random.default_rng(0)
    plaq = 0.7 + 0.01 * ar1(0.5, *charge.shape, rng)
    path = write_chain_file(tmp_path / f"{name}.nc", charge, plaq, lattice=LATTICE, beta=BETA)
    table = tau_table([load_chain_set(path)], "test")
    checks = sector_checks(table)
    checks.index = checks.observable.map(sector_charge)
    return checks


def test_exact_sectors_fold_plus_and_minus_q_and_stop_at_the_threshold():
    charges, probs = _weights()
    sectors = exact_sectors("U1", LATTICE, BETA)
    folded = [probs[np.abs(charges) == q].sum() for q in range(len(sectors) + 1)]
    assert list(sectors) == list(range(len(sectors)))
    for q, exact in sectors.items():
        assert exact.value == pytest.approx(folded[q], rel=1e-9)
        assert exact.value > SECTOR_THRESHOLD
    assert folded[len(sectors)] <= SECTOR_THRESHOLD
    assert len(sectors) >= 4  # at beta 2 on 8x8 the weights reach |Q| = 4
    assert exact_sectors("SU3", (4, 4, 4, 4), 1.0) == {}


def test_iid_chains_from_the_exact_weights_pass(tmp_path):
    rng = np.random.default_rng(1)
    checks = _checks(tmp_path, _iid(_weights()[1], rng))
    assert list(checks.index) == list(exact_sectors("U1", LATTICE, BETA))
    assert (checks.status == "pass").all(), checks[["measured", "exact", "pull"]]
    assert (checks.pull.abs() < PULL_LIMIT).all()


def test_correlated_chains_from_the_exact_weights_pass(tmp_path):
    """Autocorrelated charges (tau_int ~ 10): the Gamma-method errors keep the pulls small."""
    charge = sector_chains(BETA, LATTICE, 0.9, N_CHAINS, N_TRAJ, np.random.default_rng(2))
    checks = _checks(tmp_path, charge)
    checked = checks[checks.status != "too short"]
    assert {0, 1, 2} <= set(checked.index)
    assert (checked.status == "pass").all(), checks[["measured", "measured_err", "pull"]]


def test_doubled_q1_weight_fails(tmp_path):
    charges, probs = _weights()
    wrong = np.where(np.abs(charges) == 1, 2.0 * probs, probs)
    checks = _checks(tmp_path, _iid(wrong, np.random.default_rng(3)))
    assert checks.loc[1, "status"] == "FAIL" and checks.loc[1, "pull"] > PULL_LIMIT
    assert checks.loc[0, "status"] == "FAIL" and checks.loc[0, "pull"] < -PULL_LIMIT


def test_weights_of_another_beta_fail(tmp_path):
    """Sectors drawn with the weights of beta = 1.6 (a wider distribution) in a beta = 2 file."""
    checks = _checks(tmp_path, _iid(_weights(1.6)[1], np.random.default_rng(4)))
    assert checks.loc[0, "status"] == "FAIL" and checks.loc[0, "pull"] < -PULL_LIMIT
    assert (checks.status == "FAIL").sum() >= 2


def test_a_sector_never_reached_fails(tmp_path):
    """A sampler whose charge moves but never leaves |Q| <= 1: the indicators of |Q| = 2, 3
    are 0 in every chain (no Gamma-method error), and their error is an exact sampler's."""
    charges, probs = _weights()
    cut = np.where(np.abs(charges) <= 1, probs, 0.0)
    checks = _checks(tmp_path, _iid(cut, np.random.default_rng(5)))
    for q in (2, 3):
        row = checks.loc[q]
        assert row.measured == 0 and row.status == "FAIL" and row.pull < -PULL_LIMIT
        expected = np.sqrt(row.exact * (1 - row.exact) / (N_CHAINS * N_TRAJ))
        assert row.measured_err == pytest.approx(expected, rel=0.1)  # tau_int(Q) ~ 1/2


def test_short_chains_check_only_the_sectors_they_resolve(tmp_path):
    """800 independent samples: sector 4 (P ~ 1e-3) is expected about once, sector 3 (P ~ 0.02)
    about 15 times; neither is checked, not even when the chains never reach them."""
    charges, probs = _weights()
    for name, weights in (("exact", probs), ("cut", np.where(np.abs(charges) <= 2, probs, 0.0))):
        checks = _checks(tmp_path, _iid(weights, np.random.default_rng(6), 4, 200), name)
        assert list(checks.loc[[3, 4], "status"]) == ["too short", "too short"]
        assert list(checks.loc[[0, 1], "status"]) == ["pass", "pass"]
        visits = 800 * checks.loc[3, "exact"]
        assert visits < MIN_VISITS


@pytest.mark.parametrize("stuck", ["constant", "rare"])
def test_frozen_charge_gets_no_verdict(tmp_path, stuck):
    """Chains that keep their charge (``constant``) or tunnel a handful of times (``rare``)
    resolve no sector weight: status frozen, never pass nor FAIL, although the constant chains
    sit in sectors whose fractions are far from the exact weights."""
    if stuck == "constant":
        charge = np.repeat(np.arange(-4.0, 4.0)[:, None], 200, axis=1)
    else:
        charge = sector_chains(BETA, LATTICE, 0.9995, 8, 400, np.random.default_rng(7))
        assert (np.diff(charge, axis=1) != 0).any()
    checks = _checks(tmp_path, charge)
    assert (checks.status == "frozen").all(), checks[["measured", "pull", "status"]]
    combined = exactness_checks(tau_table([load_chain_set(tmp_path / "c.nc")], "test")).set_index(
        "observable"
    )
    assert combined.loc["charge_sq", "status"] == "frozen"


def test_exact_distribution_of_wide_lattices():
    """On 32x32 at beta 2 the sums need charges up to 64 (a finer theta grid than 16x16).
    The plaquette angles are independent up to the torus constraint, whose effect is
    exponentially small, so <Q^2> / V is the same on both volumes."""
    small, large = (exact_charge_sq("U1", (n, n), 2.0) for n in (16, 32))
    assert large.value / 1024 == pytest.approx(small.value / 256, rel=1e-4)
    sectors = exact_sectors("U1", (32, 32), 2.0)
    assert sum(e.value for e in sectors.values()) == pytest.approx(1.0, abs=5e-3)
    assert min(e.value for e in sectors.values()) > SECTOR_THRESHOLD


def test_winding_hmc_run_passes_its_sector_checks_in_the_report(tmp_path):
    """A real chain file: winding HMC on 4x6 at beta 2 through ``analyze`` and ``report``.
    Every sector above the threshold is resolved and reproduces its exact weight."""
    chains = tmp_path / "w.nc"
    run = ["hmc", "--group", "U1", "--lattice", "4", "6", "--beta", "2.0", "--nlf", "5",
           "--eps", "0.2", "--chains", "64", "--trajectories", "400", "--therm", "50",
           "--instanton-hits", "4", "--seed", "1", "--device", "cpu", "--no-progress",
           "--out", str(chains)]  # fmt: skip
    assert main(run) == 0
    table = tmp_path / "t.csv"
    assert main(["analyze", str(chains), "--out", str(table)]) == 0
    out = tmp_path / "report"
    argv = ["report", "--table", str(table), "--chains", str(chains), "--experiment",
            "default", "--out-dir", str(out)]  # fmt: skip
    assert main(argv) == 0
    checks = sector_checks(pd.read_csv(table))
    assert list(checks.observable) == [f"sector_{q}" for q in exact_sectors("U1", (4, 6), 2.0)]
    assert (checks.status == "pass").all(), checks[["measured", "exact", "pull", "status"]]
    html = (out / "report.html").read_text(encoding="utf-8")
    for q in exact_sectors("U1", (4, 6), 2.0):
        assert f'<td class="text">pass</td><td class="text">P(|Q_Z| = {q})</td>' in html
