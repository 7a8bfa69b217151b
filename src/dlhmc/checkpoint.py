"""Training checkpoints: everything needed to continue a run bit for bit, and nothing executable.

A checkpoint is a dict of tensors and plain containers (str, int, float, bool,
None, lists, dicts), written with ``torch.save`` and read back with
``torch.load(weights_only=True)``: loading a checkpoint from somebody else's run
directory cannot execute code, and no class of ours has to stay importable for old
checkpoints to load.

Layout (``FORMAT = 4``)::

    format, step, world_size, metrics_rows
    sampler     what was trained (dlhmc.trained_samplers.SAMPLERS): "l2hmc", "flow" or "bridge"
    config      resolved training settings (plain dict, also in RUN_DIR/config.yaml)
    l2hmc       L2HMCConfig.to_dict(), every field             (sampler l2hmc)
    flow        FlowConfig.to_dict()                           (samplers flow and bridge)
    bridge      held-out ESS of the bridge and of the identity (sampler bridge; informative)
    model       the model's state_dict: l2hmc: log_eps_v, log_eps_x, the family's layers.*;
                flow: layers.<k>.net.*
    optimizer   Adam state_dict
    scheduler   LambdaLR state_dict (the schedule itself is rebuilt from ``config``)
    chains      [world_size, batch, ...] chain buffer of every rank, rank order (sampler l2hmc:
                a flow is trained on fresh prior samples, it keeps no chains)
    rng         {"chain": uint8 [world_size, n], "torch": uint8 [world_size, m]}
    timing      {"training_seconds": this run, "previous_training_seconds": the ladder below}

Older formats are brought to this layout on loading, in one place (:func:`migrate`), so
no other module knows what an older checkpoint looked like.

Only ``timing`` depends on the wall clock; a resumed run reproduces every other
entry of an uninterrupted run exactly (on CPU).  Every rank's chains and RNG
states are gathered onto rank 0 and written into the one file, so a resume needs
the same number of ranks.

Writes are atomic (``checkpoint.pt.tmp-<pid>`` then ``os.replace``): a job killed
while saving leaves the previous checkpoint intact.

:func:`load_valid` also checks that layout (:func:`validate`) before anyone uses it: a
checkpoint that lost a key, holds an RNG state torch cannot restore or NaN weights is refused
with the file and the key named, before a command writes anything, instead of failing with a
``KeyError`` half way through a resume or sampling NaN with exit status 0.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from dlhmc.atomic import atomic_path
from dlhmc.trained_samplers import SAMPLERS

FORMAT = 4
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
    if not isinstance(state, dict) or state.get("format") not in (*MIGRATIONS, FORMAT):
        raise ValueError(f"not a dlhmc checkpoint (format {FORMAT})")
    return migrate(state)


# The architecture settings a format-1 checkpoint may lack (it was written before they existed),
# with the values its code used in their absence.
FORMAT1_L2HMC_DEFAULTS = {
    "network": "dense", "local_period": 4, "winding": 0, "conv_channels": [], "mask_seed": 0,
    "mask": "checkerboard",
}  # fmt: skip


def _format1_model(state: dict[str, Any]) -> dict[str, Any]:
    """Format 1 stored each family's layers under the family's own prefix (dense: ``vnets.*``
    and ``xnets.*`` at the top, local: ``local.*``), and a checkpoint written before the
    ``network`` setting existed is a dense one.  Format 2 stores them under ``layers.``, the
    module that holds them, whatever the family."""
    l2hmc = state.get("l2hmc")
    model = state.get("model")
    if not isinstance(l2hmc, dict) or not isinstance(model, dict):
        return {**state, "format": 2}  # validate() names what is missing
    l2hmc = {**FORMAT1_L2HMC_DEFAULTS, **l2hmc}
    prefix = "local." if l2hmc["network"] == "local" else ""
    moved = {}
    for key, value in model.items():
        if key.startswith("log_eps_"):
            moved[key] = value
        elif key.startswith(prefix):
            moved["layers." + key[len(prefix):]] = value
        else:
            raise ValueError(f"model: parameter {key} does not belong to network "
                             f"{l2hmc['network']} (format 1)")
    return {**state, "format": 2, "l2hmc": l2hmc, "model": moved}


def _format2_sampler(state: dict[str, Any]) -> dict[str, Any]:
    """Format 2 held L2HMC models only; format 3 says which sampler a checkpoint holds."""
    return {**state, "format": 3, "sampler": "l2hmc"}


def _format3_local_conv(state: dict[str, Any]) -> dict[str, Any]:
    """Format 3 predates ``local_conv``: every L2HMC model it holds has full 3x3 convolutions
    (the only kind there was), which format 4 states."""
    l2hmc = state.get("l2hmc")
    if isinstance(l2hmc, dict):
        state = {**state, "l2hmc": {"local_conv": "full", **l2hmc}}
    return {**state, "format": 4}


# format -> the function that brings it one format up
MIGRATIONS = {1: _format1_model, 2: _format2_sampler, 3: _format3_local_conv}


def migrate(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` in the current layout: each migration takes one format to the next."""
    while state["format"] != FORMAT:
        state = MIGRATIONS[state["format"]](state)
    return state


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, incomplete, mistyped or non-finite."""


# key -> what it must be; the keys of the FORMAT layout above (and the sampler's own).
_DICTS = ("config", "model", "optimizer", "scheduler", "rng", "timing")
_COUNTS = {"step": 0, "world_size": 1, "metrics_rows": 0}


def load_valid(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`load` then :func:`validate`; every failure is a :class:`CheckpointError` naming
    ``path`` (an unreadable file included), so commands can report it in one line."""
    try:
        state = load(path)
    except OSError as err:
        raise CheckpointError(
            f"{path}: cannot read ({err.strerror or type(err).__name__})"
        ) from None
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    validate(state, path)
    return state


