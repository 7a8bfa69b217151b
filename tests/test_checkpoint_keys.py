"""Damaged checkpoints name the key and what was expected (issue 21 D); format 1 still loads."""

from __future__ import annotations

import pytest
import torch
from train_helpers import TINY

from dlhmc import checkpoint as ckpt
from dlhmc.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("keys") / "run"
    assert main(["train", *TINY, "--steps", "2", "--out", str(run)]) == 0
    return run


def damaged(run, tmp_path, change) -> str:
    """A copy of ``run`` whose checkpoint ``change`` edits; returns the copy's directory."""
    state = torch.load(ckpt.checkpoint_path(run), weights_only=True)
    change(state)
    copy = tmp_path / "damaged"
    copy.mkdir()
    torch.save(state, ckpt.checkpoint_path(copy))
    return str(copy)


def infer_error(run_dir, tmp_path, capsys) -> str:
    code = main(["infer", "--checkpoint", run_dir, "--chains", "2", "--trajectories", "10",
                 "--therm", "0", "--out", str(tmp_path / "c.nc")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert not (tmp_path / "c.nc").exists()
    return err


def first_key(state) -> str:
    return next(k for k in state["model"] if k.startswith("layers."))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: s["model"].pop(first_key(s)), ": missing"),
        (lambda s: s["model"].update({"layers.extra": torch.zeros(2)}),
         "model.layers.extra: not a parameter of this network"),
        (lambda s: s["model"].update({first_key(s): torch.zeros(3, 1)}), "expected shape"),
        (lambda s: s["l2hmc"].update({"hidden": ["abc"]}),
         "l2hmc.hidden: expected a list of integers, got ['abc']"),
        (lambda s: s["l2hmc"].pop("network"), "l2hmc.network: missing"),
        (lambda s: s["l2hmc"].update({"nlf": 2.5}), "l2hmc.nlf: expected an integer, got 2.5"),
    ],
)
def test_a_damaged_checkpoint_names_the_key(run, tmp_path, capsys, change, words):
    err = infer_error(damaged(run, tmp_path, change), tmp_path, capsys)
    assert err.startswith("dlhmc infer: error: --checkpoint: ") and words in err, err
    assert "checkpoint.pt" in err


def test_a_format1_checkpoint_still_samples(run, tmp_path):
    """Format 1: the dense weights at the top of the state dict, no ``network`` key."""

    def to_format1(state):
        state["format"] = 1
        state["model"] = {k.removeprefix("layers."): v for k, v in state["model"].items()}
        del state["l2hmc"]["network"], state["l2hmc"]["local_period"]

    old = damaged(run, tmp_path, to_format1)
    args = ["infer", "--chains", "2", "--trajectories", "10", "--therm", "0", "--seed", "3"]
    assert main([*args, "--checkpoint", old, "--out", str(tmp_path / "old.nc")]) == 0
    assert main([*args, "--checkpoint", str(run), "--out", str(tmp_path / "new.nc")]) == 0
    import xarray as xr

    a, b = xr.open_dataset(tmp_path / "old.nc"), xr.open_dataset(tmp_path / "new.nc")
    assert (a.plaq.values == b.plaq.values).all() and (a.dH.values == b.dH.values).all()
