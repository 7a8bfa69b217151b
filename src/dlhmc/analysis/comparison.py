"""Four-way comparison per experiment, lattice, beta and charge observable.

The four categories (``chains.CATEGORIES``): plain HMC, winding HMC (HMC plus instanton hits),
learned without a topological move, learned with a winding layer. A topological move tunnels by
itself, so a learned sampler is measured against the baseline with the same move:
``ratio_learned_vs_hmc`` (plain L2HMC against plain HMC: what training gives without a move) and
``ratio_learned_w_vs_whmc`` (L2HMC with winding against winding HMC: what the networks add on top
of the move). Each ratio is ``cost_baseline / cost_learned`` (above 1: the learned sampler is
cheaper). The flows' two kinds (``flow_imh``, ``flow_hmc``) have no topological move and are
measured against plain HMC (``ratio_flow_imh_vs_hmc``, ``ratio_flow_hmc_vs_hmc``).

The best point of a category is its lowest ``N_LF * tau_int`` (leapfrog-step equivalents, hits of
winding HMC included) at that beta, whatever its flag. If that point is frozen its cost is a
lower bound, and since every other point is worse or a bound itself, the category's cost is at
least that value: a frozen baseline makes the ratio a lower bound, a frozen learned sampler an
upper bound, both frozen leave it undetermined. Seconds are compared at the same best points. A
missing category leaves its cells empty. Only rows of role ``main`` compete: the beta-transfer
files are deliberately less trained models and have their own table (``transfer``).

Break-even (``<learned>_break_even``): training seconds (every stage behind the model, see
``checkpoint.training_seconds_total``) over the saving per independent sample against the point
of the same-move baseline that is fastest in seconds per independent sample (which need not be
its best point in leapfrog steps: a user who pays in seconds runs that one), see
``costs.break_even``; ``<learned>_break_even_baseline`` names that point.
"""

from __future__ import annotations

import math

import pandas as pd

from dlhmc.analysis.chains import CATEGORIES, CATEGORY_LABELS, KINDS, LEARNED
from dlhmc.analysis.costs import break_even, ratio_with_error
from dlhmc.analysis.table import beta_key, main_rows

KEYS = ("experiment", "group", "lattice", "beta")
CHARGES = ("charge", "charge_real")

# name -> (learned category, baseline category with the same move)
RATIOS = {kind.ratio: (name, kind.baseline) for name, kind in KINDS.items() if kind.baseline}

# Per-category columns: comparison column suffix -> tau-table column.
POINT_FIELDS = {
    "nlf": "nlf",
    "eps": "eps",
    "instanton_hits": "instanton_hits",
    "instanton_size": "instanton_size",
    "lf_per_traj": "lf_per_traj",
    "winding": "winding",
    "network": "network",
    "integrator": "integrator",
    "flow_layers": "flow_layers",
    "tau_int": "tau_int",
    "tau_int_err": "tau_int_err",
    "cost_lf": "cost_lf",
    "cost_lf_err": "cost_lf_err",
    "frozen": "frozen",
    "seconds": "seconds_per_indep",
    "seconds_err": "seconds_per_indep_err",
    "seconds_amortized": "seconds_per_indep_amortized",
    "training_seconds": "training_seconds",
    "file": "file",
}
BREAK_EVEN_FIELDS = ("break_even", "break_even_err", "break_even_kind", "break_even_baseline")
RATIO_FIELDS = (
    "",
    "_err",
    "_kind",
    "_seconds",
    "_seconds_err",
    "_seconds_amortized",
    "_seconds_amortized_err",
)

COLUMNS = (
    *KEYS,
    "observable",
    *(f"{c}_n_points" for c in CATEGORIES),
    *(f"{c}_{f}" for c in CATEGORIES for f in POINT_FIELDS),
    *(f"{c}_{f}" for c in LEARNED for f in BREAK_EVEN_FIELDS),
    *(f"ratio_{r}{f}" for r in RATIOS for f in RATIO_FIELDS),
)


def ratio_kind(baseline_frozen: bool, learned_frozen: bool) -> str:
    """What ``cost_baseline / cost_learned`` is when either side is only a lower bound."""
    if baseline_frozen and learned_frozen:
        return "undetermined"
    if baseline_frozen:
        return "lower bound"
    if learned_frozen:
        return "upper bound"
    return "value"


