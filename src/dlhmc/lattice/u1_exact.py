"""Exact average plaquette of 2D U(1) Wilson gauge theory, the yardstick for every sampler.

On a torus with ``V`` plaquettes, integrating out the links leaves ``V``
plaquette angles whose only constraint is that they sum to a multiple of
``2 pi``.  Expanding each Boltzmann factor in characters,
``exp(beta cos phi) = sum_n I_n(beta) exp(i n phi)``, the constraint picks one
common ``n`` for all plaquettes:

    Z = sum_n I_n(beta)^V,
    <cos x_P> = (1/V) d log Z / d beta
              = sum_n I_n^(V-1) (I_(n-1) + I_(n+1)) / 2 / sum_n I_n^V.

``I_n^V`` overflows long before the lattices of interest, so the sums are done
with exponentially scaled Bessel functions (``ive = I exp(-beta)``; the scale
cancels between numerator and denominator) in log space.  Terms fall off
monotonically in ``|n|`` (``I_n`` decreases with ``n >= 0``), so the sum stops
once they are below double precision relative to the ``n = 0`` term.

The number of orders that matter grows like ``sqrt(beta / V)`` (``I_n / I_0 ~ exp(-n^2 / 2
beta)``), so the sums are capped at ``MAX_ORDER`` orders: a user's ``beta = 1e300`` must not
allocate arrays until the machine runs out of memory.  Beyond the cap (which implies ``beta >
V * MAX_ORDER^2 / 120``), :func:`exact_plaquette` uses the large-beta expansion of the finite
torus, accurate there far below double precision (see :func:`large_beta_plaquette`); the other
sums answer ``None``, "no exact value".

:func:`sector_distribution` resolves the same sums by topological charge,
for chains too short to visit every sector in proportion (large beta).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ive, logsumexp

# Terms below exp(-60) of the largest are far below double precision.
_NEGLIGIBLE_LOG = -60.0
# Sector probabilities below this are quadrature noise.
_RESOLVED = 1e-12
# Most Bessel orders a sum may use: 4097 doubles per array, whatever beta and volume are.
MAX_ORDER = 4096
# Most Fourier orders of the theta-resolved sums: their arrays hold
# (2 * orders + 1) * n_theta * n_phi doubles (84 MB at the defaults).
MAX_SECTOR_ORDER = 128


def _orders(beta: float, volume: int, cap: int = MAX_ORDER) -> np.ndarray | None:
    """Orders ``0..K``, ``K`` the first with ``I_K^V`` negligible; ``None`` if ``K > cap``.

    Numerator terms beyond ``K`` are bounded by ``I_K^V`` too, because
    ``I_n^(V-1) I_(n-1) <= I_K^V`` for ``n > K`` and ``V >= 2``.  The cap bounds the memory
    and time of every sum (the needed ``K`` grows without limit with ``beta / V``).
    """
    n_max = 16
    while True:
        n = np.arange(min(n_max, cap) + 1)
        log_terms = volume * _log_ive(n, beta)
        if log_terms[-1] - log_terms[0] < _NEGLIGIBLE_LOG:
            first_negligible = int(np.argmax(log_terms - log_terms[0] < _NEGLIGIBLE_LOG))
            return n[: first_negligible + 1]
        if n_max >= cap:
            return None
        n_max *= 2


def log_partition_function(beta: float, volume: int) -> float | None:
    """``log Z``, ``Z = int prod_links dx / 2pi exp(beta sum_P cos x_P) = sum_n I_n(beta)^V``.

    ``None`` where the sum needs more than ``MAX_ORDER`` orders (no bounded-cost value).
    """
    _check(beta, volume)
    n = _orders(beta, volume)
    if n is None:
        return None
    log_i = _log_ive(n, beta)
    weights = np.where(n == 0, 1.0, 2.0)  # I_(-n) = I_n
    return float(logsumexp(volume * log_i, b=weights) + volume * beta)


def large_beta_plaquette(beta: float, volume: int) -> float:
    """``<cos x_P> = 1 - a / (2 beta) - a^2 / (8 beta^2) + O(beta^-3)``, ``a = 1 - 1/V``.

    Why it holds: at large beta the plaquette angles are small Gaussians of variance
    ``1/beta`` constrained to sum to zero (the constraint of the torus; sectors with
    ``sum x_P = 2 pi k != 0`` are suppressed by ``exp(-2 pi^2 k^2 beta / V)``), so each has
    variance ``a / beta``; the quartic term of ``cos`` adds ``a^2 / (2 beta^2)`` to
    ``<x^2>`` and ``<x^4> = 3 a^2 / beta^2``, which gives the ``beta^-2`` term.  For
    ``V -> infinity`` it is the expansion of ``I_1 / I_0``.  The omitted terms are below
    ``1 / (4 beta^3)`` for ``beta >= max(30, V)`` (tests/test_hardening_lib.py checks this
    against the Bessel sum); it is used only beyond ``MAX_ORDER``, where ``beta > 10^5 V`` and
    that bound is below the rounding error of a double near 1.
    """
    a = 1.0 - 1.0 / volume
    return float(1.0 - a / (2.0 * beta) - a * a / (8.0 * beta * beta))


def uses_bessel_sum(beta: float, volume: int) -> bool:
    """Whether :func:`exact_plaquette` is the Bessel sum (else the large-beta expansion)."""
    _check(beta, volume)
    return _orders(beta, volume) is not None


def large_beta_error(beta: float) -> float:
    """Bound on the terms :func:`large_beta_plaquette` omits (for ``beta >= max(30, V)``)."""
    return 0.25 / beta / beta / beta  # no ** : it raises OverflowError at beta = 1e300


def exact_plaquette(beta: float, volume: int) -> float | None:
    """``<cos x_P>`` on a torus with ``volume`` plaquettes (``Nt * Nx``).

    Beyond ``MAX_ORDER`` orders the large-beta expansion replaces the sum (exact to double
    precision there); ``None`` only if that regime were ever reached with ``beta < V``, where
    the expansion has no stated accuracy.
    """
    _check(beta, volume)
    n = _orders(beta, volume)
    if n is None:
        if beta >= max(30.0, volume):
            return large_beta_plaquette(beta, volume)
        return None
    # Logs relative to the n = 0 term, so that the factor V multiplies small numbers only.
    log_ratio = _log_ive(n, beta) - _log_ive(0, beta)
    # (I_(n-1) + I_(n+1)) / (2 I_0) for n >= 0, using I_(-1) = I_1.
    neighbours = (ive(np.abs(n - 1), beta) + ive(n + 1, beta)) / (2.0 * ive(0, beta))
    weights = np.where(n == 0, 1.0, 2.0)
    log_num = logsumexp((volume - 1) * log_ratio + _log(neighbours), b=weights)
    log_den = logsumexp(volume * log_ratio, b=weights)
    return float(np.exp(log_num - log_den))


def infinite_volume_plaquette(beta: float) -> float:
    """``I_1(beta) / I_0(beta)``: the ``V -> infinity`` limit, where plaquettes decouple."""
    if not beta >= 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    return float(ive(1, beta) / ive(0, beta))


def _log(values: np.ndarray) -> np.ndarray:
    """``log`` with ``log 0 = -inf`` silently (``I_n(0) = 0`` for ``n != 0``)."""
    with np.errstate(divide="ignore"):
        return np.log(values)


def _log_ive(n: np.ndarray, beta: float) -> np.ndarray:
    return _log(ive(n, beta))


def _check(beta: float, volume: int) -> None:
    if not beta >= 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if int(volume) != volume or volume < 2:
        raise ValueError(f"volume must be a number of plaquettes >= 2, got {volume}")


def sector_distribution(
    beta: float, volume: int, max_charge: int, n_theta: int = 256, n_phi: int = 160
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Exact charge distribution ``P(Q)`` and plaquette ``<cos x_P>_Q`` for ``|Q| <= max_charge``.

    Needed because at large beta HMC chains keep the charge they start with
    for thousands of trajectories: their plaquette average is then the exact
    one of their sectors, weighted by how often each sector is visited, not
    the overall value.  With a theta term each plaquette factor
    ``exp(beta cos phi + i nu phi)`` (``phi = [x_P]``, ``nu = theta / 2 pi``)
    has Fourier coefficients ``f_n(nu) = (1/pi) int_0^pi exp(beta cos phi)
    cos((n + nu) phi) dphi`` (Bessel functions of non-integer order, done by
    Gauss-Legendre quadrature because the integrand is not periodic), so
    ``Z(theta) = sum_n f_n^V``, and ``Z_Q`` is its Fourier coefficient in
    ``theta``, taken with the trapezoidal rule (exact up to aliasing by ``Q +-
    n_theta``).  ``<cos x_P>_Q = (1/V) d log Z_Q / d beta``.

    Returns ``(charges, probabilities, plaquettes)``; the plaquette is NaN in
    sectors whose probability is below the quadrature accuracy (for example
    ``|Q| >= V/2``, out of reach of wrapped plaquette angles).

    Returns ``None`` ("no exact value") instead of allocating beyond ``MAX_SECTOR_ORDER``
    orders (large ``beta / V``), and when the charge distribution is too wide for
    ``n_theta`` (large ``V``): then sectors ``Q`` and ``Q +- n_theta`` alias, which shows as
    probability at ``|Q| >= n_theta / 4``.  Raises ``ValueError`` for ``max_charge >=
    n_theta / 4``, charges the theta grid cannot resolve.
    """
    _check(beta, volume)
    if not 0 <= max_charge < n_theta // 4:
        raise ValueError(
            f"max_charge must be in [0, n_theta / 4) = [0, {n_theta // 4}), got {max_charge}"
        )
    # For non-integer nu the factor jumps at phi = +-pi, so f_n decays only like 1/n and
    # f_n^V like n^-V: small volumes need many more orders than the theta = 0 sums.
    n_zero = _orders(beta, volume, cap=MAX_SECTOR_ORDER - 2)
    if n_zero is None:
        return None
    orders = max(len(n_zero) + 1, 64)
    n = np.arange(-orders, orders + 1)[:, None, None]
    theta = 2.0 * np.pi * np.arange(n_theta) / n_theta - np.pi
    nu = (theta / (2.0 * np.pi))[None, :, None]
    nodes, weights = np.polynomial.legendre.leggauss(n_phi)
    phi = 0.5 * np.pi * (nodes + 1.0)
    weights = 0.5 * weights  # (1/pi) int_0^pi -> sum of weights/2 over nodes
    # exp(beta (cos phi - 1)) / ive(0, beta): scaled so that f_0(0) = 1 and powers stay finite.
    kernel = np.exp(beta * (np.cos(phi) - 1.0)) * np.cos((n + nu) * phi) / ive(0, beta)
    f = (kernel * weights).sum(axis=-1)
    df = (kernel * np.cos(phi) * weights).sum(axis=-1)
    z_theta = (f**volume).sum(axis=0)
    dz_theta = (f ** (volume - 1) * df).sum(axis=0)
    z_total = (f[:, n_theta // 2] ** volume).sum()  # theta = 0
    every = np.arange(-(n_theta // 2), n_theta // 2)
    aliased = np.abs(np.cos(np.outer(every, theta)) @ z_theta / n_theta / z_total)
    if aliased[np.abs(every) >= n_theta // 4].sum() > _RESOLVED:
        return None
    charges = np.arange(-max_charge, max_charge + 1)
    fourier = np.cos(np.outer(charges, theta)) / n_theta
    z_q = fourier @ z_theta
    dz_q = fourier @ dz_theta
    probabilities = z_q / z_total
    with np.errstate(divide="ignore", invalid="ignore"):
        plaquettes = np.where(probabilities > _RESOLVED, dz_q / z_q, np.nan)
    return charges, probabilities, plaquettes
