"""``mpiexec -n 2 dlhmc train``: gloo data parallelism keeps the ranks' models identical.

Each rank logs SHA-256 hashes of its parameters and of its chain buffer after every
step (``--hash-log``).  The chains differ between ranks (own seeds), so their
gradients differ; only the averaging of gradients keeps the parameters equal.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import time

import pandas as pd
import pytest
import torch
from train_helpers import BIN, TINY, assert_identical, cli_env, load, without_timing

from dlhmc.checkpoint import checkpoint_path, save
from dlhmc.cli import main

MPIEXEC = BIN / "mpiexec" if (BIN / "mpiexec").exists() else shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec next to python or on PATH")

RANKS, STEPS, EVERY = 2, 12, 3


def _cmd(run, *extra) -> list[str]:
    return [str(MPIEXEC), "-n", str(RANKS), "dlhmc", "train", *TINY, "--steps", str(STEPS),
            "--checkpoint-every", str(EVERY), "--out", str(run), *extra]  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted two-rank run with per-rank hash logs."""
    root = tmp_path_factory.mktemp("mpi")
    run, hashes = root / "run", root / "hashes"
    proc = subprocess.run(
        _cmd(run, "--hash-log", str(hashes)), env=cli_env(), capture_output=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return run, hashes


def _log(path) -> list[tuple[int, str, str]]:
    return [(int(s), p, c) for s, p, c in (line.split() for line in path.read_text().splitlines())]


def test_ranks_hold_identical_parameters_after_every_step(reference):
    run, hashes = reference
    logs = [_log(hashes / f"rank{r}.log") for r in range(RANKS)]
    for log in logs:
        assert [step for step, _, _ in log] == list(range(1, STEPS + 1))
    for (_, p0, c0), (_, p1, c1) in zip(*logs, strict=True):
        assert p0 == p1  # one model
        assert c0 != c1  # own chains
    assert len({p for _, p, _ in logs[0]}) == STEPS  # and the model did change every step


def test_rank0_writes_one_checkpoint_with_every_ranks_chains_and_generators(reference):
    run, _ = reference
    files = ["checkpoint.pt", "config.yaml", "metrics.csv"]
    if importlib.util.find_spec("tensorboard"):  # rank 0's TensorBoard events
        files.append("events")
        assert len(list((run / "events").iterdir())) == 1
    assert sorted(p.name for p in run.iterdir()) == sorted(files)
    state = load(run)
    assert state["world_size"] == RANKS and state["step"] == STEPS
    assert state["chains"].shape[:2] == (RANKS, 16)
    assert not torch.equal(state["chains"][0], state["chains"][1])
    assert not torch.equal(state["rng"]["chain"][0], state["rng"]["chain"][1])
    assert pd.read_csv(run / "metrics.csv")["step"].tolist() == list(range(1, STEPS + 1))


def test_resume_with_another_number_of_ranks_is_refused(reference, tmp_path, capsys):
    """Every rank's chains and generators are in the checkpoint: the rank count must match."""
    state = load(reference[0])
    state["step"] = EVERY  # as if killed after the first checkpoint
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    save(checkpoint_path(unfinished), {k: v for k, v in state.items() if k != "format"})
    args = ["train", *TINY, "--steps", str(STEPS), "--out", str(unfinished)]
    assert main(args) == 2
    assert "checkpointed by 2 ranks" in capsys.readouterr().err
    # A finished run is finished whatever the number of ranks.
    assert main(["train", *TINY, "--steps", str(STEPS), "--out", str(reference[0])]) == 0


def test_killed_mpi_run_resumes_bit_identically(reference, tmp_path):
    run = tmp_path / "killed"
    env = cli_env()
    long_cmd = _cmd(run)
    proc = subprocess.Popen(long_cmd, env=env, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while not checkpoint_path(run).exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)  # mpiexec and every rank
    proc.wait()
    proc.stderr.close()
    assert load(run)["step"] < STEPS, "the run ended before it could be killed"
    resumed = subprocess.run(long_cmd, env=env, capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert_identical(without_timing(load(run)), without_timing(load(reference[0])))
