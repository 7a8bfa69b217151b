"""The contract between a gauge theory and the samplers that move it.

A sampler never asks which gauge group it is moving: it asks the theory for the
action, the force and the momentum algebra, and for how a momentum moves a link.
U(1) and SU(3) (and the toy Gaussian mixture) each provide one object with this
interface, so HMC and L2HMC are written once.

Momenta are always real tensors in the coordinates the networks see: one angle
velocity per U(1) link, the 8 real components ``omega^a`` of ``P = omega^a T^a``
per SU(3) link.  In those coordinates the kinetic energy is ``sum omega^2 / 2``
and the force is the derivative of the action along each coordinate, so the
leapfrog reads the same for every group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class ExactValue:
    """A known expectation value with its own uncertainty (0 for closed forms, the size of the
    first omitted term for a truncated series) and where it comes from."""

    value: float
    error: float
    source: str


@runtime_checkable
class GaugeTheory(Protocol):
    """What a sampler needs from a lattice theory (all per-chain quantities have shape ``[B]``)."""

    beta: float
    name: str
    lattice: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    def with_beta(self, beta: float) -> GaugeTheory:
        """The same theory at another coupling (annealing, beta ladders)."""

    def hot_start(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Independent uniformly (Haar) random links for ``batch`` chains."""

    def cold_start(self, batch: int) -> torch.Tensor:
        """Unit links for ``batch`` chains."""

    def action(self, x: torch.Tensor) -> torch.Tensor:
        """Wilson action per chain."""

    def force(self, x: torch.Tensor) -> torch.Tensor:
        """Derivative of the action along each momentum coordinate; shape of a momentum."""

    def momentum_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of the real momentum tensor for ``batch`` chains."""

    def sample_momentum(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Gaussian momenta, ``exp(-kinetic_energy)`` distributed."""

    def kinetic_energy(self, p: torch.Tensor) -> torch.Tensor:
        """``sum p^2 / 2`` per chain."""

    def evolve_links(
        self, x: torch.Tensor, p: torch.Tensor, eps: float | torch.Tensor
    ) -> torch.Tensor:
        """Move every link a step ``eps`` along its momentum: ``exp(i eps P) U``."""

    @classmethod
    def exact_plaquette(cls, lattice: tuple[int, ...], beta: float) -> ExactValue | None:
        """The exact average plaquette where theory provides one, else ``None``."""

    def observables(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-chain observables written to chain files (``plaq``, ``charge``, ...)."""
