"""Every learned sampler of an experiment, one row each: what its network is and what it costs.

The four-way comparison keeps only the best point of each category, so two learners of one
category (a dense and a local network, say) never appear side by side there. Comparing network
families on one budget needs each learner's own row: its network and parameter count, the
volume it was trained on (a local model transferred to a larger volume differs from the volume
it samples), the training seconds behind it (the ladder below included), its acceptance, and
``N_LF * tau_int`` of the charge (``Q_R`` where recorded, else ``Q_Z``) and of the plaquette,
each against the best point of the baseline with the same non-learned move at that volume and
beta (plain HMC for a plain learner, winding HMC for one with the winding layer). Ratios follow
the comparison's rule: ``cost_baseline / cost_learned``, a bound where either side is frozen.

Each row also gives the learner's seconds per independent sample (the chain file's throughput;
a lower bound where frozen) and its break-even sample count against the point of the same-move
baseline that is fastest in seconds, with ``training_seconds`` the wall time of every training
run in the model's ``--init`` chain (``checkpoint.training_seconds_total``): the ladder below
it and, for a fine-tuned model, the run on train.lattice it started from.

A learner on the volume curriculum has two rows on each fine-tuned volume: its fine-tuned model
(role ``main``) and, right below it, the model of train.lattice sampled there unchanged (role
``transfer_volume``), so the table shows what fine-tuning bought on the same baseline.
"""

from __future__ import annotations

import pandas as pd

from dlhmc.analysis.chains import KINDS, LEARNED
from dlhmc.analysis.comparison import best_point, break_even_fields, point_label, ratio_kind
from dlhmc.analysis.costs import ratio_with_error
from dlhmc.analysis.report_tables import (
    bound,
    fmt,
    fmt_break_even,
    fmt_err,
    fmt_ratio,
    html_table,
)
from dlhmc.analysis.runs import learner_name
from dlhmc.analysis.table import beta_key

# Learner name of the ladder's own model (the experiment's `train`).
LADDER = "train"
# Roles of the tau_int table with a row here: the learners' own models and the volume
# curriculum's unchanged transferred models (the beta transfer has its own table).
ROLES = ("main", "transfer_volume")
ROLE_NOTES = {"transfer_volume": " (transfer, not fine-tuned)"}
# Measured quantities per learner: column prefix -> observables in order of preference.
MEASURED = {"charge": ("charge_real", "charge"), "plaq": ("plaq",)}
IDENTITY = (
    "experiment",
    "group",
    "lattice",
    "beta",
    "learner",
    "role",
    "category",
    "network",
    "winding",
    "n_params",
    "train_lattice",
    "nlf",
    "training_seconds",
    "training_steps",
    "accept_rate",
    "ess",
    "file",
)
PER_OBSERVABLE = (
    "observable",
    "cost_lf",
    "cost_lf_err",
    "frozen",
    "seconds",
    "seconds_err",
    "baseline_cost_lf",
    "baseline_cost_lf_err",
    "baseline_frozen",
    "baseline_point",
    "ratio",
    "ratio_err",
    "ratio_kind",
    "break_even",
    "break_even_err",
    "break_even_kind",
    "break_even_baseline",
)
COLUMNS = (*IDENTITY, *(f"{m}_{f}" for m in MEASURED for f in PER_OBSERVABLE))


def learners_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per learned chain file of role ``main`` or ``transfer_volume`` in the tau_int
    table; baselines are the ``main`` rows."""
    rows = table.copy()
    rows["role"] = rows["role"].fillna("main") if "role" in rows.columns else "main"
    rows["beta"] = beta_key(rows["beta"])
    main = rows[rows.role == "main"]
    out = []
    learned = rows[rows.category.isin(LEARNED) & rows.role.isin(ROLES)]
    for (file, role), own in learned.groupby(["file", "role"], sort=False):
        first = own.iloc[0]
        here = main[
            (main.experiment == first.experiment)
            & (main.lattice == first.lattice)
            & (main.beta == first.beta)
        ]
        row = {name: first.get(name) for name in IDENTITY if name in first.index}
        row["learner"] = learner_name(file) or LADDER
        row["role"] = role
        for prefix, observables in MEASURED.items():
            row.update(_measured(prefix, observables, own, here, first))
        out.append(row)
    frame = pd.DataFrame(out, columns=list(COLUMNS))
    return frame.sort_values(["experiment", "lattice", "beta", "learner", "role"], kind="stable")


def _measured(prefix: str, observables, own: pd.DataFrame, here: pd.DataFrame, first: pd.Series):
    """Cost of the learner in the first observable it has, the same-move baseline's, and the
    break-even against that baseline's fastest point."""
    for observable in observables:
        mine = own[own.observable == observable]
        if mine.empty:
            continue
        mine = mine.iloc[0]
        out = {
            f"{prefix}_observable": observable,
            f"{prefix}_cost_lf": mine.cost_lf,
            f"{prefix}_cost_lf_err": mine.cost_lf_err,
            f"{prefix}_frozen": bool(mine.frozen),
            f"{prefix}_seconds": mine.seconds_per_indep,
            f"{prefix}_seconds_err": mine.seconds_per_indep_err,
        }
        baselines = here[here.observable == observable]
        baseline = KINDS[first.category].baseline
        fastest = best_point(baselines, baseline, by="seconds_per_indep")
        out.update(break_even_fields(f"{prefix}_", first.training_seconds, fastest, mine))
        base = best_point(baselines, baseline)
        if base is None:
            return out
        kind = ratio_kind(bool(base.frozen), bool(mine.frozen))
        out.update(
            {
                f"{prefix}_baseline_cost_lf": base.cost_lf,
                f"{prefix}_baseline_cost_lf_err": base.cost_lf_err,
                f"{prefix}_baseline_frozen": bool(base.frozen),
                f"{prefix}_baseline_point": point_label(base),
                f"{prefix}_ratio_kind": kind,
            }
        )
        if kind != "undetermined":
            out[f"{prefix}_ratio"], out[f"{prefix}_ratio_err"] = ratio_with_error(
                base.cost_lf, base.cost_lf_err, mine.cost_lf, mine.cost_lf_err
            )
        return out
    return {}


