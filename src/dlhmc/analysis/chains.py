"""Reading chain files for the analysis, with errors that name the file and what is missing.

The format is the one of ``dlhmc.io`` (docs/chain-files.md): dims ``(chain, traj)``, one
variable per observable, run settings as attributes. The analysis reads the files with xarray
directly and checks only what it uses, so that a file from an older writer still works if it has
those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import xarray as xr

from dlhmc.analysis.move_costs import moves_lf_per_traj
from dlhmc.analysis.requirements import MIN_TRAJ
from dlhmc.chain_checks import check_chain_values, divergence_flags
from dlhmc.lattice import theory_class

REQUIRED_VARS = ("plaq", "charge", "accepted")
REQUIRED_ATTRS = ("group", "lattice", "beta", "sampler", "nlf", "eps", "traj_per_second")
POSITIVE_ATTRS = ("traj_per_second",)
NON_NEGATIVE_ATTRS = ("wall_seconds", "training_seconds")


@dataclass(frozen=True)
class Kind:
    """One kind of sampler the comparison keeps apart.

    A topological move (instanton hits after an HMC trajectory, a winding layer in L2HMC)
    tunnels by itself, so a learned kind names as its ``baseline`` the non-learned kind with the
    same move, and the move's gain is never credited to training; ``ratio`` names the
    comparison's ``ratio_<ratio>`` columns of that pair.  Baselines have neither.

    ``integrates``: whether the file's ``force_evaluations`` (else ``nlf``) are the kind's
    leapfrog steps.  A flow's are not: an independence sampler has no integrator (its file says
    ``nlf`` 1) and each step of flow HMC is a force through the flow; both are counted by the
    flow moves of :data:`dlhmc.analysis.move_costs.MOVES` instead.
    """

    label: str
    baseline: str | None = None
    ratio: str | None = None
    integrates: bool = True


# Every kind, in the order the tables and figures list them: a new kind is one line here.
KINDS = {
    "hmc": Kind("HMC"),
    "whmc": Kind("winding HMC"),
    "l2hmc": Kind("L2HMC", baseline="hmc", ratio="learned_vs_hmc"),
    "l2hmc_w": Kind("L2HMC + winding", baseline="whmc", ratio="learned_w_vs_whmc"),
    # Flows (issue 19) have no topological move: their baseline is plain HMC.
    "flow_imh": Kind("flow IMH", baseline="hmc", ratio="flow_imh_vs_hmc", integrates=False),
    "flow_hmc": Kind("flow HMC", baseline="hmc", ratio="flow_hmc_vs_hmc", integrates=False),
    # Replica exchange over a beta ladder (dlhmc trex): each file's force evaluations are the
    # whole ladder's, its bridge passes and swap force refreshes are moves.
    "pt": Kind("parallel tempering", baseline="hmc", ratio="pt_vs_hmc"),
    "trex": Kind("T-REX", baseline="hmc", ratio="trex_vs_hmc"),
}
# Kinds that are the sampler attribute of their chain files as it is (a flow's two samplers,
# replica exchange's two).
SAMPLER_KINDS = ("flow_imh", "flow_hmc", "pt", "trex")
CATEGORIES = tuple(KINDS)
CATEGORY_LABELS = {name: kind.label for name, kind in KINDS.items()}
LEARNED = tuple(name for name, kind in KINDS.items() if kind.baseline)


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
    def flow_layers(self) -> int:
        """Coupling layers of a flow's chains (0 for every other sampler)."""
        return int(self.attr("flow_layers", 0))

    @property
    def ess(self) -> float:
        """Effective sample size per proposal of flow IMH's weights (NaN for other samplers):
        the flow's quality in the unit of the normalizing-flow literature."""
        return float(self.attr("ess", math.nan))

    @property
    def network(self) -> str:
        """L2HMC network kind (``dense`` when the file predates the choice); empty for HMC."""
        return "" if self.sampler == "hmc" else str(self.attr("network", "dense"))

    @property
    def category(self) -> str:
        """One of :data:`CATEGORIES`: learned or not, with or without a topological move."""
        if self.sampler == "hmc":
            return "whmc" if self.instanton_hits > 0 else "hmc"
        if self.sampler in SAMPLER_KINDS:
            return self.sampler
        return "l2hmc_w" if self.winding != 0 else "l2hmc"

    @property
    def lf_per_traj(self) -> float:
        """Leapfrog-step equivalents of one trajectory: force evaluations plus every other move.

        ``force_evaluations`` per trajectory when the file records it (the Omelyan integrator
        evaluates the force twice per step), else ``N_LF``; plus each move of
        :data:`dlhmc.analysis.move_costs.MOVES` (instanton hits, the force refresh after them,
        a flow's passes and forces) at its fixed count of operations, never at a measured time:
        the same chains must cost the same on a busy and an idle machine.  A kind that does not
        :attr:`Kind.integrates` has its every step among the moves.
        """
        own = self.attr("force_evaluations", self.nlf) if KINDS[self.category].integrates else 0
        return float(own) + moves_lf_per_traj(self)

    @property
    def divergent_rate(self) -> float:
        """Fraction of trajectories whose log-acceptance was not finite (rejected, so a chain
        set where all diverged never moved from its start); 0 for files without the record."""
        flags = divergence_flags(self.data)
        return 0.0 if flags is None else float(np.mean(flags))

    def values(self, name: str) -> np.ndarray:
        """``[chain, traj]`` float64 array of one variable."""
        return np.asarray(self.data[name].transpose("chain", "traj").values, dtype=np.float64)


