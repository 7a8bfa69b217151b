"""The run directory of a training run: what is in it, and whether this run may use it.

A run directory holds ``checkpoint.pt``, ``metrics.csv`` (one row per step) and ``config.yaml``
(the resolved settings, usable as ``dlhmc train --config``); ``--hash-log DIR`` adds one file of
per-step hashes per rank.  A resumed run must repeat the settings of the run it continues, and
a warm start must bring a model of the same architecture (of any volume and beta for
``network: local``, whose weights do not depend on the lattice; of the same volume for ``dense``):
both are checked here, before any work, so that a refused command leaves every file as it was.

The metrics and hash logs are truncated to the last checkpoint on resume: rows written after it
belong to lost work and are written again, so each step's row appears once.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from dlhmc import checkpoint as ckpt
from dlhmc import limits
from dlhmc.atomic import check_creatable, write_text
from dlhmc.families import families
from dlhmc.settings import RunOptions, TrainSettings

METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.yaml"
# The columns of an L2HMC run (a flow run's: dlhmc.training.flow_trainer.METRIC_COLUMNS).
METRIC_COLUMNS = (
    "step",
    "loss",
    "accept",
    "dq2",
    "plaq",
    "eps_x_mean",
    "eps_v_mean",
    "sumlogdet",
    "seconds",
    "beta",
    "skipped",
    "lr",
    "grad_norm",
)
# Settings a warm start must share with the run it starts from: they fix the networks.  The
# lattice is not among them: local networks run on any volume, and dense ones are refused by
# the shapes of their weights (check_weights).
ARCHITECTURE = (
    "sampler", "group", "nlf", "flow_layers", "hidden", "activation", "winding", "network",
    *(option for fam in families() for option in fam.options),
)  # fmt: skip


class TrainingError(ValueError):
    """A run directory or warm-start checkpoint that cannot be used with these settings.

    The message starts with the option at fault (``--init: ...``, ``--out: ...``).
    """


@dataclass(frozen=True)
class StoredRun:
    """A checkpoint as read from disk, with its settings parsed once."""

    state: dict[str, Any]
    settings: TrainSettings


# --- metrics.csv and config.yaml ---------------------------------------------------------------


def truncate_metrics(path: Path, keep_steps: int,
                     columns: tuple[str, ...] = METRIC_COLUMNS) -> None:
    """Keep the header and the rows of steps ``1..keep_steps``; later rows belong to lost work.

    A kill can leave rows past the last checkpoint and half a line at the end; the
    resumed run writes those steps again, so they are dropped first.
    """
    header = ",".join(columns) + "\n"
    rows: list[str] = []
    if path.exists():
        for line in path.read_text().splitlines(keepends=True)[1:]:
            head = line.split(",", 1)[0]
            if line.endswith("\n") and head.isdigit() and int(head) <= keep_steps:
                rows.append(line)
    write_text(path, header + "".join(rows))


def format_row(values: dict[str, float], columns: tuple[str, ...] = METRIC_COLUMNS) -> str:
    """One metrics.csv line (without newline) of the sampler's ``columns``."""
    # repr keeps every digit of a float: the metrics of a resumed run compare exactly.
    cells = (values[c] for c in columns)
    return ",".join(repr(v) if isinstance(v, float) else str(v) for v in cells)


def write_config(settings: TrainSettings, options: RunOptions) -> None:
    """config.yaml: the model's settings plus the run options that the workflow reads back."""
    config = {
        **settings.to_dict(),
        "checkpoint_every": options.checkpoint_every,
        "device": options.device,
    }
    write_text(options.out / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))


# --- hash logs ---------------------------------------------------------------------------------


