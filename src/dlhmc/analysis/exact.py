"""Exact (or controlled) values of the average plaquette, the yardstick of the exactness checks.

Each gauge theory knows its own exact values (:meth:`exact_plaquette` of the theory classes:
the finite-volume Bessel sum for U(1), the strong-coupling series for SU(3) at ``beta <= 1``);
this module only looks them up by the group name stored in chain files. The exact ``<Q^2>`` of
the integer charge (2D U(1): the sector distribution of ``u1_exact``) checks that a sampler with a
topological move still draws the charge sectors with their exact weights.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from dlhmc.lattice import theory_class
from dlhmc.lattice.u1_exact import sector_distribution
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


@functools.lru_cache(maxsize=64)
def _u1_charge_sq(lattice: tuple[int, ...], beta: float) -> ExactValue | None:
    """``<Q^2>`` of 2D U(1) from the exact sector distribution, sectors added until they vanish.

    Its error is the quadrature's: the deficit of the summed probabilities times ``<Q^2>``.
    ``None`` where the distribution has no bounded-cost exact value (very large beta).
    """
    volume = math.prod(lattice)
    max_charge = 8
    while True:
        # Sector Q is aliased by Q +- n_theta: keep n_theta well above the largest charge.
        distribution = sector_distribution(
            beta, volume, max_charge, n_theta=max(256, 4 * max_charge)
        )
        if distribution is None:
            return None
        charges, probs, _ = distribution
        total = float(probs.sum())
        converged = abs(1.0 - total) < 1e-9 and abs(probs[0]) < 1e-12 * probs.max()
        if converged or max_charge > volume // 2:
            break
        max_charge *= 2
    mean = float((charges**2 * probs).sum() / total)
    return ExactValue(mean, abs(1.0 - total) * mean, "exact charge-sector distribution")


# Groups with an exact charge distribution (the integer charge of 2D U(1)).
_CHARGE_SQ = {"U1": _u1_charge_sq}


def exact_charge_sq(group: str, lattice: tuple[int, ...], beta: float) -> ExactValue | None:
    """``<Q^2>`` of the integer charge, or ``None`` when no exact value is known (SU(3))."""
    compute = _CHARGE_SQ.get(group)
    return None if compute is None else compute(tuple(lattice), float(beta))
