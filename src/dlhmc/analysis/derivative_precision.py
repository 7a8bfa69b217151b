"""How much a bridge buys: the error of each derivative estimator, as ratios to the bridge's.

Why a table of its own: the point of a bridge flow between two couplings is precision, not a new
value (every estimator is exact; the derivatives table checks each against the exact
difference).  The figure of merit is the error of the bridge-correlated estimate against the two
it replaces, at the same pair of couplings: independent ensembles (the ensembles at both betas,
errors in quadrature, which grow as 1 / spacing) and reweighting the lower ensemble (the bridge
with the identity map, whose weights degrade with the spacing and the volume).  A ratio above 1
means the bridge is that many times more precise; the square of a ratio is the factor in
configurations.  Each estimate's configurations are in the row: the independent estimator reads
both ensembles, the other two the lower one only.
"""

from __future__ import annotations

import math

import pandas as pd

from dlhmc.analysis.bridges import OBSERVABLES, derivatives_table
from dlhmc.analysis.report_tables import fmt, html_table

# The estimators the bridge is compared with, then the bridge itself.
BASELINES = ("independent", "reweight")
BRIDGE = "flow"
PRECISION = (
    "group", "lattice", "observable", "beta_from", "beta_to", "spacing",
    *(f"{e}_error" for e in (*BASELINES, BRIDGE)),
    *(f"{e}_over_flow" for e in BASELINES),
    *(f"{e}_configs" for e in (*BASELINES, BRIDGE)),
)  # fmt: skip


def precision_table(derivatives: pd.DataFrame) -> pd.DataFrame:
    """Per volume, observable and pair of couplings: each estimator's error and the ratios
    ``error(independent) / error(flow)`` and ``error(reweight) / error(flow)`` (blank where an
    estimate or its error is missing: a frozen or failed estimate has no ratio to give)."""
    table = derivatives_table(derivatives)
    rows = []
    keys = ["group", "lattice", "observable", "beta_from", "beta_to"]
    for key, pair in table.groupby(keys, sort=False):
        row = dict(zip(keys, key, strict=True))
        row["spacing"] = row["beta_to"] - row["beta_from"]
        by = {r.estimator: r for _, r in pair.iterrows()}
        for e in (*BASELINES, BRIDGE):
            r = by.get(e)
            ok = r is not None and r.status not in ("frozen", "no error estimate")
            row[f"{e}_error"] = float(r.error) if ok else math.nan
            row[f"{e}_configs"] = r.n_configs if r is not None else math.nan
        for e in BASELINES:
            flow = row[f"{BRIDGE}_error"]
            row[f"{e}_over_flow"] = (row[f"{e}_error"] / flow if flow > 0 else math.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(PRECISION))


def precision_html(table: pd.DataFrame) -> str:
    if table.empty:
        return ""
    header = ["lattice", "observable", "β pair", "spacing", "error: independent",
              "reweighting", "bridge", "independent / bridge", "reweighting / bridge"]
    rows = [[
        str(r.lattice), OBSERVABLES.get(r.observable, r.observable),
        f"{r.beta_from:g} → {r.beta_to:g}", fmt(r.spacing), fmt(r.independent_error),
        fmt(r.reweight_error), fmt(r.flow_error), fmt(r.independent_over_flow),
        fmt(r.reweight_over_flow),
    ] for _, r in table.iterrows()]  # fmt: skip
    return (
        "<h3>What the bridge buys: error ratios</h3><p>The error of each derivative estimate "
        "divided by the bridge flow's, at the same pair of betas (above 1: the bridge is more "
        "precise; squared: the factor in configurations). Independent ensembles use the "
        "configurations of both betas, reweighting and the bridge those of the lower one.</p>"
        + html_table(header, rows, text_cols=(0, 1, 2))
    )
