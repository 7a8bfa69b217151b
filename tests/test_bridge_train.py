"""``dlhmc train --sampler bridge``: a flow from the ensemble of one coupling to another.

The bridge starts exactly at the identity (plain reweighting), training raises the effective
sample size of held-out configurations above the identity's, a killed run resumes bit for bit,
the trained bridge loads (:func:`dlhmc.flows.store.load_bridge`) with the right ``log|J|``, and
bad input is refused in one line before anything is written.  The ensembles are tiny HMC runs
made once for the module."""

from __future__ import annotations

import contextlib
import io

import pandas as pd
import pytest
import torch
from flow_helpers import autograd_log_jacobian
from train_helpers import (
    assert_identical,
    assert_two_ranks_share_the_model,
    crash_before,
    interrupted,
    load,
    without_timing,
)

from dlhmc import checkpoint as ckpt
from dlhmc.cli import main
from dlhmc.flows.store import is_flow_run, load_bridge, load_flow, run_sampler
from dlhmc.settings import RunOptions, TrainSettings
from dlhmc.training import bridge_trainer
from dlhmc.training.bridge_trainer import METRIC_COLUMNS, BridgeTrainer

HMC = ["hmc", "--group", "U1", "--lattice", "6", "6", "--nlf", "5", "--eps", "0.2", "--therm",
       "20", "--seed", "1", "--device", "cpu", "--no-progress"]  # fmt: skip


def run_main(argv: list[str]) -> tuple[int, str]:
    """``main``'s status (argparse's ``SystemExit`` too) and its stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, err.getvalue().strip()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Ensembles on 6x6: 8 chains x 50 configurations at beta 2, a file without configurations
    and one of a single chain."""
    root = tmp_path_factory.mktemp("bridge")
    files = {"b2": root / "b2.nc", "plain": root / "plain.nc", "one": root / "one.nc"}
    runs = {
        "b2": ["--beta", "2", "--chains", "8", "--trajectories", "100", "--save-every", "2"],
        "plain": ["--beta", "2", "--chains", "2", "--trajectories", "10"],
        "one": ["--beta", "2", "--chains", "1", "--trajectories", "10", "--save-every", "5"],
    }
    for name, args in runs.items():
        assert main([*HMC, *args, "--out", str(files[name])]) == 0
    return {**files, "root": root}


