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


def _orders(beta: float, volume: int) -> np.ndarray:
    """Orders ``0..K``, ``K`` the first with ``I_K^V`` negligible.

    Numerator terms beyond ``K`` are bounded by ``I_K^V`` too, because
    ``I_n^(V-1) I_(n-1) <= I_K^V`` for ``n > K`` and ``V >= 2``.
    """
    n_max = 16
    while True:
        n = np.arange(n_max + 1)
        log_terms = volume * _log_ive(n, beta)
        if log_terms[-1] - log_terms[0] < _NEGLIGIBLE_LOG:
            first_negligible = int(np.argmax(log_terms - log_terms[0] < _NEGLIGIBLE_LOG))
            return n[: first_negligible + 1]
        n_max *= 2


def log_partition_function(beta: float, volume: int) -> float:
    """``log Z``, ``Z = int prod_links dx / 2pi exp(beta sum_P cos x_P) = sum_n I_n(beta)^V``."""
    _check(beta, volume)
    n = _orders(beta, volume)
    log_i = _log_ive(n, beta)
    weights = np.where(n == 0, 1.0, 2.0)  # I_(-n) = I_n
    return float(logsumexp(volume * log_i, b=weights) + volume * beta)


def exact_plaquette(beta: float, volume: int) -> float:
    """``<cos x_P>`` on a torus with ``volume`` plaquettes (``Nt * Nx``)."""
    _check(beta, volume)
    n = _orders(beta, volume)
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    """
    _check(beta, volume)
    # For non-integer nu the factor jumps at phi = +-pi, so f_n decays only like 1/n and
    # f_n^V like n^-V: small volumes need many more orders than the theta = 0 sums.
    orders = max(len(_orders(beta, volume)) + 1, 64)
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
    charges = np.arange(-max_charge, max_charge + 1)
    fourier = np.cos(np.outer(charges, theta)) / n_theta
    z_q = fourier @ z_theta
    dz_q = fourier @ dz_theta
    z_total = (f[:, n_theta // 2] ** volume).sum()  # theta = 0
    probabilities = z_q / z_total
    with np.errstate(divide="ignore", invalid="ignore"):
        plaquettes = np.where(probabilities > _RESOLVED, dz_q / z_q, np.nan)
    return charges, probabilities, plaquettes
