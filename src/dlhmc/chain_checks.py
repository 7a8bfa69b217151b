"""What the values of a chain file must satisfy: digests, physical ranges, consistent flags.

Every data variable of a chain file carries the SHA-256 of its values (attribute ``sha256``,
:func:`digest`): the HDF5 Fletcher-32 filter adds 16-bit words modulo 65535 and cannot tell
0x0000 from 0xFFFF, and integer-valued charges and 0/1 flags are full of zero words.
:func:`check_chain_values` checks the digest (files written before it existed have none) and
every value against its physical range (:func:`variable_ranges`), which applies to every file:
damage that lands on a plausible bit pattern, or a writer with a bug, must not reach the
analysis as a plaquette of 1e117.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

FLAG_VARIABLES = ("accepted", "divergent")  # stored as int8 0/1
DIGEST_ATTR = "sha256"
# Relative slack of every bound: single-precision runs average thousands of values in float32,
# whose rounding can carry a mean of cosines of 1 a few 1e-7 past 1.
ROUNDOFF = 1e-5
# Allowed |Q - round(Q)| of an integer-valued variable: U(1) Q_Z is rounded when measured, and a
# sum of V wrapped angles / 2 pi in float32 is off by less than V 2^-25 (1e-4 at 128^2), far
# below the 1/2 that tells an integer from a damaged value.
INTEGER_SLACK = 1e-3



def digest(name: str, values) -> str:
    """SHA-256 of a variable's values as stored: int8 flags or float64, little-endian, C order.

    NaNs are hashed as the one NaN the NetCDF writer stores (xarray replaces every NaN by its
    fill value), so a divergent ``dH`` of ``-nan`` hashes the same before and after writing.
    """
    dtype = "<i1" if name in FLAG_VARIABLES else "<f8"
    array = np.ascontiguousarray(values, dtype=dtype)
    if array.dtype.kind == "f":
        array = np.where(np.isnan(array), np.nan, array)
    hasher = hashlib.sha256(f"{dtype}{array.shape}".encode())
    hasher.update(array.tobytes())
    return hasher.hexdigest()


@dataclass(frozen=True)
class Range:
    """The values one variable can physically take, and the words an error states them in.

    ``low``/``high``: closed bounds (with :data:`ROUNDOFF` slack); ``integer``: integer valued
    (to :data:`INTEGER_SLACK`); ``diverges``: may be non-finite where the trajectory is flagged
    divergent (the terms of the log-acceptance, whose failure is the divergence); ``what``: the
    expectation as the error message states it.
    """

    low: float = -math.inf
    high: float = math.inf
    integer: bool = False
    diverges: bool = False
    what: str = "finite values"


@dataclass(frozen=True)
class GroupRanges:
    """What differs between gauge groups in the ranges of a chain file's variables.

    ``plaq``: the closed range of the average plaquette; ``charge``: what the ``charge`` variable
    is (words of the error message) and whether it is an integer; ``charge_bound`` and
    ``charge_real_bound``: ``(c, formula)``, ``|charge| <= c V`` and ``|charge_real| <= c V``
    (``V`` as in :func:`variable_ranges`), with the formula the error message states.
    """

    plaq: tuple[float, float]
    charge: str
    charge_integer: bool
    charge_bound: tuple[float, str]
    charge_real_bound: tuple[float, str]


# One entry per gauge group (derivations in :func:`variable_ranges`); a group without one gets
# the group-independent ranges only.
GROUP_RANGES = {
    "U1": GroupRanges(
        plaq=(-1.0, 1.0), charge="integer U(1) charges Q_Z", charge_integer=True,
        charge_bound=(0.5, "V/2"), charge_real_bound=(1 / (2 * math.pi), "V/(2 pi)"),
    ),
    "SU3": GroupRanges(
        plaq=(-0.5, 1.0), charge="SU(3) clover charges", charge_integer=False,
        charge_bound=(9 / (4 * math.pi**2), "9 V/(4 pi^2)"),
        charge_real_bound=(9 / (4 * math.pi**2), "9 V/(4 pi^2)"),
    ),
}  # fmt: skip


def variable_ranges(attrs: Mapping) -> dict[str, Range]:
    """The physical range of every variable a chain file with these attributes can hold.

    U(1), 2D, ``V = Nt Nx`` plaquettes with angles ``x_P``: ``plaq = <cos x_P>`` in [-1, 1];
    ``charge`` ``Q_Z = (1/2pi) sum_P [x_P]`` with ``[x_P]`` in [-pi, pi) an integer (the angles
    of a torus add up to a multiple of 2 pi) with ``|Q_Z| <= V/2``; ``charge_real`` ``Q_R =
    (1/2pi) sum_P sin x_P`` within ``V/(2pi)``.

    SU(3), 4D, ``V`` sites: ``plaq = <Re Tr U_P / 3>``; a plaquette's eigenvalues ``e^{ia},
    e^{ib}, e^{-i(a+b)}`` give ``Re Tr = cos a + cos b + cos(a+b)``, 3 at the identity and at
    least -3/2 (the centre elements ``e^{+-2 pi i/3}``), so [-1/2, 1]. The clover charge: four
    leaves of norm 1 sum to norm <= 4, so the traceless Hermitian ``F = P(C)/4i`` has
    ``|F|_F^2 <= 48/16 = 3``, ``|Tr F_a F_b| <= 3`` for each of the 3 dual pairs of a site:
    ``|Q| <= 9 V/(4 pi^2)`` (loose, but no damage hides under it as a plausible value).

    Every sampler: ``accept_prob = min(1, exp(log ratio))`` in [0, 1]; ``accepted`` and
    ``divergent`` 0/1; ``dH``, ``sumlogdet`` and a flow proposal's ``log_weight`` real, non-finite
    only where divergent;
    ``instanton_accepted`` an integer in [0, instanton_hits]; replica exchange's ``replica`` (the
    starting rung of the replica at this beta) an integer in [0, ladder_size - 1]. Per-layer
    diagnostics (means over sampled trajectories, non-finite when one diverged): ``lf_plaq_dev``
    (a plaquette minus a reference plaquette) within the width of the plaquette range,
    ``lf_charge_real`` within ``charge_real``'s.

    What differs between groups (the plaquette's range, whether ``charge`` is an integer, the
    charges' bounds per unit volume) is the group's entry in :data:`GROUP_RANGES`, not a branch
    here. A group without an entry gets the group-independent ranges only; a file without a
    valid lattice gets no charge bounds (an integer charge is still checked for being one).
    """
    group = attrs.get("group")
    lattice = np.atleast_1d(attrs.get("lattice", 0))
    volume = None
    if lattice.dtype.kind in "iu" and lattice.size and (lattice > 0).all():
        volume = float(np.prod(lattice.astype(float)))
    hits, rungs = _count_attr(attrs, "instanton_hits"), _count_attr(attrs, "ladder_size")
    ranges = {
        "accept_prob": Range(0.0, 1.0, what="probabilities in [0, 1]"),
        "accepted": Range(0.0, 1.0, integer=True, what="0/1 flags"),
        "divergent": Range(0.0, 1.0, integer=True, what="0/1 flags"),
        "dH": Range(diverges=True, what="finite values where not divergent"),
        "sumlogdet": Range(diverges=True, what="finite values where not divergent"),
        "log_weight": Range(diverges=True, what="finite values where not divergent"),
        "instanton_accepted": Range(0.0, float(hits), integer=True,
                                    what=f"integers in [0, instanton_hits = {hits}]"),
        "replica": Range(0.0, float(rungs) - 1, integer=True,
                         what=f"integers in [0, ladder_size - 1 = {rungs - 1}]"),
        "lf_energy": Range(diverges=True, what="real values"),
        "links": Range(what="finite link variables"),
    }  # fmt: skip
    facts = GROUP_RANGES.get(group)
    if facts is None:
        return ranges
    low, high = facts.plaq
    width = high - low
    ranges["plaq"] = Range(low, high, what=f"average plaquettes in [{low:g}, {high:g}]")
    ranges["lf_plaq_dev"] = Range(-width, width, diverges=True,
                                  what=f"plaquette deviations within +-{width:g}")  # fmt: skip
    if volume is None:  # no bound, but an integer charge is still an integer
        if facts.charge_integer:
            ranges["charge"] = Range(integer=True, what=facts.charge)
        return ranges
    (per_site, formula), (real_per_site, real_formula) = facts.charge_bound, facts.charge_real_bound
    top, real = per_site * volume, real_per_site * volume
    ranges["charge"] = Range(-top, top, integer=facts.charge_integer,
                             what=f"{facts.charge} within {formula} = {top:.6g}")  # fmt: skip
    within = f"charges within {real_formula} = {real:.6g}"
    ranges["charge_real"] = Range(-real, real, what=within)
    ranges["lf_charge_real"] = Range(-real, real, diverges=True, what=within)
    return ranges


def _count_attr(attrs: Mapping, name: str) -> float:
    """A count the file states as attribute ``name``; ``inf`` (no bound) where it is absent or
    not a number."""
    value = attrs.get(name, math.inf)
    value = value.item() if isinstance(value, np.generic) else value
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return math.inf
    return value


def check_chain_values(dataset: xr.Dataset, where: str) -> None:
    """Every value within its physical range, flags consistent, digests matching.

    Raises ``ValueError`` with one line ``<where>: <variable>: <what is wrong, what was
    expected>`` for the first problem. Ranges come first, so a value out of range is named as
    such even in a file whose digest was stored; a digest is checked where one was stored (files
    written before digests existed have none, and their values still get the ranges).
    Variables no rule names must be numbers, finite where they are per trajectory.
    """
    ranges = variable_ranges(dataset.attrs)
    divergent = divergence_flags(dataset)
    for name, variable in dataset.data_vars.items():
        values = np.asarray(variable.values)
        if values.dtype.kind not in "biuf":
            raise ValueError(f"{where}: {name}: expected numbers, got dtype {values.dtype}")
        per_traj = set(variable.dims) == {"chain", "traj"}
        rule = ranges.get(name, Range() if per_traj else None)
        if rule is None:
            continue
        if per_traj:
            variable = variable.transpose("chain", "traj")
            values = np.asarray(variable.values)
        allowed = np.zeros(values.shape, dtype=bool)
        if rule.diverges:
            allowed = divergent if per_traj and divergent is not None else ~allowed
        problem = _range_problem(values.astype(np.float64), rule, allowed)
        if problem is not None:
            count, what, index = problem
            at = ", ".join(f"{d} {i}" for d, i in zip(variable.dims, index, strict=True))
            raise ValueError(
                f"{where}: {name}: {count} {what} (first {values[index].item()!r} at {at}); "
                f"expected {rule.what}"
            )
    _check_flags(dataset, where, divergent)
    for name, variable in dataset.data_vars.items():
        stored = variable.attrs.get(DIGEST_ATTR)
        if stored is not None and str(stored) != digest(name, variable.values):
            raise ValueError(
                f"{where}: {name}: checksum mismatch: the values differ from those written "
                f"(damaged, or edited without removing the {DIGEST_ATTR!r} attribute)"
            )


def divergence_flags(dataset: xr.Dataset) -> np.ndarray | None:
    """``[chain, traj]`` booleans of divergent trajectories: the ``divergent`` flag, or in files
    written before it existed a non-finite ``dH``; ``None`` when the file has neither."""
    flags, dh = _per_traj(dataset, "divergent"), _per_traj(dataset, "dH")
    if flags is not None:
        return flags != 0
    return None if dh is None else ~np.isfinite(dh)


def _per_traj(dataset: xr.Dataset, name: str) -> np.ndarray | None:
    """``[chain, traj]`` float64 values of a variable, ``None`` if absent or shaped otherwise."""
    if name not in dataset.data_vars or set(dataset[name].dims) != {"chain", "traj"}:
        return None
    values = np.asarray(dataset[name].transpose("chain", "traj").values)
    return values.astype(np.float64) if values.dtype.kind in "biuf" else None


def _range_problem(values: np.ndarray, rule: Range, allowed: np.ndarray):
    """``(count, description, first index)`` of the values that break ``rule``, or ``None``."""
    finite = np.isfinite(values)
    checks = [(~finite & ~allowed, "non-finite values")]
    slack = ROUNDOFF * max([1.0, *(abs(b) for b in (rule.low, rule.high) if math.isfinite(b))])
    with np.errstate(invalid="ignore"):
        outside = finite & ((values < rule.low - slack) | (values > rule.high + slack))
        checks.append((outside, "values out of range"))
        if rule.integer:
            checks.append((finite & (np.abs(values - np.rint(values)) > INTEGER_SLACK),
                           "values not integer"))  # fmt: skip
    for bad, what in checks:
        count = int(np.count_nonzero(bad))
        if count:
            return count, what, tuple(int(i) for i in np.argwhere(bad)[0])
    return None


def _check_flags(dataset: xr.Dataset, where: str, divergent: np.ndarray | None) -> None:
    """What the Metropolis step makes impossible: an accepted divergent trajectory, a divergent
    one with nonzero ``accept_prob``, an acceptance ``u < accept_prob`` of probability 0."""
    accepted, prob = _per_traj(dataset, "accepted"), _per_traj(dataset, "accept_prob")
    rules = []
    if divergent is not None and accepted is not None:
        rules.append(("accepted", divergent & (accepted != 0), "accepted although divergent",
                      "divergent trajectories rejected"))  # fmt: skip
    if divergent is not None and prob is not None and "divergent" in dataset.data_vars:
        rules.append(("accept_prob", divergent & (prob != 0), "nonzero where divergent",
                      "accept_prob 0 where divergent"))  # fmt: skip
    if accepted is not None and prob is not None:
        rules.append(("accepted", (accepted != 0) & (prob == 0), "accepted with accept_prob 0",
                      "no acceptance of probability 0"))  # fmt: skip
    for name, bad, what, expected in rules:
        count = int(np.count_nonzero(bad))
        if count:
            chain, traj = np.argwhere(bad)[0]
            raise ValueError(
                f"{where}: {name}: {count} trajectories {what} (first at chain {chain}, "
                f"traj {traj}); expected {expected}"
            )
