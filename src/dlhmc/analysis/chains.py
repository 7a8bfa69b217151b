"""Reading chain files for the analysis, with errors that name the file and what is missing.

The format is the one of ``dlhmc.io`` (docs/chain-files.md): dims ``(chain, traj)``, one
variable per observable, run settings as attributes. The analysis reads the files with xarray
directly and checks only what it uses, so that a file from an older writer still works if it has
those.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

REQUIRED_VARS = ("plaq", "charge", "accepted")
REQUIRED_ATTRS = ("group", "lattice", "beta", "sampler", "nlf", "eps", "traj_per_second")
# Fewer trajectories per chain cannot show an autocorrelation (pyerrors needs 5 as well).
MIN_TRAJ = 10

# The four kinds of sampler the comparison keeps apart: a topological move (instanton hits after
# an HMC trajectory, a winding layer in L2HMC) tunnels by itself, so a learned sampler is compared
# with the baseline that has the same move, and the move's gain is never credited to training.
CATEGORIES = ("hmc", "whmc", "l2hmc", "l2hmc_w")
CATEGORY_LABELS = {
    "hmc": "HMC",
    "whmc": "winding HMC",
    "l2hmc": "L2HMC",
    "l2hmc_w": "L2HMC + winding",
}
LEARNED = ("l2hmc", "l2hmc_w")


class ChainFileError(ValueError):
    """A chain file that is missing, unreadable or lacks something the analysis needs."""


@dataclass(frozen=True)
class ChainSet:
    """One chain file: its path, the dataset (loaded into memory) and the settings it records."""

    path: Path
    data: xr.Dataset
    group: str
    lattice: tuple[int, ...]
    beta: float
    sampler: str
    nlf: int
    eps: float

    @property
    def lattice_label(self) -> str:
        return "x".join(str(n) for n in self.lattice)

    def attr(self, name: str, default=None):
        value = self.data.attrs.get(name, default)
        return value.item() if isinstance(value, np.generic) else value

    @property
    def instanton_hits(self) -> int:
        """Instanton (2 pi flux) proposals after each HMC trajectory; 0 = plain HMC."""
        return int(self.attr("instanton_hits", 0))

    @property
    def instanton_size(self) -> int:
        """Patch size of the instanton hits (0 = the delocalized lattice instanton)."""
        return int(self.attr("instanton_size", 0))

    @property
    def winding(self) -> int:
        """Winding of the L2HMC topological layer; 0 (files written before it existed) = none."""
        return int(self.attr("winding", 0))

    @property
    def integrator(self) -> str:
        return str(self.attr("integrator", "leapfrog"))

    @property
    def network(self) -> str:
        """L2HMC network kind (``dense`` when the file predates the choice); empty for HMC."""
        return "" if self.sampler == "hmc" else str(self.attr("network", "dense"))

    @property
    def category(self) -> str:
        """One of :data:`CATEGORIES`: learned or not, with or without a topological move."""
        if self.sampler == "hmc":
            return "whmc" if self.instanton_hits > 0 else "hmc"
        return "l2hmc_w" if self.winding != 0 else "l2hmc"

    @property
    def hit_cost_lf(self) -> float:
        """Measured time of one instanton hit in units of one leapfrog step; NaN when unmeasured."""
        value = self.attr("hit_cost_lf")
        return float("nan") if value is None else float(value)

    @property
    def lf_per_traj(self) -> float:
        """Leapfrog-step equivalents of one trajectory, counted in force evaluations.

        ``force_evaluations`` per trajectory when the file records it (the Omelyan integrator
        evaluates the force twice per step), else ``N_LF``; for winding HMC plus the hits at
        their measured cost and one force evaluation for every trajectory whose links a hit
        changed (the cached force is refreshed).  A hit without a measured cost counts 0, which
        favours winding HMC.
        """
        cost = float(self.attr("force_evaluations", self.nlf))
        hits = self.instanton_hits
        if hits == 0:
            return cost
        if "instanton_accepted" in self.data.variables:
            cost += float((self.values("instanton_accepted") > 0).mean())
        if not np.isnan(self.hit_cost_lf):
            cost += hits * self.hit_cost_lf
        return cost

    def values(self, name: str) -> np.ndarray:
        """``[chain, traj]`` float64 array of one variable."""
        return np.asarray(self.data[name].transpose("chain", "traj").values, dtype=np.float64)


def load_chain_set(path: str | Path) -> ChainSet:
    """Open and validate one chain file; raises :class:`ChainFileError` naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise ChainFileError(f"{path}: no such file")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            data = ds.load()
    except (OSError, ValueError, TypeError) as err:
        raise ChainFileError(f"{path}: not a NetCDF chain file ({type(err).__name__})") from None
    for name in REQUIRED_VARS:
        if name not in data.variables:
            raise ChainFileError(f"{path}: missing variable {name!r}")
        if set(data[name].dims) != {"chain", "traj"}:
            raise ChainFileError(f"{path}: variable {name!r} must have dims (chain, traj)")
    for name in REQUIRED_ATTRS:
        if name not in data.attrs:
            raise ChainFileError(f"{path}: missing attribute {name!r}")
    if data.sizes["traj"] < MIN_TRAJ:
        raise ChainFileError(
            f"{path}: only {data.sizes['traj']} trajectories per chain (need {MIN_TRAJ})"
        )
    attrs = data.attrs
    return ChainSet(
        path=path,
        data=data,
        group=str(attrs["group"]),
        lattice=tuple(int(n) for n in np.atleast_1d(attrs["lattice"])),
        beta=float(attrs["beta"]),
        sampler=str(attrs["sampler"]),
        nlf=int(attrs["nlf"]),
        eps=float(attrs["eps"]),
    )
