"""``local_conv``, the kind of the U(1) local networks' 3x3 convolutions, as a setting of ``dlhmc
train``: a separable model trains, samples and resumes bit for bit like a full one; models stored
before the setting existed (checkpoint format 3) load as ``full``, unchanged; settings that would
be ignored (dense, flows, SU(3)) or a warm start across kinds are refused on one line.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_helpers import TINY, assert_identical, crash_before, load, without_timing

from dlhmc import checkpoint as ckpt
from dlhmc.cli import main
from dlhmc.io import read_chains
from dlhmc.training import trainer as trainer_mod

LOCAL = ["--network", "local", "--local-period", "2"]
SEPARABLE = [*LOCAL, "--local-conv", "separable"]
INFER = ["--chains", "2", "--trajectories", "4", "--therm", "0", "--seed", "3", "--no-progress",
         "--layer-samples", "1"]  # fmt: skip


def _run(*argv) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:  # argparse errors
        return exc.code


def _one_line_naming(capsys, *words) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("local_conv")
    for name, options in (("full", LOCAL), ("separable", SEPARABLE)):
        assert main(["train", *TINY, *options, "--steps", "2", "--out", str(root / name)]) == 0
    return root


def test_a_separable_model_trains_and_samples(runs, tmp_path):
    state = load(runs / "separable")
    assert state["l2hmc"]["local_conv"] == state["config"]["local_conv"] == "separable"
    assert any(".depthwise." in key for key in state["model"])
    assert load(runs / "full")["l2hmc"]["local_conv"] == "full"
    out = tmp_path / "chains.nc"
    assert main(["infer", "--checkpoint", str(runs / "separable"), "--out", str(out), *INFER]) == 0
    chains = read_chains(out)
    assert chains.attrs["network"] == "local" and chains.attrs["local_conv"] == "separable"
    assert chains.plaq.shape == (2, 4) and np.isfinite(chains.plaq.values).all()


def test_a_separable_run_resumes_bit_identically(tmp_path, monkeypatch):
    steps, every = 4, 2
    run, reference = tmp_path / "run", tmp_path / "reference"
    args = ["train", *TINY, *SEPARABLE, "--steps", str(steps), "--checkpoint-every", str(every)]
    monkeypatch.setattr(trainer_mod.Trainer, "train_step", crash_before(3))
    assert main([*args, "--out", str(run)]) == 130
    assert load(run)["step"] == every
    monkeypatch.undo()
    assert main([*args, "--out", str(run)]) == 0
    assert main([*args, "--out", str(reference)]) == 0
    assert_identical(without_timing(load(run)), without_timing(load(reference)))


def test_a_format3_checkpoint_loads_as_full_and_samples_as_before(runs, tmp_path):
    """Format 3 predates ``local_conv``: its local models are full ones (the migration)."""
    state = torch.load(ckpt.checkpoint_path(runs / "full"), weights_only=True)
    del state["l2hmc"]["local_conv"], state["config"]["local_conv"]
    old = tmp_path / "old"
    old.mkdir()
    ckpt.save(ckpt.checkpoint_path(old), {**state, "format": 3})
    assert torch.load(ckpt.checkpoint_path(old), weights_only=True)["format"] == 3
    migrated, current = load(old), load(runs / "full")
    assert migrated["format"] == ckpt.FORMAT and migrated["l2hmc"] == current["l2hmc"]
    assert_identical(migrated["model"], current["model"])
    for run, name in ((old, "old.nc"), (runs / "full", "new.nc")):
        assert main(["infer", "--checkpoint", str(run), "--out", str(tmp_path / name), *INFER]) == 0
    a, b = read_chains(tmp_path / "old.nc"), read_chains(tmp_path / "new.nc")
    for var in ("plaq", "dH", "accept_prob"):
        assert (a[var].values == b[var].values).all(), var


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ([], ("--local-conv", "network local", "network dense")),
        (["--sampler", "flow", "--flow-layers", "1", "--nlf", "4", "--hidden", "32", "32"],
         ("--local-conv", "sampler l2hmc", "sampler flow")),
        (["--group", "SU3", "--lattice", "2", "2", "2", "2", "--network", "local"],
         ("--local-conv", "U1 only")),
        (["--local-conv", "depthwise"], ("--local-conv", "invalid choice")),
    ],
    ids=["dense", "flow", "su3", "unknown"],
)
def test_local_conv_where_it_would_be_ignored_is_refused(tmp_path, capsys, options, words):
    run = tmp_path / "run"
    argv = ["train", *TINY, "--steps", "1", "--local-conv", "separable", *options]
    assert _run(*argv, "--out", str(run)) == 2
    _one_line_naming(capsys, *words)
    assert not run.exists()


def test_a_warm_start_keeps_the_kind(runs, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", *TINY, *SEPARABLE, "--steps", "1", "--init", str(runs / "full")]
    assert _run(*argv, "--out", str(run)) == 2
    _one_line_naming(capsys, "--init", "--local-conv full", "separable")
    assert not (run / "checkpoint.pt").exists()