def bridge_args(data, *extra: str) -> list[str]:
    return ["train", "--sampler", "bridge", "--group", "U1", "--lattice", "6", "6", "--beta",
            "2.5", "--beta-from", "2", "--data", str(data["b2"]), "--flow-layers", "4",
            "--hidden", "4", "--local-period", "2", "--batch", "32", "--lr", "1e-2", "--seed",
            "3", "--no-progress", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def trained(data):
    run = data["root"] / "trained"
    assert main([*bridge_args(data, "--steps", "30", "--checkpoint-every", "10"),
                 "--out", str(run)]) == 0
    return run


def test_an_untrained_bridge_is_exactly_the_identity(data):
    """Zeroed heads: every circle map is ``y -> y`` bit for bit, so step 0 is plain
    reweighting (the same weights as ``f`` = identity)."""
    settings = TrainSettings(group="U1", lattice=(6, 6), beta=2.5, sampler="bridge",
                             beta_from=2.0, data=str(data["b2"]), flow_layers=4, hidden=(4,),
                             local_period=2, batch=32)
    trainer = bridge_trainer.build(settings, RunOptions(out="unused"), _ctx())
    u = trainer.data.train[:64]
    with torch.no_grad():
        x, logdet = trainer.flow(u)
        _, _, _, log_w = trainer.log_weights(u)
        _, _, _, log_w_identity = trainer.log_weights(u, identity=True)
    assert torch.equal(x, u) and torch.equal(logdet, torch.zeros_like(logdet))
    assert torch.equal(log_w, log_w_identity)
    assert trainer.data.train.shape == (6 * 50, 2, 6, 6)  # the last 2 of 8 chains held out
    assert trainer.data.heldout.shape == (2 * 50, 2, 6, 6)


def test_a_bridges_outputs_scale_with_its_step(data):
    """The networks of a bridge over ``d`` give the displacement per unit of coupling, scaled
    by ``d / 0.5`` (dlhmc.flows.model.bridge_output_scale); a flow from the prior is unscaled."""
    for beta, scale in ((2.0625, 0.125), (2.5, 1.0), (1.0, 2.0)):
        settings = TrainSettings(group="U1", lattice=(6, 6), beta=beta, sampler="bridge",
                                 beta_from=2.0, data=str(data["b2"]), flow_layers=4,
                                 hidden=(4,), local_period=2, batch=32)
        trainer = bridge_trainer.build(settings, RunOptions(out="unused"), _ctx())
        assert trainer.flow.config.output_scale == scale
        assert trainer.sampler_state([])["flow"]["output_scale"] == scale


def _ctx():
    from dlhmc.distributed import DistContext

    return DistContext(0, 1, 0, torch.device("cpu"), None, True)


def test_training_raises_the_held_out_ess_above_plain_reweighting(trained):
    metrics = pd.read_csv(trained / "metrics.csv")
    assert tuple(metrics.columns) == METRIC_COLUMNS
    assert (metrics["skipped"] == 0).all() and (metrics["beta"] == 2.5).all()
    assert metrics["heldout_ess"].notna().tolist() == [s % 10 == 0 for s in range(1, 31)]
    state = load(trained)
    assert state["sampler"] == "bridge" and "chains" not in state
    assert state["config"]["beta_from"] == 2.0 and state["config"]["data"].endswith("b2.nc")
    bridge = state["bridge"]
    assert bridge["heldout_ess"] == metrics["heldout_ess"].iloc[-1]
    assert bridge["heldout_configurations"] == 100 and bridge["train_configurations"] == 300
    # Measured: identity 0.44, trained 0.68 (100 held-out configurations).
    assert bridge["heldout_ess"] > bridge["heldout_ess_identity"] + 0.1


def test_the_trained_bridge_loads_with_its_log_jacobian(trained, data):
    bridge, state = load_bridge(trained, "cpu")
    assert bridge.theory.beta == 2.5 and not bridge.training
    assert state["flow"]["output_scale"] == 1.0 == bridge.config.output_scale
    assert run_sampler(trained) == "bridge" and not is_flow_run(trained)
    u = bridge.theory.hot_start(1, torch.Generator().manual_seed(0)).double()
    bridge.double()
    x, logdet = bridge(u)
    assert not torch.equal(x, u)  # trained: the check below is not void
    assert logdet.item() == pytest.approx(autograd_log_jacobian(bridge, u[0]), abs=1e-9)
    bigger, _ = load_bridge(trained, "cpu", lattice=(8, 10))
    assert bigger.theory.lattice == (8, 10)
    with pytest.raises(ckpt.CheckpointError, match="sampler: expected flow, got bridge"):
        load_flow(trained, "cpu")


def test_a_bridge_is_not_a_sampler_for_infer(trained, data):
    out = data["root"] / "chains.nc"
    code, err = run_main(["infer", "--checkpoint", str(trained), "--out", str(out)])
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "holds a bridge flow between two couplings, not a sampler" in err
    assert "dlhmc derivative or dlhmc trex" in err and not out.exists()


def test_load_bridge_refuses_a_flow_run(tmp_path):
    run = tmp_path / "flow"
    assert main(["train", "--sampler", "flow", "--group", "U1", "--lattice", "4", "4", "--beta",
                 "1", "--flow-layers", "2", "--hidden", "4", "--batch", "4", "--steps", "1",
                 "--no-progress", "--out", str(run)]) == 0
    with pytest.raises(ckpt.CheckpointError) as err:
        load_bridge(run, "cpu")
    assert str(err.value) == f"{run / 'checkpoint.pt'}: sampler: expected bridge, got flow"


def test_interrupted_bridge_training_resumes_bit_identically(data, tmp_path, monkeypatch):
    run, reference = tmp_path / "run", tmp_path / "reference"
    args = [*bridge_args(data, "--flow-layers", "2", "--batch", "8", "--warmup", "2"),
            "--steps", "7", "--checkpoint-every", "3"]  # fmt: skip
    monkeypatch.setattr(BridgeTrainer, "train_step", crash_before(6, BridgeTrainer))
    interrupted([*args, "--out", str(run)])
    assert load(run)["step"] == 3
    monkeypatch.undo()
    assert main([*args, "--out", str(run)]) == 0
    assert main([*args, "--out", str(reference)]) == 0
    assert_identical(without_timing(load(run)), without_timing(load(reference)))
    a, b = pd.read_csv(run / "metrics.csv"), pd.read_csv(reference / "metrics.csv")
    assert a["step"].tolist() == list(range(1, 8))
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"--data": "missing.nc"}, "--data: no file "),
        ({"--data": "text.nc"}, "as a chain file"),
        ({"--data": "plain"}, "holds no configurations (variable 'links'); write it with dlhmc "
                              "hmc --save-every K"),
        ({"--data": "one"}, "holds 1 chain; a bridge needs 2 or more"),
        ({"--lattice": ["8", "8"]}, "of the lattice 6 6, not --lattice 8 8"),
        ({"--beta-from": "2.2"}, "--beta-from: 2.2 is not the coupling of --data"),
        ({"--beta": "2"}, "--beta-from: equals --beta 2; a bridge maps one coupling to another"),
        ({"--batch": "301"}, "--batch: 301 configurations per step, but --data"),
        ({"--anneal-from": "0.5"}, "--anneal-from: a bridge is trained at --beta from its first"),
        ({"--beta-from": None}, "--beta-from: required by sampler bridge"),
        ({"--data": None}, "--data: required by sampler bridge"),
        ({"--sampler": "flow"},
         "--beta-from: a setting of sampler bridge, not of sampler flow; leave it out"),
        ({"--sampler": "l2hmc", "--beta-from": None, "--flow-layers": None},
         "--data: a setting of sampler bridge, not of sampler l2hmc; leave it out"),
    ],
)
def test_bad_input_is_one_line_naming_the_option(data, tmp_path, change, words):
    (data["root"] / "text.nc").write_text("not a chain file\n")
    args = bridge_args(data, "--steps", "2")
    for option, value in change.items():
        if option not in args:
            args += [option, value]
            continue
        i = args.index(option)
        n = 2 if option == "--lattice" else 1
        if value is None:
            del args[i:i + 1 + n]
        else:
            value = value if isinstance(value, list) else [value]
            if option == "--data" and value[0] in data:
                value = [str(data[value[0]])]
            elif option == "--data":
                value = [str(data["root"] / value[0])]
            args[i + 1:i + 1 + n] = value
    run = tmp_path / "run"
    code, err = run_main([*args, "--out", str(run)])
    assert code == 2 and len(err.splitlines()) == 1 and words in err, err
    assert not run.exists()


@pytest.mark.slow
def test_two_mpi_ranks_train_one_bridge_on_their_own_batches(data, tmp_path):
    """``mpiexec -n 2`` (about 8 s): the ranks hold the same bridge after every step while each
    draws its own configurations from the data (its own stream, seed + rank)."""
    assert_two_ranks_share_the_model([*bridge_args(data, "--flow-layers", "2"), "--steps", "3"],
                                     tmp_path / "run", tmp_path / "hashes")
