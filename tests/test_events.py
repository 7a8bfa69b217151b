"""TensorBoard event files mirror metrics.csv, and a resumed run shows every step once."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from train_helpers import TINY, interrupted

from dlhmc.cli import main
from dlhmc.training import trainer as trainer_mod
from dlhmc.training.events import EVENTS_DIR, EventLog

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="TensorBoard (the optional monitor extra) is not installed",
)


def scalars(run_dir, tag: str) -> dict[int, float]:
    """The last value TensorBoard shows for each step of ``tag`` (purged steps excluded)."""
    acc = event_accumulator.EventAccumulator(str(run_dir / EVENTS_DIR))
    acc.Reload()
    return {event.step: event.value for event in acc.Scalars(tag)}


def test_events_mirror_metrics(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--steps", "4", "--checkpoint-every", "2", "--out", str(run)]) == 0
    metrics = pd.read_csv(run / "metrics.csv")
    for column in ("loss", "accept", "dq2", "eps_x_mean"):
        shown = scalars(run, f"train/{column}")
        assert sorted(shown) == metrics["step"].tolist()
        expected = dict(zip(metrics["step"], metrics[column], strict=True))
        assert shown == pytest.approx(expected, rel=1e-6), column


def test_resume_purges_the_events_after_the_checkpoint(tmp_path, monkeypatch):
    steps, every, crash_at = 7, 3, 5
    run = tmp_path / "run"
    args = ["train", *TINY, "--steps", str(steps), "--checkpoint-every", str(every),
            "--out", str(run)]
    real_step = trainer_mod.Trainer.train_step

    def crashing_step(self):
        if self.step + 1 == crash_at:
            raise KeyboardInterrupt
        row = real_step(self)
        row["loss"] = 1000.0 + row["step"]  # the rows the resumed run must replace
        return row

    monkeypatch.setattr(trainer_mod.Trainer, "train_step", crashing_step)
    interrupted(args)
    assert scalars(run, "train/loss") == {s: 1000.0 + s for s in range(1, crash_at)}
    monkeypatch.setattr(trainer_mod.Trainer, "train_step", real_step)
    # TensorBoard reads event files in name order, whose first key is the creation second: a
    # resume (later in practice) must not share the interrupted run's second in one process.
    time.sleep(1.1)
    assert main(args) == 0
    shown = scalars(run, "train/loss")
    metrics = pd.read_csv(run / "metrics.csv")
    assert sorted(shown) == list(range(1, steps + 1)) == metrics["step"].tolist()
    # Steps up to the checkpoint keep the first run's rows; the rest are the resumed run's.
    assert all(shown[s] == 1000.0 + s for s in range(1, every + 1))
    resumed = dict(zip(metrics["step"], metrics["loss"], strict=True))
    assert all(shown[s] == pytest.approx(resumed[s], rel=1e-6) for s in range(every + 1, steps + 1))


def test_without_tensorboard_the_log_is_a_no_op(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    log = EventLog(tmp_path, 0)
    assert not log.enabled
    log.write({"step": 1, "loss": 0.5})
    log.close()
    assert not (tmp_path / EVENTS_DIR).exists()