def best_point(rows: pd.DataFrame, category: str, by: str = "cost_lf") -> pd.Series | None:
    """The row of ``category`` with the lowest ``by`` (rows of one beta and observable).

    A frozen row's value is a lower bound; when it is the lowest, the category's value is at
    least that (every other row is larger or a bound itself), so the bound carries over.
    """
    points = rows[(rows.category == category) & rows[by].notna()]
    if points.empty:
        return None
    return points.loc[points[by].idxmin()]


def point_label(point: pd.Series) -> str:
    """A baseline point as the tables name it: kind, ``N_LF``, ``eps`` and the hits."""
    text = f"{CATEGORY_LABELS[point.category]} N_LF {int(point.nlf)}, eps {point.eps:.4g}"
    hits = point.get("instanton_hits", 0)
    if hits > 0:  # NaN (a table without the column) is no hit
        text += f", {int(hits)} hits"
    return text


def break_even_fields(
    prefix: str, training_seconds: float, base: pd.Series | None, learned: pd.Series
) -> dict:
    """``<prefix>break_even``, ``_err``, ``_kind`` and ``_baseline`` of a learned point against
    the baseline point ``base`` (nothing without one)."""
    if base is None:
        return {}
    result = break_even(
        float(training_seconds),
        float(base.seconds_per_indep),
        float(base.seconds_per_indep_err),
        bool(base.frozen),
        float(learned.seconds_per_indep),
        float(learned.seconds_per_indep_err),
        bool(learned.frozen),
    )
    return {
        f"{prefix}break_even": result.samples,
        f"{prefix}break_even_err": result.error,
        f"{prefix}break_even_kind": result.kind or math.nan,
        f"{prefix}break_even_baseline": point_label(base),
    }


def comparison_table(table: pd.DataFrame, observables=CHARGES) -> pd.DataFrame:
    """One row per (experiment, group, lattice, beta) and charge observable of the main rows."""
    rows = main_rows(table)
    rows = rows[rows.observable.isin(observables)].copy()
    rows["beta"] = beta_key(rows["beta"])
    out = []
    for key, group in rows.groupby([*KEYS, "observable"], sort=True):
        out.append(_compare(dict(zip((*KEYS, "observable"), key, strict=True)), group))
    return pd.DataFrame(out, columns=list(COLUMNS))


def _compare(keys: dict, group: pd.DataFrame) -> dict:
    row = dict(keys)
    best = {c: best_point(group, c) for c in CATEGORIES}
    for category, point in best.items():
        row[f"{category}_n_points"] = int((group.category == category).sum())
        if point is not None:
            for field, column in POINT_FIELDS.items():
                row[f"{category}_{field}"] = point.get(column, math.nan)
            row[f"{category}_frozen"] = bool(point.frozen)
    for name, (learned, baseline) in RATIOS.items():
        row.update(_ratios(name, best[baseline], best[learned]))
    for learned in LEARNED:
        if best[learned] is not None:
            fastest = best_point(group, KINDS[learned].baseline, by="seconds_per_indep")
            training = best[learned].get("training_seconds", math.nan)
            row.update(break_even_fields(f"{learned}_", training, fastest, best[learned]))
    return row


def _ratios(name: str, base: pd.Series | None, learned: pd.Series | None) -> dict:
    if base is None or learned is None:
        return {}
    prefix = f"ratio_{name}"
    kind = ratio_kind(bool(base.frozen), bool(learned.frozen))
    out = {f"{prefix}_kind": kind}
    if kind == "undetermined":
        return out
    out[prefix], out[f"{prefix}_err"] = ratio_with_error(
        base.cost_lf, base.cost_lf_err, learned.cost_lf, learned.cost_lf_err
    )
    out[f"{prefix}_seconds"], out[f"{prefix}_seconds_err"] = ratio_with_error(
        base.seconds_per_indep,
        base.seconds_per_indep_err,
        learned.seconds_per_indep,
        learned.seconds_per_indep_err,
    )
    if not pd.isna(learned.seconds_per_indep_amortized):
        # Training time has no statistical error: the amortized cost carries tau_int's error.
        amortized = ratio_with_error(
            base.seconds_per_indep,
            base.seconds_per_indep_err,
            learned.seconds_per_indep_amortized,
            learned.seconds_per_indep_err,
        )
        out[f"{prefix}_seconds_amortized"], out[f"{prefix}_seconds_amortized_err"] = amortized
    return out
