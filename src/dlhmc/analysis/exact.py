"""Exact (or controlled) values of the average plaquette, the yardstick of the exactness checks.

Each gauge theory knows its own exact values (:meth:`exact_plaquette` of the theory classes:
the finite-volume Bessel sum for U(1), the strong-coupling series for SU(3) at ``beta <= 1``);
this module only looks them up by the group name stored in chain files. The exact ``<Q^2>`` of
the integer charge and the probabilities ``P(|Q| = q)`` of its sectors (2D U(1): the sector
distribution of ``u1_exact``) check that a sampler with a topological move still draws the charge
sectors with their exact weights.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from dlhmc.lattice import theory_class
from dlhmc.lattice.u1_exact import sector_distribution
from dlhmc.theory import ExactValue

# Sectors with an exact probability at most this are not checked: a chain set long enough to
# resolve them is rare, and a handful of visits would make the Gaussian pull meaningless.
SECTOR_THRESHOLD = 1e-3


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
def _u1_distribution(lattice: tuple[int, ...], beta: float) -> tuple[np.ndarray, float] | None:
    """``(P(Q) for Q = -K..K, deficit)`` of 2D U(1), sectors added until they vanish.

    ``deficit`` is ``|1 - sum_Q P(Q)|``, the quadrature's error. ``None`` where the
    distribution has no bounded-cost exact value (very large beta).
    """
    volume = math.prod(lattice)
    max_charge = 8
    while True:
        # Sector Q is aliased by Q +- n_theta: keep n_theta well above the largest charge
        # (sector_distribution needs max_charge < n_theta / 4).
        distribution = sector_distribution(
            beta, volume, max_charge, n_theta=max(256, 8 * max_charge)
        )
        if distribution is None:
            return None
        _, probs, _ = distribution
        total = float(probs.sum())
        converged = abs(1.0 - total) < 1e-9 and abs(probs[0]) < 1e-12 * probs.max()
        if converged or max_charge > volume // 2:
            return probs, abs(1.0 - total)
        max_charge *= 2


def _u1_charge_sq(lattice: tuple[int, ...], beta: float) -> ExactValue | None:
    """``<Q^2>`` of 2D U(1); its error is the deficit of the summed probabilities times it."""
    distribution = _u1_distribution(lattice, beta)
    if distribution is None:
        return None
    probs, deficit = distribution
    charges = np.arange(len(probs)) - len(probs) // 2
    mean = float((charges**2 * probs).sum() / probs.sum())
    return ExactValue(mean, deficit * mean, "exact charge-sector distribution")


def _u1_sectors(lattice: tuple[int, ...], beta: float) -> dict[int, ExactValue] | None:
    """``P(|Q| = q)`` of 2D U(1) for ``q = 0, 1, ...`` while above ``SECTOR_THRESHOLD``.

    The distribution is symmetric (``Q -> -Q`` is parity), so ``+q`` and ``-q`` are folded
    together; the weights fall monotonically in ``|Q|``, so the list stops at the first
    sector below the threshold. Error of each: the deficit of the summed probabilities.
    """
    distribution = _u1_distribution(lattice, beta)
    if distribution is None:
        return None
    probs, deficit = distribution
    middle = len(probs) // 2
    folded = probs[middle:] + np.concatenate([[0.0], probs[middle - 1 :: -1]])
    sectors = {}
    for q, p in enumerate(folded / probs.sum()):
        if not p > SECTOR_THRESHOLD:
            break
        sectors[q] = ExactValue(float(p), deficit, "exact charge-sector distribution")
    return sectors


# Groups with an exact charge distribution (the integer charge of 2D U(1)).
_CHARGE_SQ = {"U1": _u1_charge_sq}
_SECTORS = {"U1": _u1_sectors}


def exact_charge_sq(group: str, lattice: tuple[int, ...], beta: float) -> ExactValue | None:
    """``<Q^2>`` of the integer charge, or ``None`` when no exact value is known (SU(3))."""
    compute = _CHARGE_SQ.get(group)
    return None if compute is None else compute(tuple(lattice), float(beta))


def exact_sectors(group: str, lattice: tuple[int, ...], beta: float) -> dict[int, ExactValue]:
    """``{q: P(|Q| = q)}`` of the integer charge for the sectors above ``SECTOR_THRESHOLD``;
    empty when no exact distribution is known (SU(3), or U(1) at very large beta)."""
    compute = _SECTORS.get(group)
    sectors = None if compute is None else compute(tuple(lattice), float(beta))
    return sectors or {}


# Exact expectation values by the observable names of ``dlhmc derivative`` (plaq, q2), whose
# derivatives in beta the report draws (issue 20: the bridges' derivative estimators).
_DERIVABLE = {"plaq": exact_plaquette, "q2": exact_charge_sq}
# Half-width of the central difference, relative to beta: the sums are exact to ~1e-12
# relative (q2: the deficit of the summed sector probabilities, < 1e-9), so the difference's
# round-off is ~1e-9 / 1e-3 and its truncation ~h^2 f''' / 6 ~ 1e-7 of the derivative.
DERIVATIVE_STEP = 1e-3


def exact_derivative(
    group: str, lattice: tuple[int, ...], beta: float, observable: str
) -> float | None:
    """``d<O>/dbeta`` at ``beta`` for ``O`` = ``plaq`` (``<cos x_P>``) or ``q2`` (``<Q_Z^2>``):
    the central difference of the exact values, ``None`` where those are unknown.

    For U(1) the plaquette's is ``V (<P^2> - <P>^2)`` of the plaquette average ``P`` (physics.md;
    ``1 - P/beta - P^2`` with ``P = I_1/I_0`` in infinite volume, which the tests check); a
    difference of the Bessel sums gives it without a second sum, and the same code the charge's.
    """
    lookup = _DERIVABLE.get(observable)
    if lookup is None:
        raise ValueError(f"no exact derivative of {observable!r} (expected one of "
                         f"{', '.join(_DERIVABLE)})")
    h = DERIVATIVE_STEP * float(beta)
    low, high = lookup(group, tuple(lattice), beta - h), lookup(group, tuple(lattice), beta + h)
    if low is None or high is None:
        return None
    return (high.value - low.value) / (2.0 * h)


def exact_derivative_curve(
    group: str, lattice: tuple[int, ...], betas: np.ndarray, observable: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(betas, d<O>/dbeta)`` where the exact derivative is known; ``None`` where nowhere."""
    points = [(b, exact_derivative(group, lattice, float(b), observable)) for b in betas]
    points = [(b, d) for b, d in points if d is not None]
    if not points:
        return None
    return np.array([b for b, _ in points]), np.array([d for _, d in points])
