"""``dlhmc train --sampler flow``: end to end, bit-identical resume, the effective sample size,
and bad input refused in one line before anything is written."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from train_helpers import (
    assert_identical,
    assert_two_ranks_share_the_model,
    load,
    without_timing,
)

from dlhmc.cli import main
from dlhmc.flows.store import is_flow_run, load_flow
from dlhmc.training import flow_trainer
from dlhmc.training.flow_trainer import METRIC_COLUMNS, FlowTrainer

BASE = [
    "--sampler", "flow", "--group", "U1", "--lattice", "4", "4", "--flow-layers", "4",
    "--hidden", "4", "--seed", "2", "--no-progress",
]  # fmt: skip
# Annealing and warm-up depend on the step counter: resuming must restore it.
FLOW = [*BASE, "--beta", "1.0", "--batch", "8", "--lr", "3e-3", "--anneal-from", "0.5",
        "--warmup", "2"]  # fmt: skip


def exit_code(argv: list[str]) -> int:
    """``main``'s return code, also for errors argparse reports by raising ``SystemExit``."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def crash_before(step: int):
    """A ``FlowTrainer.train_step`` that raises ``KeyboardInterrupt`` instead of running step
    ``step`` (1-based): what a Ctrl-C or a killed job leaves between two checkpoints."""
    real_step = FlowTrainer.train_step

    def crashing_step(self):
        if self.step + 1 == step:
            raise KeyboardInterrupt
        return real_step(self)

    return crashing_step


def test_train_writes_a_flow_run_that_loads_on_another_lattice(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *FLOW, "--steps", "6", "--out", str(run)]) == 0
    metrics = pd.read_csv(run / "metrics.csv")
    assert tuple(metrics.columns) == METRIC_COLUMNS
    assert metrics["step"].tolist() == list(range(1, 7))
    assert metrics["ess"].between(0, 1).all() and (metrics["skipped"] == 0).all()
    assert metrics["beta"].iloc[0] == 0.5 and metrics["beta"].iloc[-1] == 1.0
    state = load(run)
    assert state["sampler"] == "flow" and "chains" not in state and "l2hmc" not in state
    assert state["flow"] == {"layers": 4, "hidden": [4], "activation": "swish",
                             "local_period": 4, "output_scale": 1.0}
    assert is_flow_run(run) and not is_flow_run(tmp_path / "missing")
    flow, _ = load_flow(run, "cpu", beta=3.0, lattice=(8, 12))
    assert flow.theory.lattice == (8, 12) and flow.theory.beta == 3.0
    x, log_q = flow.sample(2, torch.Generator().manual_seed(0))
    assert x.shape == (2, 2, 8, 12) and torch.isfinite(log_q).all()
    with pytest.raises(ValueError, match="^lattice: "):
        load_flow(run, "cpu", lattice=(5, 8))


@pytest.mark.slow
def test_training_lowers_the_reverse_kl(tmp_path):
    """Beta 2 on 4x4: the loss ``KL(q || p) - log Z`` falls by several nats in 40 steps (about
    4.3 measured; a batch of 32 estimates it to about 0.5)."""
    run = tmp_path / "run"
    args = [*BASE, "--beta", "2", "--steps", "40", "--batch", "32", "--lr", "1e-2"]
    assert main(["train", *args, "--out", str(run)]) == 0
    loss = pd.read_csv(run / "metrics.csv")["loss"]
    assert loss.iloc[-8:].mean() < loss.iloc[:8].mean() - 2.0


@pytest.mark.parametrize("gradient", ["reparam", "path"])
def test_interrupted_flow_training_resumes_bit_identically(tmp_path, monkeypatch, gradient):
    steps, every, crash_at = 7, 3, 6
    run, reference = tmp_path / "run", tmp_path / "reference"
    args = ["train", *FLOW, "--flow-gradient", gradient, "--steps", str(steps),
            "--checkpoint-every", str(every)]  # fmt: skip
    monkeypatch.setattr(FlowTrainer, "train_step", crash_before(crash_at))
    assert main([*args, "--out", str(run)]) == 130
    assert load(run)["step"] == every
    monkeypatch.undo()
    assert main([*args, "--out", str(run)]) == 0
    assert main([*args, "--out", str(reference)]) == 0
    assert_identical(without_timing(load(run)), without_timing(load(reference)))
    assert load(run)["config"]["flow_gradient"] == gradient
    a, b = pd.read_csv(run / "metrics.csv"), pd.read_csv(reference / "metrics.csv")
    assert a["step"].tolist() == list(range(1, steps + 1))
    assert (a["skipped"] == 0).all() and a["ess"].between(0, 1).all()
    for column in ("loss", "ess", "plaq", "logdet", "lr", "grad_norm"):
        assert a[column].tolist() == b[column].tolist(), column


