"""Beta transfer: what a model trained at the beta below costs at this beta, as it is and after a
short retraining, against the ladder's own model (the paper's claim that models trained at
smaller couplings need only minimal retraining at larger ones).

At every beta of a ladder above the first the workflow samples with three models of one kind:
the ladder's (role ``main``: trained at this beta for the full steps, starting from the model of
the beta below), the model of the beta below unchanged (``transfer_none``) and that model
retrained here for a fraction of the steps (``transfer_retrained``). The Metropolis test makes all
three exact, so they differ only in cost. Each transferred model is compared with the ladder's by
``ratio = cost_transferred / cost_ladder`` of ``N_LF * tau_int`` (1: the transfer loses nothing,
above 1: the full training at this beta paid off). A frozen transferred model makes the ratio a
lower bound, a frozen ladder model an upper bound, both frozen leave it undetermined (as in the
comparison). Training seconds are the wall time behind each model, the ladder below included.
"""

from __future__ import annotations

import html

import pandas as pd

from dlhmc.analysis.chains import CATEGORY_LABELS
from dlhmc.analysis.comparison import CHARGES, ratio_kind
from dlhmc.analysis.costs import ratio_with_error
from dlhmc.analysis.report_tables import (
    OBSERVABLE_NAMES,
    bound,
    fmt,
    fmt_err,
    fmt_ratio,
    html_table,
)
from dlhmc.analysis.table import beta_key

KEYS = ("experiment", "group", "lattice", "beta", "category", "observable")
# Model -> role of its rows in the tau_int table.
MODELS = {"ladder": "main", "none": "transfer_none", "retrained": "transfer_retrained"}
MODEL_LABELS = {
    "ladder": "ladder model (trained here)",
    "none": "model of the beta below, not retrained",
    "retrained": "model of the beta below, retrained",
}
# Per-model columns: transfer column suffix -> tau-table column.
MODEL_FIELDS = {
    "cost_lf": "cost_lf",
    "cost_lf_err": "cost_lf_err",
    "frozen": "frozen",
    "seconds": "seconds_per_indep",
    "seconds_err": "seconds_per_indep_err",
    "training_seconds": "training_seconds",
    "training_steps": "training_steps",
    "train_beta": "train_beta",
    "file": "file",
}
TRANSFERRED = ("none", "retrained")
COLUMNS = (
    *KEYS,
    *(f"{m}_{f}" for m in MODELS for f in MODEL_FIELDS),
    *(f"ratio_{m}{f}" for m in TRANSFERRED for f in ("", "_err", "_kind")),
)


def transfer_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, group, lattice, beta, learned category, charge) with transfer
    rows: the cheapest ladder, untransferred and retrained model there and the two ratios."""
    if "role" not in table.columns:
        return pd.DataFrame(columns=list(COLUMNS))
    rows = table[table.observable.isin(CHARGES)].copy()
    rows["beta"] = beta_key(rows["beta"])
    rows["lattice"] = rows["lattice"].astype(str)
    rows["role"] = rows["role"].fillna("main")
    roles = [MODELS[m] for m in TRANSFERRED]
    out = []
    for key, group in rows.groupby(list(KEYS), sort=True):
        if not group.role.isin(roles).any():
            continue
        out.append(_transfer_row(dict(zip(KEYS, key, strict=True)), group))
    return pd.DataFrame(out, columns=list(COLUMNS))


def _cheapest(rows: pd.DataFrame) -> pd.Series | None:
    points = rows[rows.cost_lf.notna()]
    return None if points.empty else points.loc[points.cost_lf.idxmin()]


def _transfer_row(keys: dict, group: pd.DataFrame) -> dict:
    row = dict(keys)
    best = {model: _cheapest(group[group.role == role]) for model, role in MODELS.items()}
    for model, point in best.items():
        if point is not None:
            for field, column in MODEL_FIELDS.items():
                row[f"{model}_{field}"] = point[column]
            row[f"{model}_frozen"] = bool(point.frozen)
    ladder = best["ladder"]
    for model in TRANSFERRED:
        point = best[model]
        if point is None or ladder is None:
            continue
        kind = ratio_kind(bool(point.frozen), bool(ladder.frozen))
        row[f"ratio_{model}_kind"] = kind
        if kind != "undetermined":
            row[f"ratio_{model}"], row[f"ratio_{model}_err"] = ratio_with_error(
                point.cost_lf, point.cost_lf_err, ladder.cost_lf, ladder.cost_lf_err
            )
    return row


def transfer_html(transfer: pd.DataFrame) -> str:
    """One table per charge observable, three rows (the models present) per volume and beta;
    empty when the experiment has no beta-transfer files."""
    if transfer.empty:
        return ""
    header = [
        "lattice",
        "beta",
        "sampler",
        "model",
        "trained at beta",
        "training steps",
        "training s",
        "N_LF τ_int",
        "s / indep.",
        "vs. ladder model",
    ]
    parts = [
        "<h2>Beta transfer: the model of the beta below, as it is and briefly retrained</h2>",
        "<p>At every beta above the first, the cost of the model trained at the beta below, "
        "sampled here without retraining and after retraining here for a fraction of the "
        "ladder's steps, next to the ladder's own model (trained here for the full steps, "
        "starting from the same model). Training steps are those of the model's own run; "
        "training seconds are the wall time behind the model, the ladder below included. Ratio "
        "= cost of the transferred model / cost of the ladder model in N_LF τ_int (1: the "
        "transfer loses nothing; above 1: the full training paid off); &ge; and &le; mark bounds "
        "coming from frozen chain sets. These models stay out of the comparison above.</p>",
    ]
    for observable in sorted(transfer.observable.unique(), key=list(OBSERVABLE_NAMES).index):
        block = transfer[transfer.observable == observable].sort_values(["lattice", "beta"])
        rows = [
            _html_row(r, model)
            for _, r in block.iterrows()
            for model in MODELS
            if not pd.isna(r[f"{model}_cost_lf"])
        ]
        parts.append(f"<h3>{html.escape(OBSERVABLE_NAMES[observable])}</h3>")
        parts.append(html_table(header, rows, text_cols=(0, 2, 3)))
    return "\n".join(parts)


def _html_row(r, model: str) -> list[str]:
    m = f"{model}_"
    b = bound(r[m + "frozen"])
    ratio = ""
    if model in TRANSFERRED:
        p = f"ratio_{model}"
        ratio = fmt_ratio(r[p], r[p + "_err"], r[p + "_kind"])
    steps = r[m + "training_steps"]
    return [
        str(r.lattice),
        fmt(r.beta),
        CATEGORY_LABELS.get(r.category, r.category),
        MODEL_LABELS[model],
        fmt(r[m + "train_beta"]),
        "" if pd.isna(steps) else str(int(steps)),
        fmt(r[m + "training_seconds"]),
        fmt_err(r[m + "cost_lf"], r[m + "cost_lf_err"], b),
        fmt_err(r[m + "seconds"], r[m + "seconds_err"], b),
        ratio,
    ]
