"""The report's opening table: the best of each kind of sampler per beta, in steps and seconds.

One row per experiment, lattice, beta and kind (``chains.KINDS``, in its order, so a new kind
appears here by its line there): the kind's best point (lowest ``N_LF tau_int``, the point of
figure 1), its cost in leapfrog steps, its seconds per independent sample (measured throughput,
hits and networks included) and, for a learned kind, the training seconds behind the model and
the break-even sample count against the same-move baseline's fastest point, all taken from the
comparison table. The charge is ``Q_R`` where recorded (the paper's observable), else ``Q_Z``.
A lower bound (frozen chains) is marked, never printed as a plain number.
"""

from __future__ import annotations

import math

import pandas as pd

from dlhmc.analysis.chains import KINDS
from dlhmc.analysis.report_tables import (
    bound,
    fmt,
    fmt_break_even,
    fmt_err,
    html_table,
    point_text,
)

# The charge the headline quotes, in order of preference.
OBSERVABLES = ("charge_real", "charge")
KEYS = ("experiment", "group", "lattice", "beta")
# Headline column -> the comparison's per-kind column suffix.
FIELDS = {
    "cost_lf": "cost_lf",
    "cost_lf_err": "cost_lf_err",
    "frozen": "frozen",
    "seconds": "seconds",
    "seconds_err": "seconds_err",
    "training_seconds": "training_seconds",
    "break_even": "break_even",
    "break_even_err": "break_even_err",
    "break_even_kind": "break_even_kind",
    "break_even_baseline": "break_even_baseline",
    "file": "file",
}
COLUMNS = (*KEYS, "observable", "kind", "label", "point", *FIELDS)


def headline_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """One row per kind present at each (experiment, group, lattice, beta)."""
    out = []
    for _, rows in comparison.groupby(list(KEYS), sort=True):
        row = _preferred(rows)
        for kind, facts in KINDS.items():
            if pd.isna(row.get(f"{kind}_cost_lf", math.nan)):
                continue
            entry = {key: row[key] for key in (*KEYS, "observable")}
            entry.update(kind=kind, label=facts.label, point=point_text(row, kind))
            for field, suffix in FIELDS.items():
                entry[field] = row.get(f"{kind}_{suffix}", math.nan)
            out.append(entry)
    return pd.DataFrame(out, columns=list(COLUMNS))


def _preferred(rows: pd.DataFrame) -> pd.Series:
    """The comparison row of the first observable of :data:`OBSERVABLES` present."""
    for observable in OBSERVABLES:
        found = rows[rows.observable == observable]
        if len(found):
            return found.iloc[0]
    return rows.iloc[0]


def headline_html(headline: pd.DataFrame) -> str:
    """The opening table of report.html."""
    if headline.empty:
        return "<p>No charge measurements: nothing to compare.</p>"
    header = [
        "lattice",
        "beta",
        "kind",
        "best N_LF, ε",
        "charge",
        "N_LF τ_int",
        "s / indep.",
        "training s",
        "break-even (indep. samples)",
    ]
    rows = []
    for _, r in headline.iterrows():
        b = bound(r.frozen)
        rows.append(
            [
                str(r.lattice),
                fmt(r.beta),
                r.label,
                r.point,
                "Q_R" if r.observable == "charge_real" else "Q_Z",
                fmt_err(r.cost_lf, r.cost_lf_err, b),
                fmt_err(r.seconds, r.seconds_err, b),
                fmt(r.training_seconds) if KINDS[r.kind].baseline else "",
                fmt_break_even(
                    r.break_even, r.break_even_err, r.break_even_kind, r.break_even_baseline
                ),
            ]
        )
    return (
        "<h2>Headline: the best of each kind per beta</h2><p>Best point (lowest N_LF τ_int of "
        "the charge) of each kind of sampler per lattice and beta: its cost in leapfrog steps "
        "(force evaluations, other moves by their fixed count), its measured seconds per "
        "independent sample, and for a learned sampler the training seconds behind it (every "
        "stage) and the independent samples after which they have paid for themselves against "
        "the fastest point of the baseline with the same move; &ge; marks lower bounds (frozen "
        "chains). The tables below give every point.</p>"
        + html_table(header, rows, text_cols=(0, 2, 3, 4, 8))
    )
