"""Exact (or controlled) values of the average plaquette, the yardstick of the exactness checks.

Each gauge theory knows its own exact values (:meth:`exact_plaquette` of the theory classes:
the finite-volume Bessel sum for U(1), the strong-coupling series for SU(3) at ``beta <= 1``);
this module only looks them up by the group name stored in chain files.
"""

from __future__ import annotations

import numpy as np

from dlhmc.lattice import theory_class
from dlhmc.theory import ExactValue


def exact_plaquette(group: str, lattice: tuple[int, ...], beta: float) -> ExactValue | None:
    """The exact plaquette for these settings, or ``None`` when none is known."""
    return theory_class(group).exact_plaquette(tuple(lattice), float(beta))


def exact_curve(
    group: str, lattice: tuple[int, ...], betas: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(betas, values)`` where an exact value exists (the SU(3) series stops at beta = 1)."""
    points = [(b, exact_plaquette(group, lattice, float(b))) for b in betas]
    points = [(b, e.value) for b, e in points if e is not None]
    if not points:
        return None
    return np.array([b for b, _ in points]), np.array([v for _, v in points])
