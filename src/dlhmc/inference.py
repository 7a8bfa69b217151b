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
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dlhmc import checkpoint as ckpt
from dlhmc.lattice import make_theory
from dlhmc.samplers.base import Chains, Kernel, run_chains, sampling_mode
from dlhmc.samplers.hmc import thermalize
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics, check_network
from dlhmc.settings import TrainSettings


@dataclass(frozen=True)
class Model:
    """A trained model as stored: the checkpoint, its training settings and architecture."""

    state: dict[str, Any]
    settings: TrainSettings
    config: L2HMCConfig
    path: Path


def read_model(run_dir: str | Path) -> Model:
    """The checkpoint of ``run_dir``, validated (:func:`dlhmc.checkpoint.load_valid`): a damaged
    or foreign file, or a model with a non-finite weight or step size (which would sample NaN in
    every trajectory and exit 0), raises ``ValueError`` naming the file and the key."""
    path = ckpt.checkpoint_path(run_dir)
    state = ckpt.load_valid(path)
    try:
        config = L2HMCConfig.from_dict(state["l2hmc"])
    except ValueError as err:
        raise ckpt.CheckpointError(f"{path}: l2hmc.{err}") from None
    return Model(state, TrainSettings.from_dict(state["config"]), config, path)


def sampling_lattice(model: Model, lattice: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The volume to sample: the training one, or ``lattice`` where the model runs there.

    Local networks are convolutions over gauge-invariant loops, so their weights fit any
    lattice of the group whose extents the link masks allow; dense networks read every link
    of the volume they were trained on and fit that one only.  Raises ``ValueError``
    (``lattice: ...``) before anything is built.
    """
    trained = tuple(int(n) for n in model.settings.lattice)
    if lattice is None:
        return trained
    lattice = tuple(int(n) for n in lattice)
    settings = model.settings
    try:
        theory = make_theory(settings.group, lattice, settings.beta, settings.precision)
    except ValueError as err:
        raise ValueError(f"lattice: {err}") from None
    if lattice != trained and not model.config.any_volume:
        raise ValueError(
            f"lattice: the {model.config.network} model was trained on "
            f"{' '.join(map(str, trained))} and runs on that volume only (network local runs "
            f"on any), got {' '.join(map(str, lattice))}"
        )
    check_network(theory, model.config)
    return lattice


def build_sampler(
    model: Model,
    device: torch.device,
    beta: float | None = None,
    lattice: tuple[int, ...] | None = None,
) -> L2HMCDynamics:
    """The trained dynamics at ``beta`` (default: the run's) on ``lattice`` (default: the run's,
    otherwise checked by :func:`sampling_lattice`), in eval mode."""
    settings = model.settings
    theory = make_theory(
        settings.group,
        sampling_lattice(model, lattice),
        settings.beta if beta is None else beta,
        settings.precision,
        device,
    )
    dynamics = L2HMCDynamics(theory, model.config)
    try:
        ckpt.check_weights(dynamics.state_dict(), model.state["model"])
    except ValueError as err:
        raise ckpt.CheckpointError(f"{model.path}: {err}") from None
    dynamics.load_state_dict(model.state["model"])
    dynamics.eval()
    return dynamics


def load_sampler(
    run_dir: str | Path,
    device: torch.device,
    beta: float | None = None,
    lattice: tuple[int, ...] | None = None,
) -> tuple[L2HMCDynamics, dict[str, Any]]:
    """The trained dynamics of ``run_dir`` (:func:`build_sampler`) and its checkpoint."""
    model = read_model(run_dir)
    return build_sampler(model, device, beta, lattice), model.state


def n_params(dynamics: L2HMCDynamics) -> int:
    """Trainable parameters: networks and step sizes (the same for every volume of a local
    model)."""
    return sum(p.numel() for p in dynamics.parameters() if p.requires_grad)


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


def run_sampler(
    kernel: Kernel,
    chains: int,
    trajectories: int,
    therm: int,
    seed: int,
    progress: bool = True,
    therm_hmc: int = 0,
    layer_steps: Collection[int] = (),
    start: Callable[[int, torch.Generator], torch.Tensor] | None = None,
) -> tuple[Chains, float]:
    """Chains of any kernel from ``start(chains, generator)`` (default: hot starts), then
    ``therm_hmc`` HMC trajectories (:func:`thermalize`) and ``therm + trajectories`` of the
    kernel (:func:`run_chains`), one generator seeded with ``seed`` for all of it.  Returns the
    chains and the wall time of the whole run, all of it in the kernel's
    :func:`~dlhmc.samplers.base.sampling_mode`."""
    theory = kernel.theory
    generator = torch.Generator(device=theory.device)
    generator.manual_seed(seed)
    t0 = time.perf_counter()
    bar = tqdm(
        total=therm + trajectories,
        desc="infer",
        unit="traj",
        file=sys.stderr,
        disable=not progress or not sys.stderr.isatty(),
    )
    with sampling_mode(kernel), bar:
        x = (theory.hot_start if start is None else start)(chains, generator)
        x = thermalize(theory, x, therm_hmc, generator)
        result = run_chains(
            kernel, x, therm, trajectories, generator, layer_steps=layer_steps, progress=bar
        )
    return result, time.perf_counter() - t0


def sample(
    dynamics: L2HMCDynamics,
    chains: int,
    trajectories: int,
    therm: int,
    seed: int,
    layer_samples: int,
    progress: bool = True,
    therm_hmc: int = 0,
) -> Samples:
    """Run ``chains`` chains from hot starts for ``therm + trajectories`` trajectories, after
    ``therm_hmc`` HMC trajectories (:func:`thermalize`)."""
    theory = dynamics.theory
    result, wall = run_sampler(
        dynamics, chains, trajectories, therm, seed, progress, therm_hmc,
        layer_steps=layer_sample_steps(trajectories, layer_samples),
    )  # fmt: skip
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
    therm_hmc: int = 0,
) -> dict[str, Any]:
    """Attributes shared with HMC chain files, plus the training cost behind the model and
    what the model is (:func:`model_attrs`)."""
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
        "n_therm_hmc": int(therm_hmc),
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
        **model_attrs(dynamics, state),
    }


def model_attrs(dynamics: L2HMCDynamics, state: dict[str, Any]) -> dict[str, Any]:
    """What the model is: its network family and size, the volume it was trained on (which
    differs from ``lattice`` for a transferred local model) and its winding (the analysis
    tells learned-with-move from plain learned chains by it)."""
    config = dynamics.config
    attrs = {
        "network": config.network,
        "n_params": n_params(dynamics),
        "train_lattice": np.asarray(state["config"]["lattice"], dtype=np.int64),
        "winding": int(config.winding),
    }
    return {**attrs, **dynamics.family.chain_attrs(config)}
