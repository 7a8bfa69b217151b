"""``dlhmc infer`` on a flow run: the chain files of flow IMH and flow HMC, volume transfer and
the option rules."""

from __future__ import annotations

import numpy as np
import pytest
from train_helpers import TINY, load

from dlhmc.analysis.autocorr import gamma_method
from dlhmc.cli import main
from dlhmc.flows.ess import effective_sample_size
from dlhmc.io import read_chains
from dlhmc.lattice.u1_exact import exact_plaquette

CHAINS, TRAJ, THERM = 8, 12, 3
# A flow trained for seconds on 4x4 at beta 1: IMH accepts ~20 % of its proposals there.
FLOW = ["--sampler", "flow", "--group", "U1", "--lattice", "4", "4", "--beta", "1.0",
        "--flow-layers", "4", "--hidden", "4", "--batch", "32", "--lr", "0.01", "--seed", "1",
        "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("flow") / "run"
    assert main(["train", *FLOW, "--steps", "40", "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def l2hmc_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("l2hmc") / "run"
    assert main(["train", *TINY, "--steps", "2", "--out", str(run)]) == 0
    return run


def _infer(run_dir, out, *extra, chains=CHAINS, traj=TRAJ, therm=THERM) -> int:
    try:
        return main(["infer", "--checkpoint", str(run_dir), "--chains", str(chains),
                     "--trajectories", str(traj), "--therm", str(therm), "--seed", "2",
                     "--out", str(out), "--no-progress", *extra])  # fmt: skip
    except SystemExit as exc:  # argparse errors
        return exc.code


def _common_attrs(ds, run_dir):
    state = load(run_dir)
    attrs = ds.attrs
    assert attrs["group"] == "U1" and attrs["beta"] == 1.0 and attrs["train_beta"] == 1.0
    assert list(attrs["train_lattice"]) == [4, 4] and attrs["network"] == "flow"
    assert attrs["n_therm"] == THERM and attrs["n_therm_hmc"] == 0 and attrs["seed"] == 2
    assert attrs["training_steps"] == 40 and attrs["flow_layers"] == 4
    assert attrs["training_seconds"] == pytest.approx(state["timing"]["training_seconds"])
    assert attrs["n_params"] == sum(t.numel() for t in state["model"].values())
    assert attrs["checkpoint"].endswith("checkpoint.pt") and attrs["precision"] == "single"
    assert attrs["traj_per_second"] == pytest.approx((THERM + TRAJ) / attrs["wall_seconds"])
    assert "lf" not in ds.sizes  # a flow has no leapfrog layers to diagnose


def test_imh_chain_file(flow_run, tmp_path):
    out = tmp_path / "imh.nc"
    assert _infer(flow_run, out) == 0
    ds = read_chains(out)
    assert dict(ds.sizes) == {"chain": CHAINS, "traj": TRAJ}
    for name in ("plaq", "charge", "charge_real", "accept_prob", "accepted", "dH", "divergent",
                 "log_weight"):
        assert ds[name].dims == ("chain", "traj") and np.isfinite(ds[name].values).all(), name
    assert "sumlogdet" not in ds
    np.testing.assert_allclose(ds["accept_prob"].values,
                               np.minimum(1.0, np.exp(-ds["dH"].values)), rtol=1e-12)
    attrs = ds.attrs
    assert attrs["sampler"] == "flow_imh" and attrs["nlf"] == 1 and attrs["eps"] == 1.0
    assert list(attrs["lattice"]) == [4, 4] and attrs["flow_forces"] == 0
    assert attrs["ess"] == pytest.approx(float(effective_sample_size(ds["log_weight"].values)))
    assert 0 < attrs["ess"] <= 1
    _common_attrs(ds, flow_run)
    assert 0 < ds["accepted"].mean() < 1


@pytest.mark.parametrize("extra", [(), ("--flow-hmc", "--nlf", "2", "--eps", "0.05")])
def test_chains_start_from_flow_samples_not_hot_starts(flow_run, tmp_path, extra):
    """A hot configuration has a tiny q and a huge weight p / q that no independence proposal
    beats, so flow chains start from the flow's own samples: after one short trajectory their
    plaquette is the briefly trained flow's (~0.2; exact 0.446 at beta 1), not a hot start's
    0 +- 0.02 (64 chains x 16 plaquettes)."""
    out = tmp_path / "start.nc"
    assert _infer(flow_run, out, *extra, chains=64, traj=1, therm=0) == 0
    plaq = read_chains(out)["plaq"].values
    assert plaq.mean() > 0.1, plaq.mean()


def test_flow_hmc_chain_file_on_another_volume(flow_run, tmp_path):
    out = tmp_path / "hmc.nc"
    assert _infer(flow_run, out, "--flow-hmc", "--nlf", "3", "--eps", "0.2",
                  "--lattice", "4", "6") == 0
    ds = read_chains(out)
    assert dict(ds.sizes) == {"chain": CHAINS, "traj": TRAJ}
    assert "log_weight" not in ds
    attrs = ds.attrs
    assert attrs["sampler"] == "flow_hmc" and attrs["nlf"] == 3 and attrs["eps"] == 0.2
    assert attrs["integrator"] == "leapfrog" and attrs["flow_forces"] == 3
    assert list(attrs["lattice"]) == [4, 6]
    _common_attrs(ds, flow_run)
    assert 0.5 < ds["accepted"].mean() <= 1


def test_flow_hmc_reproduces_the_exact_plaquette_on_another_volume(flow_run, tmp_path):
    """A flow trained on 4x4 runs on 4x6 (its masks fit): the chains sample exp(-S) there,
    within 4 Gamma-method errors of the exact finite-volume plaquette."""
    out = tmp_path / "hmc.nc"
    assert _infer(flow_run, out, "--flow-hmc", "--nlf", "4", "--eps", "0.25", "--lattice", "4",
                  "6", chains=32, traj=80, therm=10) == 0
    gamma = gamma_method(read_chains(out)["plaq"].values)
    exact = exact_plaquette(1.0, 24)
    assert not gamma.frozen, gamma.reason
    assert abs(gamma.mean - exact) < 4 * gamma.mean_err, (gamma.mean, exact, gamma.mean_err)
    assert gamma.mean_err < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("lattice", [("4", "4"), ("4", "6")])
def test_imh_reproduces_the_exact_plaquette_long(flow_run, tmp_path, lattice):
    """Independence Metropolis with a flow trained by the mode-seeking reverse KL: chains stick
    at the rare proposals from the flow's tails (weights p/q far above the typical), so short
    runs are biased while the Gamma method warns (64 x 300 trajectories: 3 to 8 errors low,
    flagged); thousands of trajectories converge (64 x 4000 on 4x4: 0.06 errors)."""
    out = tmp_path / "imh.nc"
    assert _infer(flow_run, out, "--lattice", *lattice, chains=64, traj=3000, therm=200) == 0
    gamma = gamma_method(read_chains(out)["plaq"].values)
    exact = exact_plaquette(1.0, int(lattice[0]) * int(lattice[1]))
    assert not gamma.frozen, gamma.reason
    assert abs(gamma.mean - exact) < 4 * gamma.mean_err, (gamma.mean, exact, gamma.mean_err)


def test_beta_option_samples_another_coupling(flow_run, tmp_path):
    """The flow stays the proposal, the target changes: still exact, the model's beta on record."""
    out = tmp_path / "imh.nc"
    assert _infer(flow_run, out, "--beta", "1.5") == 0
    attrs = read_chains(out).attrs
    assert attrs["beta"] == 1.5 and attrs["train_beta"] == 1.0


def test_same_seed_same_chains_and_therm_hmc(flow_run, tmp_path):
    a, b, c = tmp_path / "a.nc", tmp_path / "b.nc", tmp_path / "c.nc"
    assert _infer(flow_run, a) == 0 and _infer(flow_run, b) == 0
    assert _infer(flow_run, c, "--therm-hmc", "3") == 0
    first, again, warm = read_chains(a), read_chains(b), read_chains(c)
    np.testing.assert_array_equal(first["log_weight"].values, again["log_weight"].values)
    np.testing.assert_array_equal(first["plaq"].values, again["plaq"].values)
    assert warm.attrs["n_therm_hmc"] == 3
    assert not np.array_equal(first["plaq"].values, warm["plaq"].values)


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        (["--nlf", "3"], "--nlf"),
        (["--eps", "0.1"], "--eps"),
        (["--flow-hmc"], "--flow-hmc"),
        (["--flow-hmc", "--nlf", "3"], "--flow-hmc"),
        (["--flow-hmc", "--eps", "0.1"], "--flow-hmc"),
        (["--flow-hmc", "--nlf", "0", "--eps", "0.1"], "--nlf"),
        (["--flow-hmc", "--nlf", "3", "--eps", "inf"], "--eps"),
        (["--layer-samples", "2"], "--layer-samples"),
        (["--lattice", "5", "5"], "--lattice"),  # period-4 masks: no extent 4k + 1
        (["--lattice", "4"], "--lattice"),
        (["--lattice", "4", "4", "4"], "--lattice"),
        (["--beta", "0"], "--beta"),
        (["--chains", "0"], "--chains"),
    ],
)
def test_bad_flow_options_fail_naming_the_option(flow_run, tmp_path, capsys, extra, option):
    out = tmp_path / "chains.nc"
    out.write_bytes(b"previous result")
    assert _infer(flow_run, out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert option in err and len(err.splitlines()) == 1, err
    assert out.read_bytes() == b"previous result"


@pytest.mark.parametrize("extra", [["--flow-hmc", "--nlf", "3", "--eps", "0.1"], ["--nlf", "3"],
                                   ["--eps", "0.1"]])
def test_flow_options_are_refused_on_an_l2hmc_run(l2hmc_run, tmp_path, capsys, extra):
    out = tmp_path / "chains.nc"
    assert _infer(l2hmc_run, out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert extra[0] in err and "L2HMC" in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_a_damaged_flow_checkpoint_is_named(flow_run, tmp_path, capsys):
    import torch

    state = load(flow_run)
    del state["flow"]["layers"]
    broken = tmp_path / "broken"
    broken.mkdir()
    torch.save(state, broken / "checkpoint.pt")
    out = tmp_path / "chains.nc"
    assert _infer(broken, out) == 2
    err = capsys.readouterr().err.strip()
    assert "--checkpoint" in err and "layers" in err and len(err.splitlines()) == 1, err
    assert not out.exists()
