"""Issue 12 at the command line: each reproduction gives one line on stderr and a non-zero exit.

Usage errors (bad device, unwritable output, absurd sizes, damaged inputs) exit 2 before any
work; numerical faults found during the work (every trajectory divergent, every training step
skipped, NaN results of the toy) exit 1 with a line naming the option at fault.  The library
parts have their tests in test_hardening_lib.py and test_hardening_limits.py.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from train_helpers import TINY

from dlhmc import checkpoint as ckpt
from dlhmc.cli import main
from dlhmc.io import chain_dataset, read_chains, write_chains

HMC = ["hmc", "--lattice", "4", "4", "--beta", "2", "--trajectories", "5", "--therm", "0",
       "--chains", "2", "--device", "cpu", "--no-progress"]  # fmt: skip
TOY = ["toy-gmm", "--steps", "2", "--batch", "4", "--chains", "2", "--trajectories", "3",
       "--hidden", "4"]  # fmt: skip


def run(args, capsys) -> tuple[int, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip()
    return code, err


def one_line(err: str, *words: str) -> None:
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", *TINY, "--steps", "2", "--out", str(run_dir)]) == 0
    return run_dir


def infer_args(run_dir, out) -> list:
    return ["infer", "--checkpoint", run_dir, "--chains", "2", "--trajectories", "10",
            "--therm", "0", "--out", out, "--no-progress", "--device", "cpu"]  # fmt: skip


# --- case 1: devices ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["meta", "mps"])
def test_unknown_devices(tmp_path, trained, capsys, device):
    commands = [
        [*HMC, "--out", tmp_path / "h.nc"],
        ["train", *TINY, "--steps", "1", "--out", tmp_path / "t"],
        infer_args(trained, tmp_path / "i.nc"),
        [*TOY, "--out", tmp_path / "g"],
    ]
    for args in commands:
        code, err = run([*args, "--device", device], capsys)
        assert code == 2
        one_line(err, "--device", repr(device))
    assert list(tmp_path.iterdir()) == []


# --- case 2: unwritable outputs (a parent that is a file: refused even for root) ---------------


def test_unwritable_outputs_refused_before_work(tmp_path, trained, capsys):
    plain = tmp_path / "file"
    plain.write_text("x")
    chain = tmp_path / "c.nc"
    assert main([*HMC, "--trajectories", "10", "--out", str(chain)]) == 0
    table = tmp_path / "t.csv"
    assert main(["analyze", str(chain), "--out", str(table)]) == 0
    capsys.readouterr()
    cases = [
        ([*HMC, "--out", plain / "o.nc"], "--out", "cannot write"),
        (infer_args(trained, plain / "o.nc"), "--out", "cannot write"),
        (["train", *TINY, "--steps", "1", "--out", plain / "run"], "--out", "cannot write"),
        (["analyze", chain, "--out", plain / "t.csv"], "--out", "does not exist"),
        (["report", "--table", table, "--chains", chain, "--experiment", "default",
          "--out-dir", plain / "report"], "--out-dir", "cannot write"),
        ([*TOY, "--out", plain / "toy"], "--out", "cannot write"),
    ]  # fmt: skip
    for args, key, words in cases:
        code, err = run(args, capsys)
        assert code == 2, args
        one_line(err, key, words)


def test_locked_directory_refused_before_sampling(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root")
        code, err = run([*HMC, "--trajectories", "100000", "--out", locked / "o.nc"], capsys)
        assert code == 2
        one_line(err, "--out", "cannot write")
    finally:
        locked.chmod(0o700)


# --- case 3: sizes that cannot fit ----------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [["--chains", "1000000000000"], ["--chains", "99999999999999999999999"],
     ["--lattice", "1000000", "1000000"]],
)  # fmt: skip
def test_hmc_too_large(tmp_path, capsys, change):
    code, err = run([*HMC, *change, "--out", tmp_path / "o.nc"], capsys)
    assert code == 2
    one_line(err, "needed", "GiB, available")
    assert not (tmp_path / "o.nc").exists()


def test_train_and_infer_too_large(tmp_path, trained, capsys):
    code, err = run(["train", *TINY, "--batch", "1000000000000", "--out", tmp_path / "t"], capsys)
    assert code == 2
    one_line(err, "--batch", "needed", "GiB")
    assert not (tmp_path / "t").exists()
    # Local networks build their masks on the host for the lattice: checked before.
    huge = ["--network", "local", "--lattice", "1000000", "1000000", "--out", tmp_path / "t"]
    code, err = run(["train", *TINY, *huge], capsys)
    assert code == 2
    one_line(err, "--lattice", "needed", "GiB")
    code, err = run([*infer_args(trained, tmp_path / "i.nc"), "--chains", "10**12"], capsys)
    assert code == 2 and "--chains" in err
    code, err = run([*infer_args(trained, tmp_path / "i.nc"), "--chains", "1000000000000"],
                    capsys)
    assert code == 2
    one_line(err, "needed", "GiB")


# --- cases 4, 5: every trajectory divergent -------------------------------------------------------


@pytest.mark.parametrize("change", [["--eps", "1e300"], ["--beta", "1.7e308"]])
def test_all_divergent_hmc_exits_1_naming_the_step_size(tmp_path, capsys, change):
    out = tmp_path / "e.nc"
    code, err = run([*HMC, *change, "--out", out], capsys)
    assert code == 1
    one_line(err, "all 10 trajectories diverged", "--eps")
    data = read_chains(out)  # written: it is the evidence
    assert data["divergent"].values.all()


def test_all_divergent_infer_exits_1(tmp_path, trained, capsys):
    code, err = run([*infer_args(trained, tmp_path / "i.nc"), "--beta", "1e300"], capsys)
    assert code == 1
    one_line(err, "all 20 trajectories diverged", "step sizes", "--beta 1e+300")


def test_analysis_of_a_divergent_run_is_bounded(tmp_path, capsys):
    """Case 5: analyze and report on a file at beta 1e300 finish (no exact value to allocate)."""
    chain = tmp_path / "e.nc"
    assert run([*HMC, "--beta", "1e300", "--trajectories", "10", "--out", chain], capsys)[0] == 1
    table = tmp_path / "t.csv"
    # Every trajectory diverged: analyze writes the table as evidence and exits 1 (issue 21 L).
    assert run(["analyze", chain, "--out", table], capsys)[0] == 1 and table.is_file()
    # ... and so does report: written, exit 1, the file named (issue 21, leftover of L).
    code, err = run(["report", "--table", table, "--chains", chain, "--experiment", "default",
                     "--out-dir", tmp_path / "report"], capsys)  # fmt: skip
    assert code == 1
    assert err.splitlines()[-1].startswith(f"dlhmc report: error: {chain}: every trajectory")
    assert (tmp_path / "report" / "report.html").is_file()
    # Its beta keys the tables as it is: rounding to 10 decimals made it inf (issue 21 L).
    assert set(pd.read_csv(tmp_path / "report" / "comparison.csv").beta) == {1e300}


def test_report_refuses_a_table_mean_out_of_range(tmp_path, capsys):
    """Issue 21 B/C through an edited table: a plaquette of 1.9e116 is refused on one line
    naming the table, the row and the range; nothing is written."""
    chain = tmp_path / "c.nc"
    assert run([*HMC, "--trajectories", "10", "--out", chain], capsys)[0] == 0
    table = tmp_path / "t.csv"
    assert run(["analyze", chain, "--out", table], capsys)[0] == 0
    rows = table.read_text().splitlines()
    header = rows[0].split(",")
    mean, observable = header.index("mean"), header.index("observable")
    for i, line in enumerate(rows[1:], 1):
        cells = line.split(",")
        if cells[observable] == "plaq":
            cells[mean] = "1.9e116"
            rows[i] = ",".join(cells)
    table.write_text("\n".join(rows) + "\n")
    code, err = run(["report", "--table", table, "--chains", chain, "--experiment", "default",
                     "--out-dir", tmp_path / "report"], capsys)  # fmt: skip
    assert code == 2
    one_line(err, f"--table: {table}: plaq of hmc at beta 2", "mean 1.9e+116",
             "physical range [-1, 1]")  # fmt: skip
    assert not (tmp_path / "report").exists()


# --- case 6: damaged or ill-typed chain files ----------------------------------------------------


def _chain_file(path: Path, **attrs) -> Path:
    rng = np.random.default_rng(0)
    per_traj = {name: rng.random((2, 20)) for name in ("plaq", "accept_prob", "dH")}
    per_traj["charge"] = rng.integers(-2, 3, (2, 20)).astype(float)  # Q_Z is an integer
    per_traj["accepted"] = rng.random((2, 20)) < 0.5
    base = {"group": "U1", "lattice": (4, 4), "beta": 2.0, "sampler": "hmc", "nlf": 10,
            "eps": 0.1, "n_therm": 0, "seed": 0, "wall_seconds": 1.0, "traj_per_second": 1.0}
    return write_chains(path, chain_dataset(per_traj, {**base, **attrs}))


@pytest.mark.parametrize(
    ("attrs", "key"),
    [({"lattice": "8x8"}, "lattice"), ({"nlf": "abc"}, "nlf"),
     ({"traj_per_second": 0.0}, "traj_per_second"), (None, "not a NetCDF chain file")],
)  # fmt: skip
def test_analyze_and_report_on_bad_chain_files(tmp_path, capsys, attrs, key):
    path = _chain_file(tmp_path / "c.nc", **(attrs or {}))
    if attrs is None:
        data = bytearray(path.read_bytes())
        data[:8] = bytes(b ^ 0xFF for b in data[:8])
        path.write_bytes(bytes(data))
    code, err = run(["analyze", path, "--out", tmp_path / "t.csv"], capsys)
    assert code == 2
    one_line(err, str(path), key)
    good = _chain_file(tmp_path / "good.nc")
    assert main(["analyze", str(good), "--out", str(tmp_path / "t.csv")]) == 0
    capsys.readouterr()
    code, err = run(["report", "--table", tmp_path / "t.csv", "--chains", path, "--experiment",
                     "default", "--out-dir", tmp_path / "r"], capsys)  # fmt: skip
    assert code == 2
    one_line(err, "--chains", key)


# --- cases 8, 9: checkpoints validated before anything is written ------------------------------


def _broken(trained: Path, target: Path, change) -> Path:
    state = ckpt.load(ckpt.checkpoint_path(trained))
    change(state)
    target.mkdir(parents=True)
    ckpt.save(ckpt.checkpoint_path(target), {k: v for k, v in state.items() if k != "format"})
    return target


def _nan_weight(state):
    name = next(n for n, t in state["model"].items() if t.is_floating_point())
    state["model"][name] = torch.full_like(state["model"][name], math.nan)


@pytest.mark.parametrize(
    ("change", "key"),
    [(_nan_weight, "model"), (lambda s: s.pop("model"), "model"),
     (lambda s: s.pop("world_size"), "world_size"), (lambda s: s.pop("config"), "config"),
     (lambda s: s["rng"].__setitem__("torch", s["rng"]["torch"][:, :64].clone()), "rng.torch")],
)  # fmt: skip
def test_init_from_bad_checkpoint_writes_nothing(tmp_path, trained, capsys, change, key):
    source = _broken(trained, tmp_path / "bad", change)
    new = tmp_path / "new"
    code, err = run(["train", *TINY, "--steps", "2", "--init", source, "--out", new], capsys)
    assert code == 2
    one_line(err, "--init", str(ckpt.checkpoint_path(source)), key)
    assert not new.exists()


def test_resume_from_nan_checkpoint_leaves_metrics(tmp_path, trained, capsys):
    run_dir = _broken(trained, tmp_path / "run", _nan_weight)
    metrics = run_dir / "metrics.csv"
    metrics.write_text((trained / "metrics.csv").read_text() + "3,half a row")
    before = metrics.read_text()
    code, err = run(["train", *TINY, "--steps", "4", "--out", run_dir], capsys)
    assert code == 2
    one_line(err, "--out", "model", "non-finite")
    assert metrics.read_text() == before
    assert not (run_dir / "config.yaml").exists()


def test_infer_with_incomplete_checkpoint(tmp_path, trained, capsys):
    source = _broken(trained, tmp_path / "bad", lambda s: s.pop("l2hmc"))
    code, err = run(infer_args(source, tmp_path / "o.nc"), capsys)
    assert code == 2
    one_line(err, "--checkpoint", "l2hmc")
    assert not (tmp_path / "o.nc").exists()


# --- case 10: ill-typed config values -------------------------------------------------------------


@pytest.mark.parametrize(("line", "key"), [("winding: 1.5", "--winding"),
                                           ("local_period: 1.5", "--local-period"),
                                           ("steps: 400.0", "--steps"), ("lr: .nan", "--lr")])
def test_train_config_values(tmp_path, capsys, line, key):
    config = tmp_path / "f.yaml"
    config.write_text(line + "\n")
    code, err = run(["train", *TINY, "--config", config, "--out", tmp_path / "run"], capsys)
    assert code == 2
    one_line(err, key, str(config))
    assert not (tmp_path / "run").exists()


# --- case 11: training whose every step is skipped ------------------------------------------------


def test_every_step_rolled_back_exits_1(tmp_path, capsys):
    from dlhmc import distributed
    from dlhmc.settings import RunOptions, TrainSettings
    from dlhmc.training.trainer import build

    run_dir = tmp_path / "run"
    code, err = run(["train", *TINY, "--lr", "1e3", "--steps", "3", "--out", run_dir], capsys)
    assert code == 1
    assert err.splitlines()[-1].startswith("dlhmc train: error: all 3 steps were skipped")
    assert "--lr (1000)" in err and "Traceback" not in err
    rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    assert [row.split(",")[10] for row in rows] == ["1", "1", "1"]
    # Parameters and Adam's state were restored: the model is the untrained one, bit for bit.
    state = ckpt.load_valid(ckpt.checkpoint_path(run_dir))
    assert state["optimizer"]["state"] == {}
    settings = TrainSettings.from_dict(state["config"])
    ctx = distributed.DistContext(0, 1, 0, torch.device("cpu"), None, True)
    fresh = build(settings, RunOptions(out=run_dir), ctx).dynamics.state_dict()
    for name, value in fresh.items():
        assert torch.equal(state["model"][name], value), name
    # ... so inference with it samples finite values.
    assert run(infer_args(run_dir, tmp_path / "i.nc"), capsys)[0] == 0
    assert np.isfinite(read_chains(tmp_path / "i.nc")["plaq"].values).all()


# --- case 15: stale temporaries of a killed hmc ---------------------------------------------------


def test_hmc_removes_stale_temporaries(tmp_path, capsys):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out.nc"
    stale = tmp_path / f"out.nc.tmp-{dead.pid}"
    stale.write_text("half written")
    assert run([*HMC, "--out", out], capsys)[0] == 0
    assert out.exists() and not stale.exists()


# --- case 16: toy-gmm -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code", "key"),
    [(["--reciprocal-scale", "nan"], 2, "--reciprocal-scale"),
     (["--reciprocal-scale", "inf"], 2, "--reciprocal-scale"),
     (["--seed", "99999999999999999999999"], 2, "--seed"),
     (["--lr", "1e3"], 1, "--lr 1000"),
     (["--sigma", "1e-300"], 2, "--sigma"),
     (["--eps-init", "1e300"], 1, "non-finite")],
)  # fmt: skip
def test_toy_gmm_bad_values(tmp_path, capsys, change, code, key):
    out = tmp_path / "g"
    got, err = run([*TOY, "--out", out, *change], capsys)
    assert got == code
    one_line(err, key)
    assert not (out / "mode_fractions.json").exists()