def sha256(tensors) -> str:
    """Hash of the bytes of ``tensors``: equal hashes mean bit-identical values."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def hash_log_path(directory: Path, rank: int) -> Path:
    return directory / f"rank{rank}.log"


def truncate_hash_log(path: Path, keep_steps: int) -> None:
    """Drop lines of steps after the checkpoint: they are about to be redone."""
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    kept = [ln for ln in lines if ln.endswith("\n") and int(ln.split()[0]) <= keep_steps]
    write_text(path, "".join(kept))


def append_hashes(path: Path, step: int, params, chains: torch.Tensor) -> None:
    with open(path, "a") as handle:
        handle.write(f"{step} {sha256(params)} {sha256([chains])}\n")


# --- resume and warm start ---------------------------------------------------------------------


def read_run(path: Path, option: str) -> StoredRun:
    """The checkpoint at ``path``, validated (:func:`dlhmc.checkpoint.load_valid`: keys, types,
    restorable RNG states, finite values); a damaged, incomplete or NaN checkpoint is an error
    naming ``option``, the file and the key, raised before the run directory is touched."""
    try:
        state = ckpt.load_valid(path)
        settings = TrainSettings.from_dict(state["config"])
    except (ckpt.CheckpointError, TypeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise TrainingError(f"{option}: {first}") from None
    return StoredRun(state, settings)


def check_outputs(options: RunOptions) -> None:
    """The run directory and the hash-log directory can be written (a probe file in each), both
    checked before either is created: a refused hash log leaves no empty run directory."""
    wanted = [(options.out, "--out"), (options.hash_log, "--hash-log")]
    try:
        for path, key in wanted:
            if path is not None and not Path(path).exists():
                check_creatable(path, key)
        limits.check_writable(options.out, "--out", directory=True)
        if options.hash_log is not None:
            limits.check_writable(options.hash_log, "--hash-log", directory=True)
    except ValueError as err:
        raise TrainingError(str(err)) from None


def load_warm_start(run_dir: str | os.PathLike) -> StoredRun:
    path = ckpt.checkpoint_path(run_dir)
    if not path.is_file():
        raise TrainingError(f"--init: no checkpoint at {path}")
    return read_run(path, "--init")


def _normalize(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def show(value) -> str:
    """A setting as it is written on the command line."""
    value = _normalize(value)
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def check_warm_start(settings: TrainSettings, stored: StoredRun) -> None:
    """A warm start needs the same network architecture (shapes are checked on loading)."""
    for name in ARCHITECTURE:
        mine, theirs = getattr(settings, name), getattr(stored.settings, name)
        if _normalize(mine) != _normalize(theirs):
            option = "--" + name.replace("_", "-")
            raise TrainingError(
                f"--init: the model was trained with {option} {show(theirs)}, "
                f"this run asks for {show(mine)}"
            )


def check_weights(model: dict[str, torch.Tensor], stored: StoredRun) -> None:
    """The warm-start weights fit ``model`` (networks that see the whole lattice only fit runs
    of the same volume): the checkpoint's own check of keys and shapes, naming the volume."""
    try:
        ckpt.check_weights(model, stored.state["model"])
    except ValueError as err:
        raise TrainingError(f"--init: {err} (the model was trained on --lattice "
                            f"{show(stored.settings.lattice)})") from None


def check_resume(settings: TrainSettings, stored: StoredRun, run_dir: Path, world: int) -> None:
    """The command that resumes a run must ask for the run that is in the directory."""
    theirs = stored.settings.to_dict()
    for name, value in settings.to_dict().items():
        if _normalize(theirs.get(name)) != _normalize(value):
            option = "--" + name.replace("_", "-")
            raise TrainingError(
                f"{option}: {run_dir} holds a run with {option} {show(theirs.get(name))}, "
                f"got {show(value)} (repeat the original settings to resume, or use another --out)"
            )
    state = stored.state
    if state["world_size"] != world and state["step"] < settings.steps:
        raise TrainingError(
            f"--out: {run_dir} was checkpointed by {state['world_size']} ranks, "
            f"resume it with the same number of ranks (got {world})"
        )


def prepare(
    settings: TrainSettings, options: RunOptions
) -> tuple[StoredRun | None, StoredRun | None]:
    """Validate the run directory and warm start before any work; nothing is written here.

    Returns ``(resume, warm)``: the run to resume (``None`` for a fresh start) and, for a fresh
    start with ``--init``, the checked warm-start run.
    """
    path = ckpt.checkpoint_path(options.out)
    if options.out.exists() and not options.out.is_dir():
        raise TrainingError(f"--out: {options.out} exists and is not a directory")
    if path.exists():
        return read_run(path, "--out"), None
    if settings.init is None:
        return None, None
    warm = load_warm_start(settings.init)
    check_warm_start(settings, warm)
    return None, warm
