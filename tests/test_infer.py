"""``dlhmc infer``: the chain file of a trained sampler and its option handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_helpers import TINY, load

from dlhmc.cli import main
from dlhmc.io import read_chains
from dlhmc.lattice.u1_exact import exact_plaquette

CHAINS, TRAJ, THERM = 8, 12, 3


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("infer") / "run"
    assert main(["train", *TINY, "--steps", "5", "--out", str(run)]) == 0
    return run


def _infer(run_dir, out, *extra) -> int:
    try:
        return main(["infer", "--checkpoint", str(run_dir), "--chains", str(CHAINS),
                     "--trajectories", str(TRAJ), "--therm", str(THERM), "--seed", "2",
                     "--out", str(out), "--no-progress", *extra])  # fmt: skip
    except SystemExit as exc:  # argparse errors
        return exc.code


def test_chain_file_has_l2hmc_variables_attrs_and_layer_diagnostics(run_dir, tmp_path):
    out = tmp_path / "chains.nc"
    assert _infer(run_dir, out, "--layer-samples", str(TRAJ)) == 0
    ds = read_chains(out)
    state = load(run_dir)
    nlf = state["config"]["nlf"]
    assert dict(ds.sizes) == {"chain": CHAINS, "traj": TRAJ, "lf": nlf + 1}
    for name in ("plaq", "charge", "charge_real", "accept_prob", "accepted", "dH", "sumlogdet"):
        assert ds[name].dims == ("chain", "traj"), name
        assert np.isfinite(ds[name].values).all(), name
    assert ds["accepted"].dtype == np.int8
    assert set(np.unique(ds["charge"].values)) <= set(np.arange(-8.0, 9.0))
    # Each accepted trajectory was accepted with a probability > 0, and A = min(1, e^(ld - dH)).
    expected = np.minimum(1.0, np.exp(ds["sumlogdet"].values - ds["dH"].values))
    np.testing.assert_allclose(ds["accept_prob"].values, expected, rtol=1e-5)
    assert (ds["accept_prob"].values[ds["accepted"].values == 1] > 0).all()

    attrs = ds.attrs
    assert attrs["sampler"] == "l2hmc" and attrs["group"] == "U1" and attrs["nlf"] == nlf
    assert list(attrs["lattice"]) == [4, 4] and attrs["beta"] == 2.0
    eps_x = torch.exp(state["model"]["log_eps_x"]).mean().item()
    assert attrs["eps"] == pytest.approx(eps_x, rel=1e-6)
    assert attrs["n_therm"] == THERM and attrs["seed"] == 2
    assert attrs["training_seconds"] == pytest.approx(state["timing"]["training_seconds"])
    assert attrs["checkpoint"].endswith("checkpoint.pt")
    assert attrs["traj_per_second"] == pytest.approx((THERM + TRAJ) / attrs["wall_seconds"])

    # Layer diagnostics on dim lf: every measured trajectory recorded (K = T), so the energy
    # change through the layers, H' - H - sum log|J|, must equal the mean of dH - sumlogdet.
    for name in ("lf_plaq_dev", "lf_energy", "lf_charge_real"):
        assert ds[name].dims == ("lf",) and np.isfinite(ds[name].values).all()
    energy = ds["lf_energy"].values
    change = (ds["dH"] - ds["sumlogdet"]).mean().item()
    assert energy[-1] - energy[0] == pytest.approx(change, abs=1e-4 * max(1, abs(energy[0])))
    # The plaquette deviation is measured from the exact finite-volume value (U1).
    plaq_layers = ds["lf_plaq_dev"].values + exact_plaquette(2.0, 16)
    assert (np.abs(plaq_layers) <= 1).all()
    assert attrs["lf_plaq_reference"] == "finite-volume Bessel sum"


def test_beta_option_overrides_the_checkpoint_beta(run_dir, tmp_path):
    out = tmp_path / "chains.nc"
    assert _infer(run_dir, out, "--beta", "1.5", "--layer-samples", "2") == 0
    ds = read_chains(out)
    assert ds.attrs["beta"] == 1.5 and ds.attrs["layer_samples"] == 2
    # The model's own beta stays on record: the analysis tells a transferred model by it.
    assert ds.attrs["train_beta"] == load(run_dir)["config"]["beta"] == 2.0


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        (["--chains", "0"], "--chains"),
        (["--trajectories", "-3"], "--trajectories"),
        (["--beta", "nan"], "--beta"),
        (["--layer-samples", "0"], "--layer-samples"),
        (["--device", "gpu0"], "--device"),
    ],
)
def test_bad_options_fail_naming_the_option_without_touching_outputs(
    run_dir, tmp_path, capsys, extra, option
):
    out = tmp_path / "chains.nc"
    out.write_bytes(b"previous result")
    assert _infer(run_dir, out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert option in err and len(err.splitlines()) == 1
    assert out.read_bytes() == b"previous result"


def test_missing_checkpoint_is_reported(tmp_path, capsys):
    out = tmp_path / "chains.nc"
    assert _infer(tmp_path / "nowhere", out) == 2
    assert "--checkpoint" in capsys.readouterr().err
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert _infer(garbage, out) == 2
    err = capsys.readouterr().err.strip()
    assert "--checkpoint" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_briefly_trained_sampler_reproduces_the_exact_plaquette(run_dir, tmp_path):
    """Exactness does not depend on training quality: full MH at gamma = 1 samples exp(-S).

    The chains are independent, so the spread of the per-chain means gives an honest error
    of the overall mean whatever the autocorrelation within a chain.  Trajectories of this
    barely trained model are short (2 layers of eps ~ 0.1), so hot starts need ~100 of them
    to relax (with 30 the plaquette was still ~2 sigma low).
    """
    out = tmp_path / "chains.nc"
    code = main(["infer", "--checkpoint", str(run_dir), "--chains", "64", "--trajectories", "100",
                 "--therm", "100", "--seed", "5", "--out", str(out), "--layer-samples", "1",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    per_chain = read_chains(out)["plaq"].mean("traj").values
    mean = per_chain.mean()
    err = per_chain.std(ddof=1) / np.sqrt(per_chain.size)
    exact = exact_plaquette(2.0, 16)
    assert abs(mean - exact) < 4 * err, (mean, exact, err)
    assert err < 0.01  # the test has teeth: a wrong sampler shifts the plaquette by more


def test_therm_hmc_is_recorded_and_off_by_default(run_dir, tmp_path):
    """--therm-hmc K runs K HMC trajectories before --therm; 0 (the default) draws nothing more,
    so the chains of a seed stay what they were."""
    plain, again, warm = tmp_path / "plain.nc", tmp_path / "again.nc", tmp_path / "warm.nc"
    assert _infer(run_dir, plain) == 0
    assert _infer(run_dir, again, "--therm-hmc", "0") == 0
    assert _infer(run_dir, warm, "--therm-hmc", "4") == 0
    a, b, c = read_chains(plain), read_chains(again), read_chains(warm)
    assert a.attrs["n_therm_hmc"] == 0 and c.attrs["n_therm_hmc"] == 4
    np.testing.assert_array_equal(a["plaq"].values, b["plaq"].values)
    assert not np.array_equal(a["plaq"].values, c["plaq"].values)


@pytest.mark.parametrize("group, lattice, beta", [
    ("U1", (8, 8), 4.0),
    ("SU3", (2, 2, 2, 4), 1.0),
])  # fmt: skip
def test_thermalize_reaches_equilibrium_from_a_hot_start(group, lattice, beta):
    """The thermalizing HMC takes a hot start to the equilibrium plaquette: the exact
    finite-volume value for U(1), the strong-coupling value for SU(3) at beta 1 (independent
    chains: the error is the spread over chains)."""
    from dlhmc.analysis.exact import exact_plaquette as reference
    from dlhmc.inference import thermalize
    from dlhmc.lattice import make_theory

    theory = make_theory(group, lattice, beta)
    generator = torch.Generator().manual_seed(5)
    x = thermalize(theory, theory.hot_start(256, generator), 40, generator)
    plaq = theory.plaquette(x).numpy()
    exact = reference(group, lattice, beta)
    error = np.hypot(plaq.std(ddof=1) / np.sqrt(len(plaq)), exact.error)
    assert abs(plaq.mean() - exact.value) < 4 * error, (plaq.mean(), exact, error)
    assert np.array_equal(thermalize(theory, x, 0, generator), x)
