"""What every sampler shares: the chain state, the record of one transition, the
Metropolis-Hastings test, and the loop that runs a batch of chains.

A sampler is a kernel object with ``init(x) -> State`` and
``step(state, generator) -> (State, Info)``; each chain of the batch is accepted or
rejected on its own.  The accept/reject step is written once here, for HMC, L2HMC,
training and the toy: a proposal is exact only if its acceptance is
``min(1, exp(log_ratio))`` and a chain keeps its old state otherwise, so one
function is one place to get that right.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Protocol, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from dlhmc.configurations import saved_trajectories, stored
from dlhmc.theory import Theory


@dataclass(frozen=True)
class State:
    """Links ``x`` of a batch of chains with their cached action ``[B]`` and force.

    Caching saves one force evaluation per HMC trajectory: the force at the end of a
    trajectory is the force at the start of the next when it is accepted, and the old
    one is kept when it is rejected.  ``force`` is ``None`` for kernels that evaluate it
    themselves on sub-batches (L2HMC splits the chains by direction).

    ``x`` are the variables the kernel moves; ``links`` the gauge field they stand for, whose
    observables the chains record.  They are the same tensor except for a sampler that moves
    other variables than the links (flow HMC moves the latent ``z`` of ``U = f(z)``), whose
    state subclass carries ``U`` too, so every kernel records the physical field.
    """

    x: torch.Tensor
    action: torch.Tensor
    force: torch.Tensor | None = None

    @property
    def links(self) -> torch.Tensor:
        return self.x


@dataclass(frozen=True)
class Info:
    """What one transition did, per chain ``[B]``.

    ``divergent`` marks chains whose log-acceptance is not finite (a NaN or infinite
    ``dH``): they are rejected (``accept_prob`` 0) and counted instead of hidden.
    ``extras`` holds a sampler's own per-chain records (L2HMC: ``sumlogdet``);
    ``layers`` its per-layer records ``[N_LF + 1, B]`` when asked for.
    """

    accept_prob: torch.Tensor
    accepted: torch.Tensor
    dH: torch.Tensor
    divergent: torch.Tensor
    extras: Mapping[str, torch.Tensor] = field(default_factory=dict)
    layers: Mapping[str, torch.Tensor] | None = None

    def records(self) -> dict[str, torch.Tensor]:
        """The per-chain fields a chain file stores for every trajectory."""
        return {
            "accept_prob": self.accept_prob,
            "accepted": self.accepted,
            "dH": self.dH,
            "divergent": self.divergent,
            **self.extras,
        }


class Kernel(Protocol):
    """The face every sampler shows to ``run_chains``: the theory whose observables it
    records, the state of fresh links and one transition.  ``record_layers`` asks a layered
    sampler (L2HMC) for its per-layer records in ``Info.layers``; a sampler without layers
    leaves them ``None``.  ``differentiates``: whether a transition takes gradients itself
    (flow HMC's force through the flow), so that it cannot run under
    ``torch.inference_mode`` (:func:`sampling_mode`)."""

    theory: Theory
    differentiates: bool

    def init(self, x: torch.Tensor) -> State: ...

    def step(self, state: State, generator: torch.Generator,
             record_layers: bool = False) -> tuple[State, Info]: ...


def sampling_mode(kernel: Kernel):
    """The autograd mode to run a kernel's chains in: ``torch.inference_mode`` (no version
    counters or view tracking on the tensors it makes: a local L2HMC trajectory, which is
    thousands of small tensor operations, measured ~8 % faster than under ``no_grad``), or
    ``no_grad`` for a kernel that differentiates inside its transitions (its tensors must be
    able to enter autograd)."""
    return torch.no_grad() if kernel.differentiates else torch.inference_mode()


def acceptance(log_ratio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``min(1, exp(log_ratio))`` per chain and the divergence flag.

    Non-finite entries get probability 0 and the flag.  They are replaced before the
    exponential, so the accept probability stays differentiable (training
    back-propagates through it) without a NaN from the masked entries.
    """
    divergent = ~torch.isfinite(log_ratio)
    safe = log_ratio.masked_fill(divergent, 0.0)
    prob = torch.exp(torch.clamp(safe, max=0.0)).masked_fill(divergent, 0.0)
    return prob, divergent


T = TypeVar("T", torch.Tensor, State)


