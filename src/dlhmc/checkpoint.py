"""Training checkpoints: everything needed to continue a run bit for bit, and nothing executable.

A checkpoint is a dict of tensors and plain containers (str, int, float, bool,
None, lists, dicts), written with ``torch.save`` and read back with
``torch.load(weights_only=True)``: loading a checkpoint from somebody else's run
directory cannot execute code, and no class of ours has to stay importable for old
checkpoints to load.

Layout (``FORMAT = 1``)::

    format, step, world_size, metrics_rows
    config      resolved training settings (plain dict, also in RUN_DIR/config.yaml)
    l2hmc       L2HMCConfig.to_dict()
    model       dynamics.state_dict()
    optimizer   Adam state_dict
    scheduler   LambdaLR state_dict (the schedule itself is rebuilt from ``config``)
    chains      [world_size, batch, ...] chain buffer of every rank, rank order
    rng         {"chain": uint8 [world_size, n], "torch": uint8 [world_size, m]}
    timing      {"training_seconds": this run, "previous_training_seconds": the ladder below}

Only ``timing`` depends on the wall clock; a resumed run reproduces every other
entry of an uninterrupted run exactly (on CPU).  Every rank's chains and RNG
states are gathered onto rank 0 and written into the one file, so a resume needs
the same number of ranks.

Writes are atomic (``checkpoint.pt.tmp-<pid>`` then ``os.replace``): a job killed
while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from dlhmc.atomic import atomic_path

FORMAT = 1
FILENAME = "checkpoint.pt"


def checkpoint_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / FILENAME


def save(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically write ``state`` (tensors and plain containers only) to ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save({"format": FORMAT, **state}, handle)
        handle.flush()
        os.fsync(handle.fileno())


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint onto the CPU without unpickling arbitrary objects."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as err:  # truncated, foreign, or holding objects weights_only refuses
        raise ValueError(f"not a readable dlhmc checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"not a dlhmc checkpoint (format {FORMAT})")
    return state


def remove_stale_temporaries(run_dir: str | os.PathLike) -> None:
    """Delete half-written checkpoints left by a killed job (never the checkpoint itself)."""
    for tmp in Path(run_dir).glob(f"{FILENAME}.tmp-*"):
        tmp.unlink(missing_ok=True)


def all_finite(tree: Any) -> bool:
    """True if every floating point tensor in a nested container is finite."""
    if isinstance(tree, torch.Tensor):
        if not (tree.is_floating_point() or tree.is_complex()):
            return True
        return bool(torch.isfinite(tree).all())
    if isinstance(tree, dict):
        return all(all_finite(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return all(all_finite(v) for v in tree)
    return True


def training_seconds_total(state: dict[str, Any]) -> float:
    """Wall seconds of training behind this model, including the warm-start ladder below it."""
    timing = state["timing"]
    return float(timing["training_seconds"]) + float(timing["previous_training_seconds"])
