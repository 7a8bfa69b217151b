"""The contract between a gauge theory and the samplers that move it.

A sampler never asks which gauge group it is moving: it asks the theory for the
action, the force and the momentum algebra, and for how a momentum moves a link.
U(1) and SU(3) (and the toy Gaussian mixture) each provide one object with this
interface (:class:`Theory`), so HMC and L2HMC are written once; the lattice gauge
theories add plaquettes, charges and lattice checks (:class:`GaugeTheory`).  Each concept
has one name in every theory, so no caller needs to know which theory it holds.

Momenta are always real tensors in the coordinates the networks see: one angle
velocity per U(1) link, the 8 real components ``omega^a`` of ``P = omega^a T^a``
per SU(3) link.  In those coordinates the kinetic energy is ``sum omega^2 / 2``
and the force is the derivative of the action along each coordinate, so the
leapfrog reads the same for every group.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

# Relative tolerance of "the same coupling": a beta travels as decimal text (YAML, CSV, command
# lines) and as float64 (checkpoints, NetCDF attributes), so one coupling agrees with itself to
# round-off, while the rungs of any ladder differ by far more.
COUPLING_RTOL = 1e-9


def same_coupling(first: float, second: float) -> bool:
    """Whether two betas name the same coupling (a config's 2.5 and a checkpoint's 2.5); False
    when either is NaN, so a missing coupling never matches."""
    return math.isclose(float(first), float(second), rel_tol=COUPLING_RTOL)


@dataclass(frozen=True)
class ExactValue:
    """A known expectation value with its own uncertainty (0 for closed forms, the size of the
    first omitted term for a truncated series) and where it comes from."""

    value: float
    error: float
    source: str


@runtime_checkable
class Theory(Protocol):
    """What a sampler needs from its target (all per-chain quantities have shape ``[B]``).

    The gauge theories and the toy Gaussian mixture all provide it, so HMC, L2HMC and the
    L2HMC training loss are written once against it.
    """

    beta: float
    name: str
    lattice: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    def with_beta(self, beta: float) -> Theory:
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

    def charge_real(self, x: torch.Tensor) -> torch.Tensor:
        """A topological charge smooth in the links, so the L2HMC loss can differentiate it."""

    def observables(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-chain observables written to chain files (``plaq``, ``charge``, ...)."""


@runtime_checkable
class GaugeTheory(Theory, Protocol):
    """A lattice gauge theory: a :class:`Theory` with plaquettes, a topological charge and
    lattice shapes of its own, which measurements, exactness checks and the command line use.
    """

    def plaquette(self, x: torch.Tensor) -> torch.Tensor:
        """Average plaquette per chain (normalized to 1 on unit links)."""

    def charge(self, x: torch.Tensor) -> torch.Tensor:
        """The topological charge written to chain files (integer up to lattice artefacts)."""

    @classmethod
    def check_lattice(cls, shape: tuple[int, ...]) -> None:
        """Raise ``ValueError`` unless ``shape`` is a lattice this theory lives on."""

    @classmethod
    def exact_plaquette(cls, lattice: tuple[int, ...], beta: float) -> ExactValue | None:
        """The exact average plaquette where theory provides one, else ``None``."""


class LinkAdapter(ABC):
    """How a learned transformation reads and moves the variables of one theory.

    The ``dense`` L2HMC family is written once for every theory: its masks select halves of
    the *units* (the links ``(mu, n)``, or the coordinates of the toy), its networks read
    ``n_features`` real numbers per unit, its momenta have ``components`` real components per
    unit, and the x update of the active units is the group's own (a circle map for U(1)
    angles, left multiplication for SU(3) matrices, an affine map for real coordinates).
    Each theory's adapter lives beside the theory (``dlhmc.lattice.u1_links``, ...) and
    :data:`dlhmc.families.adapters.ADAPTERS` names it, so a new group adds its adapter and
    one registry line, never a branch in the sampler.
    """

    n_features: int
    components: int
    scales_x: bool  # whether the x update has a scaling ``s_x`` (and so a Jacobian)
    conv_front: bool = False  # whether the dense networks may read links through convolutions

    def __init__(self, theory: Theory):
        self.theory = theory
        self.unit_shape = self.units_of(theory)
        self.n_units = math.prod(self.unit_shape)
        self.lattice = tuple(theory.lattice)

    @staticmethod
    @abstractmethod
    def units_of(theory: Theory) -> tuple[int, ...]:
        """Shape of the maskable units of ``theory`` (links ``(mu, n)``, or coordinates)."""

    def parity(self) -> torch.Tensor:
        """Checkerboard colour of each unit: ``(mu + sum_i n_i) mod 2`` for a link ``(mu, n)``."""
        grids = torch.meshgrid(*(torch.arange(n) for n in self.unit_shape), indexing="ij")
        return (sum(grids) % 2).flatten()

    @abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Real network inputs ``[B, n_units, n_features]``."""

    @abstractmethod
    def update_x(self, x, v, s, t, q, eps, index, inverse: bool, translation=None):
        """Move the active units; returns the new links and ``log|dx'/dx|`` per chain.

        ``s, t, q`` are compact network outputs for the active units only and ``index``
        their positions in the flattened momentum; ``translation`` is the winding field
        (adapters without one never receive it).
        """

    def winding_field(self, winding: int) -> torch.Tensor:
        """Constant link translation that changes the topological charge by ``winding``.

        Only U(1) has one: a non-abelian link cannot be shifted by a constant field that moves
        every plaquette alike, so other theories refuse a winding.
        """
        raise ValueError(f"winding: no topological translation for {self.theory.name} "
                         "(U1 only); use winding 0")
