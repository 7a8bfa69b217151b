"""Synthetic chain files in the format of docs/chain-files.md, for the analysis and report tests."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.signal import lfilter
from scipy.stats import norm

from dlhmc.lattice.u1_exact import sector_distribution


def ar1(rho: float, n_chains: int, n_traj: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary AR(1) chains ``x_t = rho x_(t-1) + e_t``, unit innovations, mean 0.

    Every chain starts in equilibrium (``x_0 ~ N(0, 1/(1-rho^2))``), as a thermalized Markov chain
    does; its ``tau_int = (1 + rho) / (2 (1 - rho))``.
    """
    noise = rng.standard_normal((n_chains, n_traj))
    noise[:, 0] /= np.sqrt(1.0 - rho**2)
    return lfilter([1.0], [1.0, -rho], noise, axis=1)


def ar1_tau(rho: float) -> float:
    return (1.0 + rho) / (2.0 * (1.0 - rho))


@functools.lru_cache(maxsize=32)
def _sector_cdf(beta: float, volume: int, max_charge: int) -> tuple[np.ndarray, np.ndarray]:
    charges, probs, _ = sector_distribution(beta, volume, max_charge)
    probs = np.clip(probs, 0.0, None)
    return charges, np.cumsum(probs / probs.sum())


def sector_chains(
    beta: float,
    lattice: tuple[int, int],
    rho: float,
    n_chains: int,
    n_traj: int,
    rng: np.random.Generator,
    max_charge: int = 24,
) -> np.ndarray:
    """Integer charges whose every value is drawn from the exact U(1) sector distribution at
    ``beta`` and whose successive values are correlated (an AR(1) series mapped through the
    distribution's inverse CDF, so the marginal is exact and tau_int grows with ``rho``)."""
    charges, cdf = _sector_cdf(float(beta), lattice[0] * lattice[1], max_charge)
    uniform = norm.cdf(ar1(rho, n_chains, n_traj, rng) * np.sqrt(1.0 - rho**2))
    index = np.minimum(np.searchsorted(cdf, uniform), len(charges) - 1)
    return charges[index].astype(np.float64)


def write_chain_file(
    path: Path,
    charge: np.ndarray,
    plaq: np.ndarray,
    *,
    sampler: str = "hmc",
    group: str = "U1",
    lattice: tuple[int, ...] = (8, 8),
    beta: float = 2.0,
    nlf: int = 10,
    eps: float = 0.1,
    traj_per_second: float = 50.0,
    charge_real: np.ndarray | None = None,
    training_seconds: float | None = None,
    layers: dict[str, np.ndarray] | None = None,
    accept: float = 0.8,
    seed: int = 0,
    extra_attrs: dict | None = None,
    extra_vars: dict[str, np.ndarray] | None = None,
) -> Path:
    rng = np.random.default_rng(seed)
    dims = ("chain", "traj")
    accepted = (rng.random(charge.shape) < accept).astype(np.int8)
    data = {
        "plaq": (dims, plaq),
        "charge": (dims, charge),
        "accept_prob": (dims, np.full(charge.shape, accept)),
        "accepted": (dims, accepted),
        "dH": (dims, rng.standard_normal(charge.shape) * 0.1),
    }
    if charge_real is not None:
        data["charge_real"] = (dims, charge_real)
    for name, values in (extra_vars or {}).items():
        data[name] = (dims, values)
    for name, values in (layers or {}).items():
        data[name] = (("lf",), values)
    attrs = {
        "group": group,
        "lattice": np.array(lattice, dtype=np.int64),
        "beta": float(beta),
        "sampler": sampler,
        "nlf": int(nlf),
        "eps": float(eps),
        "n_therm": 100,
        "seed": seed,
        "dlhmc_version": "test",
        "wall_seconds": charge.shape[1] / traj_per_second,
        "traj_per_second": float(traj_per_second),
    }
    if training_seconds is not None:
        attrs["training_seconds"] = float(training_seconds)
        attrs["checkpoint"] = "runs/test"
    attrs.update(extra_attrs or {})
    xr.Dataset(data, attrs=attrs).to_netcdf(path, engine="h5netcdf")
    return Path(path)
