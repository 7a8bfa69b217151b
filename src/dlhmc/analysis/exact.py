"""Exact (or controlled) values of the average plaquette, the yardstick of the exactness checks.

- U(1) in 2D: the finite-volume result ``sum_n I_n^(V-1) (I_(n-1) + I_(n+1))/2 / sum_n I_n^V``
  of :mod:`dlhmc.lattice.u1_exact`; its error is round-off only.
- SU(3) in 4D for ``beta <= 1``: the strong-coupling series ``beta/18 + beta^2/216``. The
  one-plaquette character expansion has no ``beta^3`` term and a ``beta^4`` term
  ``-5 beta^4 / 93312`` (``(1/3) <Re Tr U>`` with weight ``exp((beta/3) Re Tr U)``, Haar moments
  ``<chi^3> = 1``, ``<|chi|^4> = 2``, ``<chi^4 chi*> = 3``; checked by Weyl integration). Its
  size is the theory error of the truncated series; 4D corrections start at ``O(u^5)``, far
  smaller for ``beta <= 1``. Beyond ``beta = 1`` there is no exact value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

STRONG_COUPLING_MAX_BETA = 1.0


@dataclass(frozen=True)
class ExactValue:
    value: float
    error: float
    source: str


def exact_plaquette(group: str, lattice: tuple[int, ...], beta: float) -> ExactValue | None:
    """The exact plaquette for these settings, or ``None`` when none is known."""
    if group == "U1":
        from dlhmc.lattice.u1_exact import exact_plaquette as u1_exact

        return ExactValue(u1_exact(beta, math.prod(lattice)), 0.0, "finite-volume Bessel sum")
    if group == "SU3" and beta <= STRONG_COUPLING_MAX_BETA:
        return ExactValue(
            beta / 18 + beta**2 / 216,
            5 * beta**4 / 93312,
            "strong coupling beta/18 + beta^2/216",
        )
    return None


def exact_curve(
    group: str, lattice: tuple[int, ...], betas: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(betas, values)`` where an exact value exists (the SU(3) series stops at beta = 1)."""
    points = [(b, exact_plaquette(group, lattice, float(b))) for b in betas]
    points = [(b, e.value) for b, e in points if e is not None]
    if not points:
        return None
    return np.array([b for b, _ in points]), np.array([v for _, v in points])
