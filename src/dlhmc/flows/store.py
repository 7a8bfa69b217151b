"""A trained flow from its run directory, on the training lattice or any other its masks allow.

The checkpoint says what it holds (``sampler``, :mod:`dlhmc.checkpoint`): ``dlhmc infer``
dispatches on :func:`run_sampler`, and :func:`load_flow` (a flow from the prior) and
:func:`load_bridge` (a bridge between two couplings, the same coupling layers) validate the whole
file first, so a damaged checkpoint is refused naming the file and the key before anything is
sampled.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from dlhmc import checkpoint as ckpt
from dlhmc.flows.model import FlowConfig, GaugeFlow, check_lattice
from dlhmc.lattice import make_theory
from dlhmc.settings import TrainSettings


def run_sampler(run_dir: str | os.PathLike) -> str | None:
    """What the checkpoint of ``run_dir`` holds (its ``sampler``), ``None`` when there is none
    or it cannot be read (the loader of the other samplers then reports why)."""
    try:
        state = ckpt.load(ckpt.checkpoint_path(run_dir))
    except (OSError, ValueError):
        return None
    return state.get("sampler")


def is_flow_run(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds a flow from the prior (a sampler; a bridge is not one)."""
    return run_sampler(run_dir) == "flow"


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
    return _load(run_dir, "flow", device, beta, lattice)


def load_bridge(
    run_dir: str | os.PathLike,
    device: torch.device | str,
    lattice: tuple[int, ...] | None = None,
) -> tuple[GaugeFlow, dict[str, Any]]:
    """The trained bridge of ``run_dir`` (``dlhmc train --sampler bridge``, in eval mode) and
    its checkpoint: ``f`` maps configurations at ``state["config"]["beta_from"]`` towards
    ``state["config"]["beta"]``, the coupling of its theory (``flow.theory``), on ``lattice``
    (default: the training lattice; any the masks fit).  The log weight of a configuration
    ``U`` is ``-S_beta(f(U)) + S_beta_from(U) + log|J_f(U)|``.  Errors as :func:`load_flow`
    (a checkpoint of another sampler: ``sampler: expected bridge``)."""
    return _load(run_dir, "bridge", device, None, lattice)


def _load(run_dir, sampler: str, device, beta, lattice) -> tuple[GaugeFlow, dict[str, Any]]:
    """A flow-shaped model of ``sampler`` (whose checkpoint key is ``flow``) from ``run_dir``."""
    path = ckpt.checkpoint_path(run_dir)
    state = ckpt.load_valid(path)
    if state["sampler"] != sampler:
        raise ckpt.CheckpointError(f"{path}: sampler: expected {sampler}, got {state['sampler']}")
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

