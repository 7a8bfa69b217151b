"""Shared pieces of the training, resume, MPI and inference tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from dlhmc import checkpoint as ckpt

BIN = Path(sys.executable).parent

# A lattice and model small enough that a step takes milliseconds on one core.
TINY = [
    "--group", "U1", "--lattice", "4", "4", "--beta", "2.0", "--nlf", "2", "--batch", "16",
    "--hidden", "8", "--lr", "1e-3", "--seed", "1", "--no-progress",
]  # fmt: skip


def cli_env() -> dict[str, str]:
    """Environment for ``dlhmc``/``mpiexec`` subprocesses: this venv first on PATH, one thread."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    return env


def load(run_dir: Path) -> dict:
    return ckpt.load(ckpt.checkpoint_path(run_dir))


def assert_identical(a, b, where: str = "checkpoint") -> None:
    """Bit-for-bit equality of two nested checkpoint trees (tensors: same dtype, shape, bits)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        # Compare the bits: torch.equal treats -0.0 == 0.0 and fails on NaN.
        bits_a, bits_b = (t.reshape(-1).view(torch.uint8) for t in (a, b))
        assert torch.equal(bits_a, bits_b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def without_timing(state: dict) -> dict:
    """A checkpoint minus its wall-clock entries, the only part allowed to differ on resume."""
    return {k: v for k, v in state.items() if k != "timing"}


def interrupted(args: list[str]) -> None:
    """Run ``dlhmc`` in process while a test's patched step raises ``KeyboardInterrupt``: the
    command either lets it through or ends with status 130 (interrupted), keeping what it
    wrote."""
    from dlhmc.cli import main

    try:
        code = main(args)
    except KeyboardInterrupt:
        return
    assert code == 130, code


def crash_before(step: int, trainer=None):
    """A ``train_step`` of ``trainer`` (a trainer class, default the L2HMC ``Trainer``) that
    raises ``KeyboardInterrupt`` instead of running step ``step`` (1-based): what a Ctrl-C or a
    killed job leaves between two checkpoints."""
    from dlhmc.training.trainer import Trainer

    real_step = (trainer or Trainer).train_step

    def crashing_step(self):
        if self.step + 1 == step:
            raise KeyboardInterrupt
        return real_step(self)

    return crashing_step


def assert_two_ranks_share_the_model(args: list[str], run: Path, hashes: Path) -> None:
    """``mpiexec -n 2 dlhmc ARGS --out RUN --hash-log HASHES``: after every step both ranks hold
    the same parameters (averaged gradients) and different per-rank states (their own streams,
    seed + rank); one checkpoint with both ranks' generators.  Skipped without ``mpiexec``."""
    import shutil
    import subprocess

    import pytest

    mpiexec = BIN / "mpiexec" if (BIN / "mpiexec").exists() else shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec next to python or on PATH")
    cmd = [str(mpiexec), "-n", "2", "dlhmc", *args, "--out", str(run), "--hash-log", str(hashes)]
    proc = subprocess.run(cmd, env=cli_env(), capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    logs = [(hashes / f"rank{r}.log").read_text().splitlines() for r in range(2)]
    for line0, line1 in zip(*logs, strict=True):
        step, params0, state0 = line0.split()
        _, params1, state1 = line1.split()
        assert params0 == params1 and state0 != state1, step
    assert load(run)["world_size"] == 2 and load(run)["rng"]["chain"].shape[0] == 2