def learners_html(learners: pd.DataFrame) -> str:
    """The learners table of the report; empty when the experiment has no learned chains."""
    if learners.empty:
        return ""
    header = [
        "lattice",
        "beta",
        "learner",
        "network",
        "winding",
        "parameters",
        "trained on",
        "training s",
        "accept",
        "ESS",
        "N_LF τ_int, charge",
        "vs. same-move baseline",
        "s / indep., charge",
        "break-even (indep. samples)",
        "N_LF τ_int, plaquette",
        "vs. same-move baseline",
    ]
    rows = []
    for _, r in learners.iterrows():
        rows.append(
            [
                str(r.lattice),
                fmt(r.beta),
                str(r.learner) + ROLE_NOTES.get(r.role, ""),
                str(r.network),
                fmt(int(r.winding)),
                "" if pd.isna(r.n_params) else f"{int(r.n_params):,}",
                "" if pd.isna(r.train_lattice) else str(r.train_lattice),
                fmt(r.training_seconds),
                fmt(r.accept_rate),
                "" if pd.isna(r.ess) else fmt(r.ess),
                *_cost_cells(r, "charge"),
                *_seconds_cells(r, "charge"),
                *_cost_cells(r, "plaq"),
            ]
        )
    return (
        "<h2>Learned samplers, one row each</h2><p>Every learned sampler of the experiment "
        "with its network, parameter count, the volume it was trained on and the training "
        "seconds behind it (wall time, every run of its --init chain once: the ladder below "
        "and, for a model fine-tuned on this volume, the one run on the training volume it "
        "started from). A row marked transfer is the training volume's model sampled here "
        "unchanged, below the fine-tuned model of the same learner. Costs are N_LF τ_int of the "
        "charge (Q_R where recorded, else Q_Z) and of the plaquette; ratio = cost of the best "
        "point of the baseline with the same non-learned move (plain HMC for a plain learner, "
        "winding HMC with the winding layer) / cost of the learner; &ge; and &le; mark bounds "
        "coming from frozen chain sets. Seconds per independent sample of the charge, measured "
        "(the chain file's throughput); break-even: independent samples after which the training "
        "seconds have paid for themselves against the same-move baseline's point that is fastest "
        "in seconds.</p>" + html_table(header, rows, text_cols=(0, 2, 3, 6, 12))
    )


def _cost_cells(r: pd.Series, prefix: str) -> list[str]:
    cost = fmt_err(r[f"{prefix}_cost_lf"], r[f"{prefix}_cost_lf_err"], bound(r[f"{prefix}_frozen"]))
    ratio = fmt_ratio(r[f"{prefix}_ratio"], r[f"{prefix}_ratio_err"], r[f"{prefix}_ratio_kind"])
    if ratio and isinstance(r[f"{prefix}_baseline_point"], str):
        ratio += f" ({r[f'{prefix}_baseline_point']})"
    return [cost, ratio]


def _seconds_cells(r: pd.Series, prefix: str) -> list[str]:
    seconds = fmt_err(
        r[f"{prefix}_seconds"], r[f"{prefix}_seconds_err"], bound(r[f"{prefix}_frozen"])
    )
    return [
        seconds,
        fmt_break_even(
            r[f"{prefix}_break_even"],
            r[f"{prefix}_break_even_err"],
            r[f"{prefix}_break_even_kind"],
            r[f"{prefix}_break_even_baseline"],
        ),
    ]