def test_warm_start_needs_the_same_flow(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", *FLOW, "--steps", "3", "--out", str(first)]) == 0
    assert main(["train", *FLOW, "--steps", "3", "--init", str(first), "--out", str(second)]) == 0
    assert load(second)["timing"]["previous_training_seconds"] > 0
    capsys.readouterr()
    bad = tmp_path / "bad"
    args = [*FLOW, "--flow-layers", "2", "--steps", "3", "--init", str(first), "--out", str(bad)]
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("dlhmc train: error: --init: the model was trained with --flow-layers 4, "
                   "this run asks for 2")
    assert not bad.exists()


TINY_L2HMC = ["--group", "U1", "--lattice", "4", "4", "--beta", "1", "--steps", "3"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([*TINY_L2HMC, "--flow-layers", "3"],
         "--flow-layers: a setting of sampler flow, not of sampler l2hmc; leave it at 16"),
        ([*FLOW, "--steps", "3", "--nlf", "2"],
         "--nlf: a setting of sampler l2hmc, not of sampler flow; leave it at 4"),
        ([*FLOW, "--steps", "3", "--therm-hmc", "3"],
         "--therm-hmc: a setting of sampler l2hmc, not of sampler flow; leave it at 0"),
        ([*FLOW, "--steps", "3", "--network", "local"],
         "--network: a setting of sampler l2hmc, not of sampler flow; leave it at dense"),
        (["--sampler", "flow", "--group", "SU3", "--lattice", "2", "2", "2", "2", "--beta", "5",
          "--steps", "3"],
         "--sampler: flow is implemented for U1 only, got group SU3"),
        ([*FLOW, "--steps", "3", "--lattice", "5", "8"],
         "--lattice: the local link masks of period 4 need extents other than 4k + 1"),
        ([*FLOW, "--steps", "3", "--local-period", "2", "--lattice", "6", "7"],
         "--lattice: the local link masks of period 2 need even extents"),
        ([*FLOW, "--steps", "3", "--flow-layers", "0"],
         "--flow-layers: expected a positive integer, got 0"),
        ([*FLOW, "--steps", "3", "--sampler", "nf"], "--sampler: invalid choice: 'nf'"),
    ],
)
def test_bad_input_is_one_line_naming_the_option(tmp_path, capsys, args, words):
    run = tmp_path / "run"
    assert exit_code(["train", *args, "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not run.exists()


def test_a_config_file_gives_the_sampler(tmp_path):
    config = tmp_path / "flow.yaml"
    config.write_text("sampler: flow\nflow_layers: 2\nhidden: [4]\ngroup: U1\nlattice: [4, 4]\n"
                      "beta: 1.0\nsteps: 2\nbatch: 4\n")
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--no-progress", "--out", str(run)]) == 0
    assert load(run)["flow"]["layers"] == 2
    # The run's config.yaml repeats it: resuming from it finds the run complete.
    assert main(["train", "--config", str(run / "config.yaml"), "--out", str(run)]) == 0


def test_the_flow_entry_bounds_the_weights():
    from dlhmc.settings import TrainSettings

    settings = TrainSettings(group="U1", lattice=(8, 8), beta=2.0, sampler="flow",
                             flow_layers=3, hidden=(8, 8))
    trainer = flow_trainer.build(settings, _options(), _ctx())
    real = sum(p.numel() for p in trainer.flow.parameters())
    assert flow_trainer.weight_bound(trainer.theory, settings) <= real
    assert flow_trainer.depth(settings) == 3


def _options():
    from dlhmc.settings import RunOptions

    return RunOptions(out="unused")


def _ctx():
    from dlhmc.distributed import DistContext

    return DistContext(0, 1, 0, torch.device("cpu"), None, True)


@pytest.mark.slow
def test_two_mpi_ranks_train_one_flow_on_their_own_samples(tmp_path):
    """``mpiexec -n 2``: the gradients are averaged, so both ranks hold the same flow after
    every step, while each draws its own prior samples (seed + rank)."""
    assert_two_ranks_share_the_model(["train", *FLOW, "--steps", "4"], tmp_path / "run",
                                     tmp_path / "hashes")
