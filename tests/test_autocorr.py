"""tau_int by the Gamma method: AR(1) series with known tau_int, replicas, frozen chain sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from chain_helpers import ar1, ar1_tau, write_chain_file

from dlhmc.analysis.autocorr import (
    MIN_CHAIN_TAUS,
    MIN_WINDOWS,
    autocovariance,
    gamma_method,
    pyerrors_tau_int,
)
from dlhmc.analysis.exact import exact_sectors
from dlhmc.cli import main

PULL = 4.0
# Real-valued AR(1) charges are physical only for SU(3)'s clover charge (U(1)'s Q_Z is an
# integer, its Q_R within V/(2 pi)): the synthetic series are files of that group.
REAL_CHARGE = {"group": "SU3", "lattice": (4, 4, 4, 4)}


def analyze(tmp_path, files, *extra):
    out = tmp_path / "tauint.csv"
    argv = ["analyze", *map(str, files), "--out", str(out), "--experiment", "test", *extra]
    assert main(argv) == 0
    return pd.read_csv(out)


@pytest.mark.parametrize(
    ("rho", "n_chains", "n_traj"),
    [(0.5, 1, 20000), (0.9, 8, 4000), (0.98, 64, 2000), (0.98, 8, 6000)],
)
def test_ar1_tau_recovered_through_cli(tmp_path, rho, n_chains, n_traj):
    """Charge, charge_real and plaq carry AR(1) series of different rho; each tau_int comes back."""
    rng = np.random.default_rng(int(rho * 1000) + n_chains)
    rho_plaq = 0.7
    charge = ar1(rho, n_chains, n_traj, rng)
    charge_real = ar1(rho, n_chains, n_traj, rng)
    plaq = 0.6 + 0.01 * ar1(rho_plaq, n_chains, n_traj, rng)
    path = write_chain_file(
        tmp_path / "c.nc", charge, plaq, charge_real=charge_real, nlf=7, **REAL_CHARGE
    )
    table = analyze(tmp_path, [path]).set_index("observable")
    # Sector indicators only where the exact charge distribution is known (none for SU(3)).
    sectors = {
        f"sector_{q}" for q in exact_sectors(REAL_CHARGE["group"], REAL_CHARGE["lattice"], 2.0)
    }
    assert set(table.index) == {"charge", "charge_real", "charge_sq", "plaq"} | sectors
    # Q^2 is a derived observable with its own (global-mean) Gamma-method error.
    q2 = table.loc["charge_sq"]
    assert q2["mean"] == pytest.approx(np.mean(charge**2))
    assert np.isnan(q2.known_mean) and q2.mean_err > 0
    expected = {"charge": ar1_tau(rho), "charge_real": ar1_tau(rho), "plaq": ar1_tau(rho_plaq)}
    for name, tau in expected.items():
        row = table.loc[name]
        assert not row.frozen, row.frozen_reason
        for est, err in (
            (row.tau_int, row.tau_int_err),
            (row.tau_int_free_mean, row.tau_int_free_mean_err),
        ):
            assert abs(est - tau) / err < PULL, (name, est, err, tau)
            assert 0 < err / tau < 0.5
        assert row.n_chains == n_chains and row.n_traj == n_traj
        assert row.cost_lf == pytest.approx(7 * row.tau_int)
        assert row.cost_lf_err == pytest.approx(7 * row.tau_int_err)
        assert row.seconds_per_indep == pytest.approx(row.tau_int / (50.0 * row.n_chains))
        assert row.tau_int_pyerrors > 0.5 and row.tau_int_pyerrors_err > 0
    assert table.loc["charge", "known_mean"] == 0
    assert np.isnan(table.loc["plaq", "known_mean"])
    assert abs(table.loc["plaq", "mean"] - 0.6) / table.loc["plaq", "mean_err"] < PULL


def test_stated_errors_are_calibrated():
    """Over independent repetitions the pulls of tau_int and of the mean have unit spread."""
    rng = np.random.default_rng(7)
    rho, tau = 0.9, ar1_tau(0.9)
    var_mean = 2 * tau / (1 - rho**2) / (8 * 2000)  # exact variance of the mean, large N
    tau_pulls, mean_pulls = [], []
    for _ in range(60):
        res = gamma_method(ar1(rho, 8, 2000, rng) + 3.0)
        tau_pulls.append((res.tau_int - tau) / res.tau_int_err)
        mean_pulls.append((res.mean - 3.0) / res.mean_err)
        assert res.mean_err == pytest.approx(np.sqrt(var_mean), rel=0.3)
    for pulls in (np.array(tau_pulls), np.array(mean_pulls)):
        assert abs(pulls.mean()) < 0.5
        assert 0.6 < pulls.std() < 1.4


def test_rho_of_ar1_and_bias_correction():
    """rho(t) follows rho^t; the correction multiplies tau_int by (1 + (2W+1)/N) / (1 + 2 tau/N).

    The second factor is Wolff's eq. (49) in closed form: adding C_F/N to every Gamma(t) with
    C_F = 2 tau Gamma(0) shifts numerator and denominator of tau_int by known amounts.
    """
    rng = np.random.default_rng(1)
    rho = 0.8
    data = ar1(rho, 16, 4000, rng)
    res = gamma_method(data)
    t = np.arange(6)
    assert np.allclose(res.rho[t], rho**t, atol=0.02)
    raw = gamma_method(data, bias_correction=False)
    assert raw.window == res.window
    n = data.size
    factor = (1 + (2 * raw.window + 1) / n) / (1 + 2 * raw.tau_int / n)
    assert res.tau_int == pytest.approx(raw.tau_int * factor, rel=1e-12)


def test_autocovariance_matches_direct_sum():
    """FFT Gamma(t) over replicas of unequal length equals the explicit double sum."""
    rng = np.random.default_rng(3)
    chains = [rng.standard_normal(n) for n in (50, 37, 64)]
    mean = np.concatenate(chains).mean()
    width = 64
    padded = np.zeros((3, width))
    for r, c in enumerate(chains):
        padded[r, : len(c)] = c - mean
    lengths = np.array([len(c) for c in chains])
    gamma = autocovariance(padded, lengths, 18)
    for t in range(19):
        num = sum(np.dot(c[: len(c) - t] - mean, c[t:] - mean) for c in chains)
        assert gamma[t] == pytest.approx(num / sum(len(c) - t for c in chains), rel=1e-10)


def test_many_short_chains_global_mean_unbiased_pyerrors_low():
    """256 chains of 300 steps (about 30 tau_int): per-chain means (pyerrors) bias tau_int low.

    Each chain's own mean absorbs the slow part of its fluctuations; the global mean does not.
    """
    rng = np.random.default_rng(11)
    rho, tau = 0.9, ar1_tau(0.9)
    data = ar1(rho, 256, 300, rng)
    ours = gamma_method(data)
    fixed = gamma_method(data, known_mean=0.0)
    assert not ours.frozen and not fixed.frozen
    for res in (ours, fixed):
        assert abs(res.tau_int - tau) / res.tau_int_err < PULL
    pe_tau, pe_err, _ = pyerrors_tau_int(data)
    assert pe_tau + PULL * pe_err < tau
    assert pe_tau < 0.85 * ours.tau_int


def test_long_chains_agree_with_pyerrors():
    """Where every chain is long compared with tau_int the two estimators coincide."""
    rng = np.random.default_rng(5)
    data = ar1(0.8, 4, 20000, rng)
    ours = gamma_method(data)
    pe_tau, pe_err, pe_window = pyerrors_tau_int(data)
    assert abs(ours.tau_int - pe_tau) < 0.2 * ours.tau_int_err
    assert abs(ours.window - pe_window) <= 2


def test_constant_charge_is_frozen_lower_bound(tmp_path, capsys):
    """Integer charge stuck in a different sector in every chain: frozen, bound of half a chain."""
    rng = np.random.default_rng(2)
    n_chains, n_traj = 16, 500
    charge = np.repeat(rng.integers(-2, 3, size=(n_chains, 1)), n_traj, axis=1).astype(float)
    charge[0] = 0.0
    plaq = 0.5 + 0.01 * ar1(0.5, n_chains, n_traj, rng)
    path = write_chain_file(tmp_path / "frozen.nc", charge, plaq, nlf=10)
    table = analyze(tmp_path, [path]).set_index("observable")
    row = table.loc["charge"]
    assert row.frozen
    assert "constant" in row.frozen_reason
    assert row.tau_int >= n_traj / 2
    assert row.cost_lf >= 10 * n_traj / 2
    assert not table.loc["plaq", "frozen"]
    assert table.loc["charge_sq", "frozen"]  # Q^2 is constant in every chain as well
    assert "tau_int(charge) >= " in capsys.readouterr().out


def test_same_sector_everywhere_is_frozen():
    """A cold start that never tunnels (Q = 0 everywhere) has no variance at all: still frozen."""
    res = gamma_method(np.zeros((8, 200)), known_mean=0.0)
    assert res.frozen and res.tau_int >= 100


def test_window_not_converged_is_lower_bound():
    """tau_int ~ 1000 seen through 16 chains of 400: the window runs out; lower bound reported."""
    rng = np.random.default_rng(4)
    res = gamma_method(ar1(0.999, 16, 400, rng))
    assert res.frozen
    assert "not converged" in res.reason
    assert res.window == 200
    assert res.tau_int > 100


@pytest.mark.parametrize("seed", range(5))
def test_short_single_chain_is_lower_bound(seed):
    """One chain only ~10 tau_int long: its estimate is low and must be flagged as a bound."""
    data = ar1(0.99, 1, 1000, np.random.default_rng(seed))
    for res in (gamma_method(data), gamma_method(data, known_mean=0.0)):
        assert res.frozen
        assert (2 * res.window + 1) * MIN_WINDOWS > 1000 or res.tau_int * MIN_CHAIN_TAUS > 1000


def test_rare_tunnelling_charge_is_frozen():
    """Integer charge that jumps by +-1 every ~5000 steps in 64 chains of 3000: lower bound."""
    rng = np.random.default_rng(8)
    steps = rng.choice([-1, 0, 1], p=[1e-4, 1 - 2e-4, 1e-4], size=(64, 3000))
    charge = rng.integers(-2, 3, size=(64, 1)) + np.cumsum(steps, axis=1)
    res = gamma_method(charge.astype(float), known_mean=0.0)
    assert res.frozen and res.tau_int > 500


def test_amortized_training_seconds(tmp_path):
    rng = np.random.default_rng(9)
    files = []
    for sampler, training in (("hmc", None), ("l2hmc", 3600.0)):
        files.append(
            write_chain_file(
                tmp_path / f"{sampler}.nc",
                ar1(0.6, 4, 2000, rng),
                0.5 + 0.01 * ar1(0.3, 4, 2000, rng),
                sampler=sampler,
                training_seconds=training,
                traj_per_second=20.0,
                **REAL_CHARGE,
            )
        )
    table = analyze(tmp_path, files, "--amortize-samples", "1000").set_index("sampler")
    hmc, l2hmc = (
        table[table.observable == "charge"].loc["hmc"],
        table[table.observable == "charge"].loc["l2hmc"],
    )
    assert hmc.seconds_per_indep_amortized == pytest.approx(hmc.tau_int / (20.0 * hmc.n_chains))
    assert l2hmc.seconds_per_indep_amortized == pytest.approx(
        l2hmc.tau_int / (20.0 * l2hmc.n_chains) + 3.6
    )
    assert (table.amortize_samples == 1000).all()
    assert (table.experiment == "test").all()


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    rng = np.random.default_rng(10)
    missing = tmp_path / "missing.nc"
    text = tmp_path / "notes.nc"
    text.write_text("not a chain file\n")
    good = write_chain_file(
        tmp_path / "good.nc",
        ar1(0.5, 2, 100, rng),
        0.6 + 0.01 * ar1(0.5, 2, 100, rng),
        **REAL_CHARGE,
    )
    no_charge = tmp_path / "no_charge.nc"
    import xarray as xr

    with xr.open_dataset(good, engine="h5netcdf") as ds:
        ds.drop_vars("charge").load().to_netcdf(no_charge, engine="h5netcdf")
    for path, words in (
        (missing, "no such file"),
        (text, "not a NetCDF chain file"),
        (no_charge, "missing variable 'charge'"),
    ):
        out = tmp_path / "t.csv"
        assert main(["analyze", str(good), str(path), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert str(path) in err and words in err
        assert not out.exists()


def test_out_directory_is_a_one_line_error(tmp_path, capsys):
    rng = np.random.default_rng(11)
    good = write_chain_file(
        tmp_path / "good.nc",
        ar1(0.5, 2, 100, rng),
        0.6 + 0.01 * ar1(0.5, 2, 100, rng),
        **REAL_CHARGE,
    )
    out = tmp_path / "table"
    out.mkdir()
    assert main(["analyze", str(good), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err and "is a directory" in err
    assert out.is_dir() and not list(out.iterdir())
