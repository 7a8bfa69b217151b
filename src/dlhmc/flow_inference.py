"""Sampling with a trained flow: the two exact samplers it drives, as chain files.

``dlhmc infer`` on a flow run draws the chains with independence Metropolis over the flow's
proposals (:class:`~dlhmc.samplers.flow_imh.FlowIMH`, sampler ``flow_imh``) or, with
``--flow-hmc``, with HMC in the flow's latent variables (:class:`~dlhmc.samplers.flow_hmc.FlowHMC`,
sampler ``flow_hmc``).  Both accept with the full Metropolis test, so the chains sample
``exp(-S)`` exactly at the requested beta on the requested volume whatever the flow learned;
training quality shows only in the acceptance (IMH: the effective sample size of the proposals,
written as the attribute ``ess``) and the autocorrelations.

The chain files are those of L2HMC inference (the same attributes of the run and of the model
behind it, so the analysis reads both alike); the cost unit differs: one IMH trajectory is one
flow sample (``nlf`` 1, ``eps`` 1: no step size), one flow-HMC trajectory ``flow_forces``
forces through the flow (forward and backward) plus one forward pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlhmc import checkpoint as ckpt
from dlhmc.flows.ess import effective_sample_size
from dlhmc.groups import GROUPS
from dlhmc.inference import run_sampler
from dlhmc.samplers.flow_hmc import FlowHMC
from dlhmc.samplers.flow_imh import FlowIMH


def build_kernel(flow, nlf: int | None = None, eps: float | None = None) -> FlowIMH | FlowHMC:
    """Flow IMH, or flow HMC with ``nlf`` steps of ``eps`` (both or neither: ``ValueError``
    naming the missing one) of the group's integrator."""
    if nlf is None and eps is None:
        return FlowIMH(flow)
    for name, value in (("nlf", nlf), ("eps", eps)):
        if value is None:
            raise ValueError(f"{name}: flow HMC needs both nlf and eps")
    return FlowHMC(flow, nlf, eps, GROUPS[flow.theory.name].integrator)


def sampler_name(kernel: FlowIMH | FlowHMC) -> str:
    return "flow_hmc" if isinstance(kernel, FlowHMC) else "flow_imh"


def sample(
    kernel: FlowIMH | FlowHMC,
    chains: int,
    trajectories: int,
    therm: int,
    seed: int,
    progress: bool = True,
    therm_hmc: int = 0,
) -> tuple[dict[str, np.ndarray], float]:
    """Per-trajectory records ``[chain, traj]`` of ``chains`` chains started from the flow's own
    samples (after ``therm_hmc`` HMC trajectories and ``therm`` of the kernel) and the wall time.

    Not from hot starts: a hot configuration has a tiny flow density ``q`` and so a huge weight
    ``p / q`` next to which no independence proposal is ever accepted (measured: 4 of 64 IMH
    chains at 8x8 beta 2 never left theirs, docs/results.md).  A flow sample has a typical
    weight, so IMH starts in equilibrium as far as the flow is right; each kernel's ``init``
    takes it from there (IMH: ``log q`` by the inverse map; flow HMC: ``z = f^-1(U)``)."""
    result, wall = run_sampler(kernel, chains, trajectories, therm, seed, progress, therm_hmc,
                               start=lambda n, generator: kernel.flow.sample(n, generator)[0])
    return result.per_traj, wall


def chain_attrs(
    kernel: FlowIMH | FlowHMC,
    state: dict[str, Any],
    run_dir: str | Path,
    seed: int,
    therm: int,
    trajectories: int,
    per_traj: dict[str, np.ndarray],
    wall_seconds: float,
    therm_hmc: int = 0,
) -> dict[str, Any]:
    """The attributes of L2HMC chain files (run, training cost, model), and the sampler's own:
    IMH the ESS of its proposals; flow HMC its integrator and forces through the flow."""
    theory, flow = kernel.theory, kernel.flow
    config = state["config"]
    attrs = {
        "group": theory.name,
        "lattice": np.asarray(theory.lattice, dtype=np.int64),
        "beta": float(theory.beta),
        "train_beta": float(config["beta"]),
        "sampler": sampler_name(kernel),
        "n_therm": int(therm),
        "n_therm_hmc": int(therm_hmc),
        "seed": int(seed),
        "wall_seconds": wall_seconds,
        "traj_per_second": (therm + trajectories) / wall_seconds,
        "training_seconds": ckpt.training_seconds_total(state),
        "training_steps": int(state["step"]),
        "checkpoint": str(Path(run_dir).resolve() / ckpt.FILENAME),
        "precision": config["precision"],
        "device": str(theory.device),
        "network": "flow",
        "n_params": sum(p.numel() for p in flow.parameters() if p.requires_grad),
        "train_lattice": np.asarray(config["lattice"], dtype=np.int64),
        "flow_layers": int(flow.config.layers),
        "hidden": np.asarray(flow.config.hidden, dtype=np.int64),
        "local_period": int(flow.config.local_period),
        "flow_passes": 1,  # IMH: the proposal; flow HMC: S_F and f(z) at the trajectory's end
    }
    if isinstance(kernel, FlowHMC):
        return {**attrs, "nlf": kernel.nlf, "eps": kernel.eps,
                "integrator": kernel.integrator.name,
                "flow_forces": kernel.force_evaluations}  # fmt: skip
    return {**attrs, "nlf": 1, "eps": 1.0, "flow_forces": 0,
            "ess": float(effective_sample_size(per_traj["log_weight"]))}  # fmt: skip
