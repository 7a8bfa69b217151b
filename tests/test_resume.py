"""Kill-and-resume: a run killed at any point and restarted with the same command ends with the
checkpoint of an uninterrupted run, bit for bit (CPU), and with each step's metrics row once."""

from __future__ import annotations

import signal
import subprocess
import time

import pandas as pd
from train_helpers import TINY, assert_identical, cli_env, crash_before, load, without_timing

from dlhmc.checkpoint import checkpoint_path
from dlhmc.cli import main
from dlhmc.training import trainer as trainer_mod

# Annealing, warm-up, decay and the plaquette term all depend on the step counter: resuming
# must restore it together with the optimizer, scheduler, chains and generators.
SCHEDULED = ["--anneal-from", "0.6", "--warmup", "5", "--plaq-weight", "0.05", "--decay", "exp"]


def _train_cmd(run, steps: int, every: int) -> list[str]:
    return ["dlhmc", "train", *TINY, *SCHEDULED, "--steps", str(steps),
            "--checkpoint-every", str(every), "--out", str(run)]  # fmt: skip


def _metrics(run) -> pd.DataFrame:
    return pd.read_csv(run / "metrics.csv")


def test_sigkill_after_first_checkpoint_then_same_command_resumes_bit_identically(tmp_path):
    steps, every = 40, 4
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    env = cli_env()
    # The uninterrupted reference runs alongside (its own process: same thread settings).
    straight = subprocess.Popen(
        _train_cmd(reference, steps, every), env=env, stderr=subprocess.PIPE
    )
    proc = subprocess.Popen(_train_cmd(killed, steps, every), env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not checkpoint_path(killed).exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    step_at_kill = load(killed)["step"]
    assert every <= step_at_kill < steps, "the run ended before it could be killed"

    resumed = subprocess.run(_train_cmd(killed, steps, every), env=env, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()
    _, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err.decode()

    a, b = load(killed), load(reference)
    assert a["step"] == steps
    assert_identical(without_timing(a), without_timing(b))
    metrics_a, metrics_b = _metrics(killed), _metrics(reference)
    assert metrics_a["step"].tolist() == list(range(1, steps + 1))
    for column in ("loss", "accept", "dq2", "plaq", "beta", "lr"):
        assert metrics_a[column].tolist() == metrics_b[column].tolist(), column


def test_interrupted_in_process_resume_truncates_metrics(tmp_path, monkeypatch):
    """An exception between checkpoints: the rows after the checkpoint are written again."""
    steps, every, crash_at = 9, 4, 7
    run, reference = tmp_path / "run", tmp_path / "reference"
    args = ["train", *TINY, *SCHEDULED, "--steps", str(steps), "--checkpoint-every", str(every)]
    monkeypatch.setattr(trainer_mod.Trainer, "train_step", crash_before(crash_at))
    assert main([*args, "--out", str(run)]) == 130  # Ctrl-C: one line, the checkpoint kept
    assert load(run)["step"] == every
    assert _metrics(run)["step"].tolist() == list(range(1, crash_at))
    monkeypatch.undo()
    assert main([*args, "--out", str(run)]) == 0
    assert main([*args, "--out", str(reference)]) == 0
    assert_identical(without_timing(load(run)), without_timing(load(reference)))
    assert _metrics(run)["step"].tolist() == list(range(1, steps + 1))
    assert _metrics(run)["loss"].tolist() == _metrics(reference)["loss"].tolist()
