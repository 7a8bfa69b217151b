"""``dlhmc hmc``: runs, reproducibility, one-line option errors, atomic output."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import dlhmc.commands.hmc as hmc_command
from dlhmc.cli import main
from dlhmc.io import read_chains

BASE = [
    "hmc",
    "--group",
    "U1",
    "--lattice",
    "4",
    "6",
    "--beta",
    "2.0",
    "--nlf",
    "5",
    "--eps",
    "0.15",
    "--chains",
    "4",
    "--trajectories",
    "12",
    "--therm",
    "3",
    "--device",
    "cpu",
    "--no-progress",
]


def run_cli(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exit_:
        return exit_.code


def assert_same_variables(a, b):
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_run_writes_chain_file(tmp_path, capsys):
    out = tmp_path / "sub" / "chains.nc"
    assert run_cli([*BASE, "--seed", "3", "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""
    ds = read_chains(out)
    assert dict(ds.sizes) == {"chain": 4, "traj": 12}
    names = {"plaq", "charge", "charge_real", "accept_prob", "accepted", "dH", "divergent"}
    assert set(ds.data_vars) == names
    assert ds["divergent"].dtype == np.int8 and not ds["divergent"].values.any()
    assert ds.attrs["group"] == "U1" and ds.attrs["sampler"] == "hmc"
    assert list(ds.attrs["lattice"]) == [4, 6]
    settings = (ds.attrs["nlf"], ds.attrs["eps"], ds.attrs["n_therm"], ds.attrs["seed"])
    assert settings == (5, 0.15, 3, 3)
    assert ds.attrs["beta"] == 2.0
    assert ds.attrs["wall_seconds"] > 0
    assert ds.attrs["traj_per_second"] == pytest.approx(15 / ds.attrs["wall_seconds"])
    charge = ds["charge"].values
    np.testing.assert_array_equal(charge, np.round(charge))
    assert ((ds["accept_prob"] >= 0) & (ds["accept_prob"] <= 1)).all()
    # A rejected trajectory repeats the previous configuration.
    rejected = ds["accepted"].values[:, 1:] == 0
    plaq = ds["plaq"].values
    np.testing.assert_array_equal(plaq[:, 1:][rejected], plaq[:, :-1][rejected])
    assert not list(out.parent.glob("*.tmp-*"))


def test_same_seed_same_chains_in_process_and_subprocess(tmp_path):
    first, second, other = tmp_path / "a.nc", tmp_path / "b.nc", tmp_path / "c.nc"
    assert run_cli([*BASE, "--seed", "7", "--out", str(first)]) == 0
    # Same thread count as this process: CPU reductions may split work by thread.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run(
        [sys.executable, "-m", "dlhmc.cli", *BASE, "--seed", "7", "--out", str(second)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert_same_variables(read_chains(first), read_chains(second))
    assert run_cli([*BASE, "--seed", "8", "--out", str(other)]) == 0
    assert not np.array_equal(read_chains(first)["plaq"].values, read_chains(other)["plaq"].values)


def test_cold_start_and_single_precision(tmp_path):
    out = tmp_path / "c.nc"
    args = [*BASE, "--therm", "0", "--start", "cold", "--precision", "single", "--out", str(out)]
    assert run_cli(args) == 0
    ds = read_chains(out)
    assert ds.attrs["precision"] == "single" and ds.attrs["start"] == "cold"
    assert ds["plaq"].values[:, 0].min() > 0.5  # one trajectory away from unit links


BAD = [
    (["--chains", "0"], "--chains"),
    (["--chains", "-3"], "--chains"),
    (["--trajectories", "0"], "--trajectories"),
    (["--therm", "-1"], "--therm"),
    (["--nlf", "0"], "--nlf"),
    (["--eps", "0"], "--eps"),
    (["--eps", "-0.1"], "--eps"),
    (["--eps", "nan"], "--eps"),
    (["--beta", "-1"], "--beta"),
    (["--lattice", "8"], "--lattice"),
    (["--lattice", "4", "4", "4", "4"], "--lattice"),
    (["--lattice", "1", "8"], "--lattice"),
    (["--lattice", "0", "8"], "--lattice"),
    (["--group", "SU2"], "--group"),
    (["--precision", "half"], "--precision"),
    (["--start", "warm"], "--start"),
    (["--device", "tpu"], "--device"),
    (["--seed", str(2**64)], "--seed"),
    (["--integrator", "verlet"], "--integrator"),
    (["--instanton-hits", "-1"], "--instanton-hits"),
    (["--instanton-hits", "1.5"], "--instanton-hits"),
    (["--instanton-hits", "1", "--instanton-size", "5"], "--instanton-size"),
    (["--instanton-hits", "1", "--instanton-size", "1"], "--instanton-size"),
    (["--instanton-size", "-2"], "--instanton-size"),
    (["--group", "SU3", "--lattice", "2", "2", "2", "2", "--instanton-hits", "1"],
     "--instanton-hits"),
]


@pytest.mark.parametrize("extra,option", BAD)
def test_bad_options_give_one_line_errors(tmp_path, capsys, extra, option):
    out = tmp_path / "chains.nc"
    assert run_cli([*BASE, "--seed", "1", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and option in err, err
    assert not out.exists()


def test_winding_hmc_records_its_hits_and_no_measured_cost(tmp_path):
    """``--instanton-hits`` makes the run winding HMC: the attributes tell it from plain HMC and
    every trajectory records its accepted hits; no measured hit cost is stored (the analysis
    counts hits by a fixed rule, and their time is in ``traj_per_second``)."""
    out = tmp_path / "w.nc"
    hits = ["--instanton-hits", "3", "--instanton-size", "2", "--beta", "1.0"]
    assert run_cli([*BASE, *hits, "--out", str(out)]) == 0
    ds = read_chains(out)
    assert ds.attrs["sampler"] == "hmc"
    assert (ds.attrs["instanton_hits"], ds.attrs["instanton_size"]) == (3, 2)
    accepted = ds["instanton_accepted"].values
    assert accepted.shape == (4, 12) and ((accepted >= 0) & (accepted <= 3)).all()
    assert accepted.sum() > 0  # at beta 1 a 2x2 flux of pi/2 per plaquette is often accepted
    assert "hit_cost_lf" not in ds.attrs
    plain = tmp_path / "p.nc"
    assert run_cli([*BASE, "--out", str(plain)]) == 0
    ds = read_chains(plain)
    assert ds.attrs["instanton_hits"] == 0 and "instanton_accepted" not in ds.data_vars
    assert "hit_cost_lf" not in ds.attrs


def test_omelyan_integrator_is_recorded_with_its_force_evaluations(tmp_path):
    out = tmp_path / "o.nc"
    assert run_cli([*BASE, "--integrator", "omelyan", "--out", str(out)]) == 0
    ds = read_chains(out)
    assert ds.attrs["integrator"] == "omelyan" and ds.attrs["force_evaluations"] == 2 * 5
    assert ds["accept_prob"].values.mean() > 0.5


def test_bad_output_paths(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for out in (tmp_path, blocker / "chains.nc"):
        assert run_cli([*BASE, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--out" in err, err
    assert sorted(os.listdir(tmp_path)) == ["file"]


needs_su3 = pytest.mark.skipif(
    importlib.util.find_spec("dlhmc.lattice.su3") is None, reason="SU(3) theory not installed"
)


@needs_su3
def test_su3_run(tmp_path):
    """The command is group-agnostic: SU(3) writes the same file, with its own observables."""
    out = tmp_path / "su3.nc"
    args = [*BASE, "--group", "SU3", "--lattice", "2", "2", "2", "2", "--eps", "0.05"]
    assert run_cli([*args, "--trajectories", "2", "--therm", "0", "--out", str(out)]) == 0
    ds = read_chains(out)
    assert ds.attrs["group"] == "SU3" and list(ds.attrs["lattice"]) == [2, 2, 2, 2]
    assert {"plaq", "charge", "accept_prob", "accepted", "dH"} <= set(ds.data_vars)
    assert dict(ds.sizes) == {"chain": 4, "traj": 2}


@needs_su3
def test_su3_needs_four_extents(tmp_path, capsys):
    out = tmp_path / "chains.nc"
    args = [*BASE, "--group", "SU3", "--lattice", "4", "4", "--out", str(out)]
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--lattice" in err
    assert not out.exists()


def test_failed_run_leaves_no_file(tmp_path, monkeypatch):
    """A run that dies half way must not leave anything that looks like a result."""
    out = tmp_path / "chains.nc"
    calls = {"n": 0}
    step = hmc_command.HMC.step

    def failing_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("node lost")
        return step(*args, **kwargs)

    monkeypatch.setattr(hmc_command.HMC, "step", failing_step)
    with pytest.raises(RuntimeError, match="node lost"):
        main([*BASE, "--seed", "1", "--out", str(out)])
    assert os.listdir(tmp_path) == []


@needs_su3
def test_integrator_auto_is_the_groups(tmp_path):
    """`--integrator auto` (the default) is the leapfrog for U(1) and Omelyan for SU(3), whose
    cost per unit of trajectory length it lowers (docs/results.md)."""
    u1, su3 = tmp_path / "u1.nc", tmp_path / "su3.nc"
    assert run_cli([*BASE, "--out", str(u1)]) == 0
    args = [*BASE, "--group", "SU3", "--lattice", "2", "2", "2", "2", "--eps", "0.05"]
    assert run_cli([*args, "--trajectories", "2", "--therm", "0", "--out", str(su3)]) == 0
    assert read_chains(u1).attrs["integrator"] == "leapfrog"
    assert read_chains(su3).attrs["integrator"] == "omelyan"
    assert read_chains(su3).attrs["force_evaluations"] == 2 * 5
