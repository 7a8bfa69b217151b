"""Chain files: what every sampler run leaves behind for the analysis and the report.

One NetCDF file per run (xarray, h5netcdf engine) with dimensions ``chain`` and
``traj`` (trajectories after thermalization); the format is documented in
``docs/chain-files.md``.  Files are written under a temporary name in the same
directory and renamed when complete, so an interrupted job (or a Snakemake
rule killed half way) never leaves a file that looks finished.

NetCDF attributes hold only strings, numbers and 1D numeric arrays, so
:func:`chain_dataset` converts run settings once, here, instead of every
writer doing it: booleans become 0/1, the lattice an integer array, paths
strings.

Every data variable is written with the HDF5 Fletcher-32 filter, so any HDF5 reader
(``xarray.open_dataset`` included) refuses a damaged block, and carries the SHA-256 of its
values in the attribute ``sha256``; :func:`read_chains` checks digests and physical ranges
(:mod:`dlhmc.chain_checks`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from dlhmc import __version__
from dlhmc import configurations as configurations_io
from dlhmc.atomic import atomic_path
from dlhmc.chain_checks import DIGEST_ATTR, FLAG_VARIABLES, check_chain_values, digest

ENGINE = "h5netcdf"

REQUIRED_VARIABLES = ("plaq", "charge", "accept_prob", "accepted", "dH")
REQUIRED_ATTRS = (
    "group",
    "lattice",
    "beta",
    "sampler",
    "nlf",
    "eps",
    "n_therm",
    "seed",
    "wall_seconds",
    "traj_per_second",
)
def netcdf_attr(name: str, value):
    """``value`` as something a NetCDF attribute can hold; ``ValueError`` naming ``name`` if not."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        array = np.asarray(value)
        if array.ndim == 1 and array.size and array.dtype.kind in "biuf":
            kind = np.float64 if array.dtype.kind == "f" else np.int64
            return array.astype(kind)
    raise ValueError(f"attribute {name!r}: cannot store {value!r} in a NetCDF file")


def chain_dataset(
    per_traj: Mapping[str, np.ndarray],
    attrs: Mapping[str, object],
    per_layer: Mapping[str, np.ndarray] | None = None,
    configurations: np.ndarray | None = None,
    save_every: int = 0,
) -> xr.Dataset:
    """Assemble a chain file's dataset.

    ``per_traj`` maps variable names to arrays ``[chain, traj]`` (must include
    ``plaq, charge, accept_prob, accepted, dH``); ``accepted`` and ``divergent``
    are stored as int8.  ``per_layer`` (L2HMC diagnostics) maps names to arrays ``[lf]``.
    ``attrs`` must hold the run settings listed in ``REQUIRED_ATTRS``;
    ``dlhmc_version`` is added.  ``configurations`` ``[chain, saved, ...]``, the links after
    every ``save_every``-th recorded trajectory, become variable ``links``
    (:mod:`dlhmc.configurations`).
    """
    missing = [name for name in REQUIRED_VARIABLES if name not in per_traj]
    if missing:
        raise ValueError(f"chain file needs variables {missing}")
    missing = [name for name in REQUIRED_ATTRS if name not in attrs]
    if missing:
        raise ValueError(f"chain file needs attributes {missing}")
    data_vars = {}
    shape = None
    for name, values in per_traj.items():
        array = np.asarray(values)
        if array.ndim != 2 or (shape is not None and array.shape != shape):
            expected = f"[chain, traj] {shape}" if shape else "[chain, traj]"
            raise ValueError(f"variable {name!r}: expected {expected}, got {array.shape}")
        shape = array.shape
        array = array.astype(np.int8) if name in FLAG_VARIABLES else array.astype(np.float64)
        data_vars[name] = (("chain", "traj"), array)
    for name, values in (per_layer or {}).items():
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1:
            raise ValueError(f"variable {name!r}: expected [lf], got {array.shape}")
        data_vars[name] = (("lf",), array)
    coords = {"chain": np.arange(shape[0]), "traj": np.arange(shape[1])}
    if configurations is not None:
        links, saved = configurations_io.variables(
            configurations, configurations_io.saved_trajectories(shape[1], save_every))
        data_vars.update(links)
        coords.update(saved)
    all_attrs = {"dlhmc_version": __version__, **attrs}
    return xr.Dataset(
        data_vars,
        coords=coords,
        attrs={name: netcdf_attr(name, value) for name, value in all_attrs.items()},
    )


def write_chains(path: str | os.PathLike, dataset: xr.Dataset) -> Path:
    """Write ``dataset`` to ``path`` atomically (``path.tmp-<pid>`` then ``os.replace``)."""
    path = Path(path)
    dataset = dataset.assign(
        {
            name: variable.assign_attrs({DIGEST_ATTR: digest(name, variable.values)})
            for name, variable in dataset.data_vars.items()
        }
    )
    encoding = {name: {"fletcher32": True} for name, v in dataset.variables.items() if v.size}
    with atomic_path(path) as tmp:
        dataset.to_netcdf(tmp, engine=ENGINE, encoding=encoding)
    return path


def read_chains(path: str | os.PathLike) -> xr.Dataset:
    """Load a chain file fully into memory (the file is closed on return) and check its values.

    ``ValueError`` naming the file and the variable when a value is outside its physical range
    or a variable's digest does not match (:func:`check_chain_values`).
    """
    with xr.open_dataset(path, engine=ENGINE) as dataset:
        dataset = dataset.load()
    check_chain_values(dataset, str(path))
    return dataset
