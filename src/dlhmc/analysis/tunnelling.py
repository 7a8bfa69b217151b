"""The report's table of charge changes: every sampler at every beta, ranked where tau_int is not.

At large beta the charge of every sampler freezes on the chains a pipeline can afford, the
comparison's costs become lower bounds set by the chain length, and a learned sampler that
tunnels ten times as often as HMC looks no different from one that never does. This table counts
what the chains did (:mod:`dlhmc.analysis.charge_moves`): per chain file of the charge ``Q_Z``,
the changes of the integer charge, their equilibrium rate per trajectory, leapfrog-step
equivalents per change, and ``tau_lag1``, the lag-1 bound of ``tau_int`` (close to it where one
slow mode dominates), with ``N_LF tau_lag1`` against the plain HMC point of the same volume and
beta with the lowest one (``ratio_lag1`` = HMC / this, above 1: this sampler is cheaper). The
Gamma method's ``tau_int`` stands beside it, marked where it is a bound.
"""

from __future__ import annotations

import math

import pandas as pd

from dlhmc.analysis.chains import LEARNED, SAMPLER_KINDS
from dlhmc.analysis.costs import ratio_with_error
from dlhmc.analysis.report_tables import bound, fmt, fmt_err, html_table, sampler_label
from dlhmc.analysis.table import beta_key

CHARGE = "charge"
KEYS = ("experiment", "group", "lattice", "beta")
COLUMNS = (
    *KEYS,
    "category",
    "role",
    "sampler",
    "point",
    "nlf",
    "eps",
    "lf_per_traj",
    "accept_rate",
    "charge_events",
    "charge_pairs",
    "tunnel_rate",
    "tunnel_rate_err",
    "lf_per_event",
    "tau_int",
    "tau_int_err",
    "frozen",
    "tau_lag1",
    "tau_lag1_err",
    "cost_lf_lag1",
    "cost_lf_lag1_err",
    "ratio_lag1",
    "ratio_lag1_err",
    "file",
)


def point(r: pd.Series) -> str:
    """The settings that tell points of one kind apart: ``N_LF``, ``eps``, hits, network."""
    text = f"N_LF {int(r.nlf)}, ε {r.eps:.3g}"
    if r.category in SAMPLER_KINDS:
        layers = r.get("flow_layers", math.nan)
        text = f"flow, {int(layers)} layers" if not pd.isna(layers) else "flow"
    if r.get("instanton_hits", 0) > 0:
        text += f", {int(r.instanton_hits)} hits"
    if r.category in LEARNED and isinstance(r.get("network"), str):
        text += f", {r.network}"
    return text


def tunnelling_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per chain file with counted charge changes (2D U(1)), every role; the baseline
    of ``ratio_lag1`` is the ``main`` plain-HMC point with the lowest ``N_LF tau_lag1``."""
    if "tau_lag1" not in table.columns:
        return pd.DataFrame(columns=list(COLUMNS))
    rows = table[(table.observable == CHARGE) & table.tau_lag1.notna()].copy()
    if rows.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    rows["role"] = rows["role"].fillna("main") if "role" in rows.columns else "main"
    rows["beta"] = beta_key(rows.beta)
    rows["lattice"] = rows.lattice.astype(str)
    rows["cost_lf_lag1"] = rows.lf_per_traj * rows.tau_lag1
    rows["cost_lf_lag1_err"] = rows.lf_per_traj * rows.tau_lag1_err
    out = []
    for _, here in rows.groupby(list(KEYS), sort=True):
        hmc = here[(here.category == "hmc") & (here.role == "main")]
        finite = hmc[hmc.cost_lf_lag1 < math.inf]
        best = finite.loc[finite.cost_lf_lag1.idxmin()] if len(finite) else None
        for _, r in here.iterrows():
            entry = {name: r.get(name) for name in COLUMNS if name in r.index}
            entry["sampler"] = sampler_label(r)
            entry["point"] = point(r)
            rate = r.tunnel_rate
            entry["lf_per_event"] = math.inf if rate == 0 else r.lf_per_traj / rate
            entry["ratio_lag1"], entry["ratio_lag1_err"] = (math.nan, math.nan)
            if best is not None and r.cost_lf_lag1 < math.inf:
                entry["ratio_lag1"], entry["ratio_lag1_err"] = ratio_with_error(
                    best.cost_lf_lag1, best.cost_lf_lag1_err, r.cost_lf_lag1, r.cost_lf_lag1_err
                )
            out.append(entry)
    return pd.DataFrame(out, columns=list(COLUMNS))


def tunnelling_html(moves: pd.DataFrame) -> str:
    """The table's section of report.html; empty where no file has an integer charge to count."""
    if moves.empty:
        return ""
    header = ["lattice", "β", "sampler", "point", "acceptance", "charge changes / pairs",
              "changes per trajectory", "LF steps per change", "τ_int(Q_Z) (Gamma)",
              "τ_lag1", "N_LF τ_lag1", "best HMC / this (N_LF τ_lag1)"]  # fmt: skip
    rows = []
    for _, r in moves.iterrows():
        rows.append([
            str(r.lattice), fmt(r.beta), r.sampler, r.point, fmt(r.accept_rate),
            f"{int(r.charge_events)} / {int(r.charge_pairs)}",
            fmt_err(r.tunnel_rate, r.tunnel_rate_err), fmt(r.lf_per_event),
            fmt_err(r.tau_int, r.tau_int_err, bound(r.frozen)),
            fmt_err(r.tau_lag1, r.tau_lag1_err), fmt_err(r.cost_lf_lag1, r.cost_lf_lag1_err),
            fmt_err(r.ratio_lag1, r.ratio_lag1_err),
        ])  # fmt: skip
    return (
        "<h3>Charge changes: what frozen chains still measure</h3><p>Changes of the integer "
        "charge between consecutive trajectories, their rate at equilibrium (per starting sector, "
        "averaged with the exact sector weights; chains as independent clusters for the errors) "
        "and "
        "τ_lag1 = 2⟨Q²⟩/⟨ΔQ²⟩ − 1/2, the integrated autocorrelation time of a charge that "
        "decorrelates by one exponential mode: a lower bound of τ_int for reversible samplers "
        "(HMC, L2HMC), close to it where the acceptance is high and the sector hops dominate "
        "(loose at low acceptance, where runs of rejections correlate the chain), resolved from "
        "the events "
        "where the Gamma method's τ_int (≥: frozen) is only bounded by the chain length. "
        "docs/analysis.md gives the derivation.</p>"
        + html_table(header, rows, text_cols=(0, 2, 3))
    )
