"""Exactness checks: every measured plaquette, and for U(1) every ``<Q_Z^2>``, against its exact
value, with the pull.

Any correct sampler -- HMC, or a trained L2HMC with its Metropolis step, however poorly trained --
reproduces the exact plaquette within its statistical error. The pull uses the Gamma-method error
of the mean (autocorrelations included) and the exact value's own uncertainty (round-off for U(1),
the truncation of the strong-coupling series for SU(3)). A check fails when ``|pull| >=
PULL_LIMIT``; with tens of checks per report, 4 keeps false alarms rare (two-sided p ~ 6e-5 each)
while a real bias of a few sigma over many points shows in figure 4. ``<Q_Z^2>`` is checked the
same way against the exact charge-sector distribution: a topological move that broke detailed
balance (wrong acceptance of a 2 pi flux) would bias the sector weights while leaving the
plaquette almost untouched.
"""

from __future__ import annotations

import math

import pandas as pd

from dlhmc.analysis.exact import exact_charge_sq, exact_plaquette

PULL_LIMIT = 4.0

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


def exactness_checks(table: pd.DataFrame) -> pd.DataFrame:
    """Plaquette and charge checks together (column ``observable``)."""
    return pd.concat([plaquette_checks(table), charge_checks(table)], ignore_index=True)


def _checks(
    table: pd.DataFrame, observable: str, exact_value, stuck_files: set | None = None
) -> pd.DataFrame:
    """Rows of ``observable`` against ``exact_value``; rows that are frozen, or come from one of
    ``stuck_files``, get status ``frozen`` (``None``: frozen rows are checked like any other)."""
    out = []
    rows = table[table.observable == observable].sort_values(["beta", "sampler"])
    for _, row in rows.iterrows():
        lattice = tuple(int(n) for n in str(row.lattice).split("x"))
        exact = exact_value(row.group, lattice, float(row.beta))
        check = {
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
        out.append(check)
    return pd.DataFrame(out, columns=list(COLUMNS))


def _is_true(value) -> bool:
    return not pd.isna(value) and bool(value)