def validate(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Check the FORMAT layout: keys, types, restorable RNG states and finite tensors.

    Raises :class:`CheckpointError` ``"<path>: <key>: <what is wrong>"``.  Why each part:
    ``infer`` needs ``model``, the architecture (``l2hmc`` or ``flow``) and ``config``; a
    resume needs all of it, and the
    RNG states must restore into generators (a damaged one fails only inside ``set_state``);
    a NaN weight would make every trajectory of ``infer`` NaN and a warm start train on NaN.
    """

    def fail(key: str, what: str) -> None:
        raise CheckpointError(f"{path}: {key}: {what}")

    for key, minimum in _COUNTS.items():
        if key not in state:
            fail(key, "missing")
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            fail(key, f"expected an integer >= {minimum}, got {value!r}")
    sampler = SAMPLERS.get(state.get("sampler"))
    if sampler is None:
        fail("sampler", f"expected one of {', '.join(SAMPLERS)}, got {state.get('sampler')!r}")
    for key in (*_DICTS, sampler.checkpoint_key):
        if key not in state:
            fail(key, "missing")
        if not isinstance(state[key], dict):
            fail(key, f"expected a dict, got {type(state[key]).__name__}")
    _check_config(state["config"], fail)
    for name, tensor in state["model"].items():
        if not isinstance(tensor, torch.Tensor):
            fail("model", f"parameter {name} is {type(tensor).__name__}, not a tensor")
        if not all_finite(tensor):
            fail("model", f"non-finite parameter {name}")
    if not all_finite(state["optimizer"]):
        fail("optimizer", "non-finite values")
    world = state["world_size"]
    if sampler.keeps_chains:
        chains = state.get("chains")
        if not isinstance(chains, torch.Tensor) or chains.dim() < 2 or chains.shape[0] != world:
            fail("chains", f"expected a tensor [world_size={world}, batch, ...]")
        if not all_finite(chains):
            fail("chains", "non-finite values")
    for generator, restore in (("chain", _restore_chain_rng), ("torch", _restore_cpu_rng)):
        states = state["rng"].get(generator)
        if not isinstance(states, torch.Tensor) or states.dtype != torch.uint8:
            fail(f"rng.{generator}", "expected a uint8 tensor [world_size, n]")
        if states.dim() != 2 or states.shape[0] != world:
            fail(f"rng.{generator}",
                 f"expected shape [world_size={world}, n], got {list(states.shape)}")
        for rank in range(world):
            if not restore(states[rank].clone()):
                fail(f"rng.{generator}", f"rank {rank}'s generator state cannot be restored")
    for key in ("training_seconds", "previous_training_seconds"):
        value = state["timing"].get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"timing.{key}", f"expected a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            fail(f"timing.{key}", f"expected a finite number >= 0, got {value!r}")


# Settings every use of a checkpoint reads (the model's theory and its precision), with
# the Python types the training run stored; the rest has defaults in the settings class.
_CONFIG_TYPES = {
    "group": str,
    "lattice": list,
    "beta": float,
    "nlf": int,
    "steps": int,
    "batch": int,
    "hidden": list,
    "lr": float,
    "seed": int,
}


def _check_config(config: dict[str, Any], fail) -> None:
    """The required settings are there with their types, so rebuilding the theory and the
    settings object cannot fail with a ``TypeError`` later (a checkpoint may be hand-edited
    or written by another version)."""
    for key, expected in _CONFIG_TYPES.items():
        value = config.get(key)
        ok = isinstance(value, (list, tuple)) if expected is list else isinstance(value, expected)
        if expected is float:
            ok = isinstance(value, (int, float)) and math.isfinite(value)
        if isinstance(value, bool) or not ok:
            fail(f"config.{key}", f"expected {expected.__name__}, got {value!r}")


# A CUDA (Philox) generator state: seed and offset, 8 bytes each.
_CUDA_STATE_BYTES = 16


def _restore_cpu_rng(state: torch.Tensor) -> bool:
    """Whether a CPU generator accepts ``state`` (size and Mersenne-Twister consistency)."""
    try:
        torch.Generator().set_state(state)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def _restore_chain_rng(state: torch.Tensor) -> bool:
    """The chain generator lives on the training device: a CPU or a CUDA state.

    Without CUDA a CUDA-sized state cannot be tried here; any 16 bytes are a valid Philox
    seed and offset, so its size is the whole check.
    """
    if _restore_cpu_rng(state):
        return True
    if state.numel() != _CUDA_STATE_BYTES:
        return False
    if not torch.cuda.is_available():
        return True
    try:
        torch.Generator(device="cuda").set_state(state)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def remove_stale_temporaries(run_dir: str | os.PathLike) -> None:
    """Delete half-written checkpoints left by a killed job (never the checkpoint itself)."""
    for tmp in Path(run_dir).glob(f"{FILENAME}.tmp-*"):
        tmp.unlink(missing_ok=True)


def check_weights(expected: dict[str, torch.Tensor], stored: dict[str, Any]) -> None:
    """The stored ``model`` has exactly the parameters of the model built from its settings, of
    the same shapes; ``ValueError`` naming the first parameter that differs.  Why here and not
    in ``load_state_dict``: its message lists every difference on many lines after the class
    name, and the commands print one line naming the key."""
    for name in expected:
        if name not in stored:
            raise ValueError(f"model.{name}: missing")
    for name in stored:
        if name not in expected:
            raise ValueError(f"model.{name}: not a parameter of this network")
    for name, tensor in expected.items():
        shape = list(getattr(stored[name], "shape", ()))
        if shape != list(tensor.shape):
            raise ValueError(f"model.{name}: expected shape {list(tensor.shape)}, got {shape}")


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