def load_chain_set(path: str | Path) -> ChainSet:
    """Open and validate one chain file; raises :class:`ChainFileError` naming the problem.

    Everything is read and checked here, eagerly: a damaged HDF5 block or an attribute of the
    wrong type must stop the analysis at load time with the file and the key named, not as a
    ``KeyError`` from deep inside the Gamma method after the other files were analysed. Values
    are checked against their physical ranges and stored digests by
    :func:`dlhmc.chain_checks.check_chain_values`, the one check every reader of chain files shares.
    """
    path = Path(path)
    if not path.is_file():
        raise ChainFileError(f"{path}: no such file")
    data = _read(path)
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
    group = _text(path, attrs, "group")
    lattice = _lattice(path, attrs, group)
    try:
        check_chain_values(data, str(path))
    except ValueError as err:
        raise ChainFileError(str(err)) from None
    for name in POSITIVE_ATTRS:
        _number(path, attrs, name, positive=True)
    for name in NON_NEGATIVE_ATTRS:
        if name in attrs:
            _number(path, attrs, name, positive=False)
    if "n_therm" in attrs:
        _integer(path, attrs, "n_therm", minimum=0)
    return ChainSet(
        path=path,
        data=data,
        group=group,
        lattice=lattice,
        beta=_number(path, attrs, "beta", positive=True),
        sampler=_text(path, attrs, "sampler"),
        nlf=_integer(path, attrs, "nlf", minimum=1),
        eps=_number(path, attrs, "eps", positive=True),
    )


def _read(path: Path) -> xr.Dataset:
    """The whole file in memory, each variable read on its own so a damaged block is named.

    HDF5 reports damage as ``OSError``, ``KeyError`` or ``RuntimeError`` depending on which
    structure the bad bytes hit, so every exception of the reader means "damaged" here.
    """
    _check_hdf5(path)
    try:
        dataset = xr.open_dataset(path, engine="h5netcdf")
    except Exception as err:  # any reader failure means a damaged file
        raise ChainFileError(f"{path}: damaged file structure ({_reason(err)})") from None
    with dataset:
        for name, variable in dataset.variables.items():
            try:
                variable.load()
            except Exception as err:  # HDF5 damage: OSError, KeyError or RuntimeError
                raise ChainFileError(
                    f"{path}: {name}: damaged data block ({_reason(err)})"
                ) from None
        return dataset.load()


def _check_hdf5(path: Path) -> None:
    """Open every HDF5 object and attribute with h5py before h5netcdf sees the file.

    Damaged metadata then gets the object's name in the message, and h5netcdf (which leaves a
    half-built ``File`` that prints an "Exception ignored" traceback when its opening fails
    after HDF5 accepted the file) only ever opens files whose structure reads.
    """
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ChainFileError(f"{path}: not a NetCDF chain file ({type(err).__name__})") from None
    with handle:
        name = "/"
        try:
            dict(handle.attrs)
            for name in list(handle):
                dict(handle[name].attrs)
        except Exception as err:  # HDF5 damage: OSError, KeyError or RuntimeError
            raise ChainFileError(
                f"{path}: {name}: damaged HDF5 metadata ({_reason(err)})"
            ) from None


def _reason(err: Exception) -> str:
    text = str(err).strip("'\"").splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _scalar(path: Path, attrs, name: str):
    value = attrs[name]
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ChainFileError(f"{path}: {name}: expected one value, got {value.size}")
        value = value.reshape(-1)[0]
    return value.item() if isinstance(value, np.generic) else value


def _text(path: Path, attrs, name: str) -> str:
    value = _scalar(path, attrs, name)
    if not isinstance(value, str) or not value:
        raise ChainFileError(f"{path}: {name}: expected a non-empty string, got {value!r}")
    return value


def _number(path: Path, attrs, name: str, positive: bool) -> float:
    """A finite real (``> 0`` or ``>= 0``): rates and couplings of 0, NaN or inf are garbage."""
    value = _scalar(path, attrs, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        expected = "a finite number > 0" if positive else "a finite number >= 0"
        raise ChainFileError(f"{path}: {name}: expected {expected}, got {value!r}")
    return float(value)


def _integer(path: Path, attrs, name: str, minimum: int) -> int:
    value = _scalar(path, attrs, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value != int(value) or value < minimum:
        raise ChainFileError(f"{path}: {name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _lattice(path: Path, attrs, group: str) -> tuple[int, ...]:
    """Integer extents that fit the group (the exact values and labels are computed from them)."""
    value = np.atleast_1d(attrs["lattice"])
    if value.ndim != 1 or value.dtype.kind not in "iu":
        raise ChainFileError(f"{path}: lattice: expected integer extents, got {attrs['lattice']!r}")
    lattice = tuple(int(n) for n in value)
    try:
        theory = theory_class(group)
    except ValueError as err:
        raise ChainFileError(f"{path}: group: {err}") from None
    try:
        theory.check_lattice(lattice)
    except ValueError as err:
        raise ChainFileError(f"{path}: lattice: {err}") from None
    return lattice
