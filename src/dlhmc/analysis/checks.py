"""Exactness checks: every measured plaquette, and for U(1) every ``<Q_Z^2>``, against its exact
value, with the pull.

Any correct sampler -- HMC, or a trained L2HMC or flow (flow IMH, flow HMC) with its Metropolis
step, however poorly trained --
reproduces the exact plaquette within its statistical error. The pull uses the Gamma-method error
of the mean (autocorrelations included) and the exact value's own uncertainty (round-off for U(1),
the truncation of the strong-coupling series for SU(3)). A check fails when ``|pull| >=
PULL_LIMIT``; with tens of checks per report, 4 keeps false alarms rare (two-sided p ~ 6e-5 each)
while a real bias of a few sigma over many points shows in figure 4. ``<Q_Z^2>`` is checked the
same way against the exact charge-sector distribution: a topological move that broke detailed
balance (wrong acceptance of a 2 pi flux) would bias the sector weights while leaving the
plaquette almost untouched. The sector weights themselves, ``P(|Q_Z| = q)``, are checked where the
chains are long enough to resolve them (:func:`sector_checks`): a bias that shifts weight between
sectors at fixed ``<Q^2>`` shows only there.

No check passes on a value no sampler can produce: a measured value outside its physical range
(:func:`physical_range`, from the chain-file ranges of :mod:`dlhmc.io`) gets status ``out of
range``, and a chain set where at least ``DIVERGED_LIMIT`` of the trajectories diverged gets
``diverged`` (it has barely sampled; its pull says nothing about the sampler). ``dlhmc analyze``
refuses chain files with values out of range, but a table can be old or edited by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dlhmc.analysis.exact import exact_charge_sq, exact_plaquette, exact_sectors
from dlhmc.analysis.table import DIVERGED_LIMIT, sector_charge
from dlhmc.chain_checks import ROUNDOFF, variable_ranges

PULL_LIMIT = 4.0

# A sector is checked only where the chains visit it, and leave it, this many times in
# independent samples: n_eff * min(P, 1 - P) >= MIN_VISITS with n_eff = N_total / (2 tau_int).
# Below that the pull of a rare indicator is far from Gaussian; at 25 a chain set that never
# enters (or never leaves) a sector it should visit has |pull| >= 5 and FAILs.
MIN_VISITS = 25.0
# Sector statuses that carry no verdict (the report counts them instead of listing them).
UNCHECKED = ("frozen", "too short")

COLUMNS = (
    "observable",
    "group",
    "lattice",
    "beta",
    "sampler",
    "category",
    "role",
    "nlf",
    "eps",
    "measured",
    "measured_err",
    "exact",
    "exact_err",
    "pull",
    "pull_limit",
    "status",
    "source",
)


def plaquette_checks(table: pd.DataFrame) -> pd.DataFrame:
    """One row per ``plaq`` row of the tau_int table; ``status`` is pass / FAIL / no exact value."""
    return _checks(table, "plaq", exact_plaquette)


def charge_checks(table: pd.DataFrame) -> pd.DataFrame:
    """One row per ``charge_sq`` row: ``<Q_Z^2>`` against the exact sector distribution.

    Status ``frozen`` (never FAIL) where the chains resolve the autocorrelation of neither
    ``Q^2`` nor ``Q_Z``: the error, and so the pull, mean nothing there, and the tau_int table
    already shows the sampler as stuck.
    """
    charge = table[table.observable == "charge"]
    stuck = set(charge.file[charge.frozen.map(_is_true)]) if "file" in charge else set()
    return _checks(table, "charge_sq", exact_charge_sq, stuck)


def sector_checks(table: pd.DataFrame) -> pd.DataFrame:
    """One row per ``sector_q`` row: ``P(|Q_Z| = q)`` against the exact sector weight.

    The measured value and its error are the Gamma method's for the indicator of ``|Q_Z| = q``
    (chains as replicas, autocorrelations included). Status, besides pass / FAIL:

    - ``frozen`` where the file's ``charge`` row is frozen: the chains do not resolve the
      tunnelling, so sector weights say nothing about the sampler's exactness (never FAIL);
    - ``too short`` where the charge is resolved but this sector is not: fewer than
      ``MIN_VISITS`` expected effective visits, ``n_eff min(P, 1 - P)`` with ``n_eff =
      N_total / (2 tau)`` and ``tau`` the larger of the charge's and the indicator's tau_int,
      or an indicator whose own tau_int is a lower bound although it changes.

    An indicator that never changes in any chain although the sector qualifies (a sampler that
    never reaches, or never leaves, it) has no Gamma-method error; its error is then the one an
    exact sampler would have, ``sqrt(2 tau P (1 - P) / N_total)`` with the charge's tau_int, and
    it FAILs.
    """
    charges = {_key(row): row for _, row in table[table.observable == "charge"].iterrows()}
    rows = table[table.observable.map(sector_charge).notna()].copy()
    rows["q"] = rows.observable.map(sector_charge)
    out = []
    for _, row in rows.sort_values(["beta", "sampler", "file", "q"]).iterrows():
        check = _base(row, row.observable)
        exact = exact_sectors(row.group, _lattice(row), float(row.beta)).get(int(row.q))
        if exact is not None:
            check.update(_sector_status(row, charges[_key(row)], exact))
        refused = _refused(row, row.observable)
        if refused == "out of range" or (refused and check["status"] not in UNCHECKED):
            check["status"] = refused
        out.append(check)
    return pd.DataFrame(out, columns=list(COLUMNS))


def exactness_checks(table: pd.DataFrame) -> pd.DataFrame:
    """Plaquette, charge and sector checks together (column ``observable``)."""
    parts = [plaquette_checks(table), charge_checks(table), sector_checks(table)]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat(parts, ignore_index=True)


def physical_range(group: str, lattice: tuple[int, ...], observable: str) -> tuple[float, float]:
    """Closed range of a checked mean: the plaquette's (:func:`dlhmc.chain_checks.variable_ranges`),
    ``[0, Q_max^2]`` for ``<Q_Z^2>``, ``[0, 1]`` for a sector weight; unbounded if unknown."""
    if sector_charge(observable) is not None:
        return 0.0, 1.0
    ranges = variable_ranges({"group": group, "lattice": np.asarray(lattice, dtype=np.int64)})
    name = "charge" if observable == "charge_sq" else observable
    if name not in ranges:
        return -math.inf, math.inf
    low, high = ranges[name].low, ranges[name].high
    if observable == "charge_sq":
        return 0.0, max(low * low, high * high)
    return low, high


def _refused(row, observable: str) -> str | None:
    """``out of range`` or ``diverged`` where no verdict may be given; ``None`` otherwise."""
    low, high = physical_range(row.group, _lattice(row), observable)
    measured = float(row["mean"])
    slack = ROUNDOFF * max([1.0, *(abs(b) for b in (low, high) if math.isfinite(b))])
    if not math.isfinite(measured) or not low - slack <= measured <= high + slack:
        return "out of range"
    rate = row.get("divergent_rate", math.nan)
    if not pd.isna(rate) and float(rate) >= DIVERGED_LIMIT:
        return "diverged"
    return None


def _sector_status(row, charge, exact) -> dict:
    """Measured error, pull and status of one sector row (see :func:`sector_checks`)."""
    p = exact.value
    n_total = int(row.n_chains) * int(row.n_traj)
    measured_err = float(row.mean_err)
    status = None
    if _is_true(charge.frozen):
        status = "frozen"
    else:
        indicator_frozen = _is_true(row.frozen)
        constant = indicator_frozen and math.isnan(measured_err)
        tau = float(charge.tau_int)
        if not indicator_frozen:
            tau = max(tau, float(row.tau_int))
        if constant:
            measured_err = math.sqrt(2.0 * tau * p * (1.0 - p) / n_total)
        visits = n_total / (2.0 * tau) * min(p, 1.0 - p)
        if visits < MIN_VISITS or (indicator_frozen and not constant):
            status = "too short"
    sigma = math.hypot(measured_err, exact.error)
    pull = (row["mean"] - p) / sigma if sigma > 0 else math.nan
    if status is None:
        if math.isnan(pull):
            status = "no error estimate"
        else:
            status = "pass" if abs(pull) < PULL_LIMIT else "FAIL"
    return {
        "measured_err": measured_err,
        "exact": p,
        "exact_err": exact.error,
        "pull": pull,
        "status": status,
        "source": exact.source,
    }


def _checks(
    table: pd.DataFrame, observable: str, exact_value, stuck_files: set | None = None
) -> pd.DataFrame:
    """Rows of ``observable`` against ``exact_value``; rows that are frozen, or come from one of
    ``stuck_files``, get status ``frozen`` (``None``: frozen rows are checked like any other)."""
    out = []
    rows = table[table.observable == observable].sort_values(["beta", "sampler"])
    for _, row in rows.iterrows():
        exact = exact_value(row.group, _lattice(row), float(row.beta))
        check = _base(row, observable)
        refused = _refused(row, observable)
        if exact is not None:
            sigma = math.hypot(row.mean_err, exact.error)
            pull = (row["mean"] - exact.value) / sigma if sigma > 0 else math.nan
            frozen = stuck_files is not None and (
                _is_true(row.get("frozen", False)) or row.get("file") in stuck_files
            )
            if frozen:
                status = "frozen"
            elif math.isnan(pull):
                status = "no error estimate"
            else:
                status = "pass" if abs(pull) < PULL_LIMIT else "FAIL"
            check.update(
                exact=exact.value,
                exact_err=exact.error,
                pull=pull,
                status=status,
                source=exact.source,
            )
        if refused:
            check["status"] = refused
        out.append(check)
    return pd.DataFrame(out, columns=list(COLUMNS))


def _base(row, observable: str) -> dict:
    """A check row of ``observable`` without an exact value yet."""
    return {
        "observable": observable,
        "group": row.group,
        "lattice": row.lattice,
        "beta": row.beta,
        "sampler": row.sampler,
        "category": row.get("category", row.sampler),
        "role": row.get("role", "main"),
        "nlf": row.nlf,
        "eps": row.eps,
        "measured": row["mean"],
        "measured_err": row.mean_err,
        "exact": math.nan,
        "exact_err": math.nan,
        "pull": math.nan,
        "pull_limit": PULL_LIMIT,
        "status": "no exact value",
        "source": "",
    }


def _lattice(row) -> tuple[int, ...]:
    return tuple(int(n) for n in str(row.lattice).split("x"))


def _key(row) -> tuple:
    """The chain file a row comes from (and its role: one file may be read twice)."""
    return row.get("file"), row.get("role", "main")


def _is_true(value) -> bool:
    return not pd.isna(value) and bool(value)