def select(accepted: torch.Tensor, new: T, old: T) -> T:
    """Per chain, ``new`` where accepted and ``old`` elsewhere (detached, for the chains).

    States are chosen field by field, for every field of their class (a sampler's state
    subclass carries more than the links: flow samplers their density or latent variables)."""
    if isinstance(new, State):
        chosen = {}
        for f in fields(new):
            a, b = getattr(new, f.name), getattr(old, f.name)
            chosen[f.name] = None if a is None or b is None else select(accepted, a, b)
        return type(new)(**chosen)
    mask = accepted.reshape(accepted.shape + (1,) * (new.dim() - 1))
    return torch.where(mask, new.detach(), old.detach())


def metropolis(
    accept_prob: torch.Tensor, proposed: T, current: T, generator: torch.Generator
) -> tuple[T, torch.Tensor]:
    """Draw one uniform per chain and accept where it falls below ``accept_prob``.

    ``proposed`` and ``current`` are link tensors or whole states.  ``accept_prob`` may
    carry gradients; the decision and the chosen state never do.  Returns the chosen
    (detached) state and the decisions ``[B]`` (bool).
    """
    prob = accept_prob.detach()
    u = torch.rand(prob.shape, generator=generator, device=prob.device, dtype=prob.dtype)
    accepted = u < prob
    return select(accepted, proposed, current), accepted


@dataclass
class Chains:
    """Per-trajectory arrays ``[chain, traj]`` (observables and the ``Info`` records) and,
    for kernels that record layers, per-layer means ``[N_LF + 1]`` over chains and over the
    ``layer_samples`` recorded trajectories."""

    per_traj: dict[str, np.ndarray]
    per_layer: dict[str, np.ndarray]
    layer_samples: int
    # Links ``[chain, saved, ...]`` after every ``save_every``-th recorded trajectory (float64,
    # :func:`dlhmc.configurations.stored`); ``None`` when none were asked for.
    configurations: np.ndarray | None = None


def run_chains(
    kernel: Kernel,
    x: torch.Tensor,
    n_therm: int,
    n_traj: int,
    generator: torch.Generator,
    layer_steps: Collection[int] = (),
    progress: tqdm | None = None,
    save_every: int = 0,
) -> Chains:
    """Thermalize for ``n_therm`` trajectories, then record ``n_traj`` of them.

    Each recorded trajectory stores ``kernel.theory.observables`` of the chosen links
    (``State.links``) and ``Info.records()``.  The measured trajectories (counted from 0) listed in
    ``layer_steps`` also ask the kernel for its per-layer records
    (``step(..., record_layers=True)``, L2HMC).  Records stay on the device until the end
    (no host synchronisation per trajectory, except the progress bar's acceptance every
    50 trajectories when the bar is shown).  With ``save_every`` K the links after every K-th
    recorded trajectory are copied to the host (:mod:`dlhmc.configurations`).
    """
    theory = kernel.theory
    records: dict[str, torch.Tensor] = {}
    layer_sums: dict[str, torch.Tensor] = {}
    recorded = 0
    kept = set(saved_trajectories(n_traj, save_every).tolist())
    saved: list[np.ndarray] = []
    with torch.no_grad():
        state = kernel.init(x)
        for step in range(n_therm + n_traj):
            measured = step - n_therm
            if measured in layer_steps:
                state, info = kernel.step(state, generator, record_layers=True)
                for name, value in (info.layers or {}).items():
                    mean = value.to(torch.float64).mean(dim=1)
                    layer_sums[name] = layer_sums.get(name, 0) + mean
                recorded += 1
            else:
                state, info = kernel.step(state, generator)
            if measured >= 0:
                for name, value in {**theory.observables(state.links), **info.records()}.items():
                    if name not in records:
                        records[name] = value.new_empty((n_traj, *value.shape))
                    records[name][measured] = value
            if measured in kept:
                saved.append(stored(state.links))
            if progress is not None and not progress.disable:
                progress.update()
                if step % 50 == 0:
                    accept = info.accept_prob.mean().item()
                    progress.set_postfix(accept=f"{accept:.3f}", refresh=False)
    per_traj = {name: value.T.cpu().numpy() for name, value in records.items()}
    per_layer = {name: (total / recorded).cpu().numpy() for name, total in layer_sums.items()}
    configurations = np.stack(saved, axis=1) if saved else None
    return Chains(per_traj=per_traj, per_layer=per_layer, layer_samples=recorded,
                  configurations=configurations)
