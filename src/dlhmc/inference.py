"""Sampling with a trained L2HMC model: chains at the true target, with per-layer diagnostics.

Whatever the training reached, the sampler is run at ``gamma = 1`` (the checkpoint's
beta, or another one) with the full Metropolis-Hastings test, so the chains sample
``exp(-S)`` exactly; training quality shows only in acceptance and autocorrelations.

Per-layer diagnostics (the paper's figure 5) follow the plaquette, the energy
``H - sum log|J|`` and ``Q_R`` through the ``N_LF`` layers of a proposal, averaged over
chains for a sample of trajectories.  The plaquette is shown as the deviation from
its exact value where one is known (U(1): the finite-volume result) and from the
chains' own mean otherwise.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dlhmc import checkpoint as ckpt
from dlhmc.lattice import make_theory
from dlhmc.samplers.base import run_chains
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics
from dlhmc.settings import TrainSettings


def load_sampler(
    run_dir: str | Path, device: torch.device, beta: float | None = None
) -> tuple[L2HMCDynamics, dict[str, Any]]:
    """The trained dynamics of ``run_dir`` at ``beta`` (default: the run's beta), in eval mode."""
    state = ckpt.load(ckpt.checkpoint_path(run_dir))
    settings = TrainSettings.from_dict(state["config"])
    theory = make_theory(
        settings.group,
        settings.lattice,
        settings.beta if beta is None else beta,
        settings.precision,
        device,
    )
    dynamics = L2HMCDynamics(theory, L2HMCConfig.from_dict(state["l2hmc"]))
    dynamics.load_state_dict(state["model"])
    dynamics.eval()
    return dynamics, state


def layer_sample_steps(trajectories: int, samples: int) -> set[int]:
    """``samples`` measured trajectories, evenly spread, that also record every layer."""
    return {int(i) for i in np.linspace(0, trajectories - 1, min(samples, trajectories)).round()}


@dataclass
class Samples:
    """Per-trajectory arrays ``[chain, traj]``, per-layer means ``[lf]`` and the wall time."""

    per_traj: dict[str, np.ndarray]
    per_layer: dict[str, np.ndarray]
    wall_seconds: float
    layer_samples: int
    plaq_reference: str


@torch.no_grad()
def sample(
    dynamics: L2HMCDynamics,
    chains: int,
    trajectories: int,
    therm: int,
    seed: int,
    layer_samples: int,
    progress: bool = True,
) -> Samples:
    """Run ``chains`` chains from hot starts for ``therm + trajectories`` trajectories."""
    theory = dynamics.theory
    generator = torch.Generator(device=theory.device)
    generator.manual_seed(seed)
    t0 = time.perf_counter()
    x = theory.hot_start(chains, generator)
    bar = tqdm(
        total=therm + trajectories,
        desc="infer",
        unit="traj",
        file=sys.stderr,
        disable=not progress or not sys.stderr.isatty(),
    )
    with bar:
        result = run_chains(
            dynamics,
            x,
            therm,
            trajectories,
            generator,
            layer_steps=layer_sample_steps(trajectories, layer_samples),
            progress=bar,
        )
    wall = time.perf_counter() - t0
    per_traj, layers = result.per_traj, result.per_layer
    exact = type(theory).exact_plaquette(theory.lattice, theory.beta)
    reference = exact.value if exact is not None else float(np.mean(per_traj["plaq"]))
    per_layer = {
        "lf_plaq_dev": layers["plaq"] - reference,
        "lf_energy": layers["energy"],
        "lf_charge_real": layers["charge_real"],
    }
    return Samples(
        per_traj=per_traj,
        per_layer=per_layer,
        wall_seconds=wall,
        layer_samples=result.layer_samples,
        plaq_reference=exact.source if exact is not None else "chain mean",
    )


def chain_attrs(
    dynamics: L2HMCDynamics,
    state: dict[str, Any],
    run_dir: str | Path,
    seed: int,
    therm: int,
    trajectories: int,
    samples: Samples,
) -> dict[str, Any]:
    """Attributes shared with HMC chain files, plus the training cost behind the model."""
    theory = dynamics.theory
    return {
        "group": theory.name,
        "lattice": np.asarray(theory.lattice, dtype=np.int64),
        "beta": float(theory.beta),
        "train_beta": float(state["config"]["beta"]),
        "sampler": "l2hmc",
        "nlf": int(dynamics.config.nlf),
        "eps": float(dynamics.eps_x.detach().mean()),
        "n_therm": int(therm),
        "seed": int(seed),
        "wall_seconds": samples.wall_seconds,
        "traj_per_second": (therm + trajectories) / samples.wall_seconds,
        "training_seconds": ckpt.training_seconds_total(state),
        "training_steps": int(state["step"]),
        "checkpoint": str(Path(run_dir).resolve() / ckpt.FILENAME),
        "precision": state["config"]["precision"],
        "device": str(theory.device),
        "layer_samples": samples.layer_samples,
        "lf_plaq_reference": samples.plaq_reference,
    }
