"""A trained flow from its run directory, on the training lattice or any other its masks allow.

The checkpoint says what it holds (``sampler``, :mod:`dlhmc.checkpoint`): ``dlhmc infer``
dispatches on :func:`is_flow_run`, and :func:`load_flow` validates the whole file first, so a
damaged checkpoint is refused naming the file and the key before anything is sampled.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from dlhmc import checkpoint as ckpt
from dlhmc.flows.model import FlowConfig, GaugeFlow, check_lattice
from dlhmc.lattice import make_theory
from dlhmc.settings import TrainSettings


def is_flow_run(run_dir: str | os.PathLike) -> bool:
    """Whether the checkpoint of ``run_dir`` holds a flow (``False`` when there is none or it
    cannot be read: the loader of the other samplers then reports why)."""
    try:
        state = ckpt.load(ckpt.checkpoint_path(run_dir))
    except (OSError, ValueError):
        return False
    return state.get("sampler") == "flow"


def load_flow(
    run_dir: str | os.PathLike,
    device: torch.device | str,
    beta: float | None = None,
    lattice: tuple[int, ...] | None = None,
) -> tuple[GaugeFlow, dict[str, Any]]:
    """The trained flow of ``run_dir`` (in eval mode) and its checkpoint.

    It acts on the run's group in the run's precision, at ``beta`` (default: the run's) on
    ``lattice`` (default: the training lattice; any lattice the link masks fit, since the
    weights do not depend on the volume).  Raises :class:`dlhmc.checkpoint.CheckpointError`
    naming the file and the key for a damaged or non-flow checkpoint, and ``ValueError``
    (``lattice: ...``, ``beta: ...``) for a volume or coupling the flow cannot take.
    """
    path = ckpt.checkpoint_path(run_dir)
    state = ckpt.load_valid(path)
    if state["sampler"] != "flow":
        raise ckpt.CheckpointError(f"{path}: sampler: expected flow, got {state['sampler']}")
    try:
        config = FlowConfig.from_dict(state["flow"])
    except (TypeError, ValueError) as err:
        raise ckpt.CheckpointError(f"{path}: flow.{err}") from None
    try:
        settings = TrainSettings.from_dict(state["config"])
    except (TypeError, ValueError) as err:
        raise ckpt.CheckpointError(f"{path}: config.{err}") from None
    lattice = tuple(int(n) for n in (settings.lattice if lattice is None else lattice))
    beta = settings.beta if beta is None else beta
    try:
        theory = make_theory(settings.group, lattice, beta, settings.precision, device)
    except ValueError as err:  # make_theory checks the coupling first, then the lattice
        raise ValueError(str(err) if str(err).startswith("beta") else f"lattice: {err}") from None
    check_lattice(lattice, config.local_period)
    flow = GaugeFlow(theory, config)
    try:
        ckpt.check_weights(flow.state_dict(), state["model"])
    except ValueError as err:
        raise ckpt.CheckpointError(f"{path}: {err}") from None
    flow.load_state_dict(state["model"])
    flow.eval()
    return flow, state

