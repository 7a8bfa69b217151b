"""The report's HTML tables: four-way comparison, the paper's points next to ours, exactness
checks and the tau_int table.

Number format, shared by every table: values ``{:.4g}``, errors ``{:.2g}``. Lower bounds are
printed with ``>=`` (never as plain numbers); failing checks are listed first and marked.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import pandas as pd

from dlhmc.analysis.chains import CATEGORIES, CATEGORY_LABELS, SAMPLER_KINDS
from dlhmc.analysis.checks import PULL_LIMIT, UNCHECKED
from dlhmc.analysis.comparison import RATIOS
from dlhmc.analysis.paper import PAPER_LATTICE, PAPER_SOURCE, paper_points
from dlhmc.analysis.table import DIVERGED_LIMIT, beta_key, sector_charge

RATIO_PREFIX = {"lower bound": "≥ ", "upper bound": "≤ ", "value": ""}
OBSERVABLE_NAMES = {"charge": "Q_Z (integer charge)", "charge_real": "Q_R (real-valued charge)"}
STATUS_CLASS = {
    "out of range": "fail",
    "diverged": "fail",
    "FAIL": "fail",
    "no error estimate": "warn",
    "frozen": "warn",
}
# Statuses that refuse a verdict: a mean no sampler can produce, a chain set that diverged.
REFUSED = ("out of range", "diverged")
CHECK_NAMES = {"plaq": "plaquette", "charge_sq": "<Q_Z²>"}
# The ratio shown on a learned category's row: against the baseline with the same move.
RATIO_OF = {learned: name for name, (learned, _) in RATIOS.items()}
# Beta-transfer rows (a model of the beta below) beside the main ones in the checks and tau_int.
ROLE_LABELS = {
    "transfer_none": " [transfer]",
    "transfer_retrained": " [transfer, retrained]",
    "transfer_volume": " [transfer, not fine-tuned]",
}


def fmt(value) -> str:
    """A value in the report's format; blank when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, str)):
        return str(value)
    return f"{value:.4g}"


def fmt_err(value, error, prefix: str = "") -> str:
    """``value ± error`` (``prefix`` is ``>= `` for lower bounds); blank when missing."""
    text = fmt(value)
    if not text:
        return ""
    if error is not None and not (isinstance(error, float) and math.isnan(error)):
        text += f" ± {error:.2g}"
    return prefix + text


def fmt_to_error(value, error, extra_digits: int = 0) -> str:
    """A value with the decimals its error resolves (two significant digits of the error).

    For the exactness checks, where ``{:.4g}`` would hide the digits a pull is made of.
    """
    if pd.isna(value):
        return ""
    if pd.isna(error) or not error > 0:
        return f"{value:.10g}"
    decimals = max(0, 1 - math.floor(math.log10(error))) + extra_digits
    return f"{value:.{decimals}f}"


def bound(frozen) -> str:
    """``>= `` for a lower bound; ``frozen`` may be missing (NaN) where a side has no data."""
    return "≥ " if not pd.isna(frozen) and bool(frozen) else ""


def html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], classes=None, text_cols=()
) -> str:
    out = ["<table><tr>", *(f"<th>{html.escape(h)}</th>" for h in header), "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = (
            f'<td class="text">{html.escape(c)}</td>'
            if j in text_cols
            else f"<td>{html.escape(c)}</td>"
            for j, c in enumerate(row)
        )
        out.append(f"<tr{cls}>{''.join(cells)}</tr>")
    out.append("</table>")
    return "\n".join(out)


def fmt_ratio(value, error, kind) -> str:
    """A ratio with its kind: ``≥``/``≤`` for bounds, the kind itself when undetermined."""
    if pd.isna(kind):
        return ""
    prefix = RATIO_PREFIX.get(kind)
    return kind if prefix is None else fmt_err(value, error, prefix)


def fmt_break_even(value, error, kind, baseline) -> str:
    """Samples until training has paid off, against the named baseline."""
    if pd.isna(kind):
        return ""
    against = f" (vs {CATEGORY_LABELS.get(baseline, baseline)})"
    if kind in ("never", "undetermined"):
        return kind + against
    return fmt_err(value, error, RATIO_PREFIX[kind]) + against


def sampler_label(row) -> str:
    """The sampler's category, marked when the row is a beta-transfer one."""
    role = row.get("role", "main")
    return CATEGORY_LABELS.get(row.category, row.sampler) + ROLE_LABELS.get(role, "")


def point_text(row, category: str) -> str:
    """The best point's settings: ``N_LF, eps``, hits of winding HMC, network and winding; a
    flow's coupling layers (flow IMH has no integrator: its file's ``N_LF`` and ``eps`` are 1)."""
    c = f"{category}_"
    if category in ("pt", "trex"):  # replica exchange: HMC at every rung, T-REX with bridges
        layers = row.get(c + "flow_layers", math.nan)
        text = f"{int(row[c + 'nlf'])}, {row[c + 'eps']:.4g}; beta ladder"
        if category == "trex" and not pd.isna(layers):
            text += f", bridges of {int(layers)} layers"
        return text
    if category in SAMPLER_KINDS:
        layers = row.get(c + "flow_layers", math.nan)
        text = "flow" if pd.isna(layers) else f"flow, {int(layers)} layers"
        if category == "flow_hmc":
            text = f"{int(row[c + 'nlf'])}, {row[c + 'eps']:.4g}; {text}"
        return text
    text = f"{int(row[c + 'nlf'])}, {row[c + 'eps']:.4g}"
    if category == "whmc":
        size = int(row[c + "instanton_size"])
        text += f"; {int(row[c + 'instanton_hits'])} hits, size {size or 'lattice'}"
    if category in RATIO_OF:
        network = row[c + "network"]
        text += f"; {network if isinstance(network, str) else 'dense'}"
        if category == "l2hmc_w":
            text += f", winding {int(row[c + 'winding'])}"
    return text


def comparison_html(comp: pd.DataFrame) -> str:
    """One table per charge observable; four rows (the categories present) per beta.

    The amortized columns appear only when a number of samples to amortize over was given.
    """
    if comp.empty:
        return "<p>No charge measurements: nothing to compare.</p>"
    amortized = any(comp[f"{c}_seconds_amortized"].notna().any() for c in RATIO_OF)
    keep = slice(None) if amortized else slice(0, -2)
    header = [
        "lattice",
        "beta",
        "sampler",
        "best N_LF, ε",
        "N_LF τ_int",
        "s / indep.",
        "vs. same-move baseline",
        "vs. baseline (s)",
        "break-even (indep. samples)",
        "s / indep. amortized",
        "vs. baseline (amort.)",
    ][keep]
    parts = []
    for observable in sorted(comp.observable.unique(), key=list(OBSERVABLE_NAMES).index):
        rows = []
        block = comp[comp.observable == observable].sort_values(["lattice", "beta"])
        for _, r in block.iterrows():
            for category in CATEGORIES:
                if pd.isna(r[f"{category}_cost_lf"]):
                    continue
                rows.append(_comparison_row(r, category)[keep])
        parts.append(f"<h3>{html.escape(OBSERVABLE_NAMES[observable])}</h3>")
        parts.append(html_table(header, rows, text_cols=(0, 2, 3, 8)))
    return "\n".join(parts)


def _comparison_row(r, category: str) -> list[str]:
    c = f"{category}_"
    b = bound(r[c + "frozen"])
    ratios = ["", "", "", ""]
    if category in RATIO_OF:
        p = f"ratio_{RATIO_OF[category]}"
        kind = r[p + "_kind"]
        ratios = [
            fmt_ratio(r[p], r[p + "_err"], kind),
            fmt_ratio(r[p + "_seconds"], r[p + "_seconds_err"], kind),
            fmt_break_even(
                r[c + "break_even"],
                r[c + "break_even_err"],
                r[c + "break_even_kind"],
                r[c + "break_even_baseline"],
            ),
            fmt_ratio(r[p + "_seconds_amortized"], r[p + "_seconds_amortized_err"], kind),
        ]
    return [
        r.lattice,
        fmt(r.beta),
        CATEGORY_LABELS[category],
        point_text(r, category),
        fmt_err(r[c + "cost_lf"], r[c + "cost_lf_err"], b),
        fmt_err(r[c + "seconds"], r[c + "seconds_err"], b),
        ratios[0],
        ratios[1],
        ratios[2],
        fmt_err(r[c + "seconds_amortized"], None, b),
        ratios[3],
    ]


def paper_html(comp: pd.DataFrame) -> str:
    """Our best points next to the paper's figure 3 (16x16, ``N_LF tau_int`` of ``Q_R``)."""
    ours = comp[(comp.lattice.astype(str) == PAPER_LATTICE) & (comp.observable == "charge_real")]
    if ours.empty:
        return ""
    paper = paper_points().pivot(index="beta", columns="sampler", values="cost")
    header = ["beta", "paper: HMC", "paper: trained"]
    header += [f"ours: {CATEGORY_LABELS[c]}" for c in CATEGORIES]
    rows = []
    for beta in sorted(set(paper.index) | set(ours.beta)):
        mine = ours[beta_key(ours.beta) == float(f"{float(beta):.10g}")]
        cells = [fmt(float(beta))]
        cells += [fmt(paper.loc[beta, s]) if beta in paper.index else "" for s in paper.columns]
        for c in CATEGORIES:
            r = mine.iloc[0] if len(mine) else None
            cells.append(
                ""
                if r is None
                else fmt_err(r[f"{c}_cost_lf"], r[f"{c}_cost_lf_err"], bound(r[f"{c}_frozen"]))
            )
        rows.append(cells)
    return (
        f"<p>N_LF τ_int of Q_R on {PAPER_LATTICE}, ours against the published points "
        f"({html.escape(PAPER_SOURCE)}).</p>" + html_table(header, rows)
    )


def comparison_sections(comp: pd.DataFrame) -> str:
    """The comparison table's part of report.html: the four-way tables, then the paper's points."""
    return comparison_html(comp) + "\n" + paper_html(comp)


def move_note(table: pd.DataFrame) -> str:
    """Say how the instanton hits of winding HMC are counted in leapfrog steps."""
    if not (table.category == "whmc").any():
        return ""
    return (
        "<p>Winding HMC: a trajectory costs its force evaluations plus its instanton hits, each "
        "counted as P / V leapfrog steps (the P plaquettes whose action a hit evaluates, W² for a "
        "W × W patch and V for the delocalized instanton, against the V plaquettes of one force "
        "evaluation), plus one force evaluation after each trajectory in which a hit was "
        "accepted. A fixed count, not a measured time, so the same chains cost the same on any "
        "machine; the seconds columns carry the hits' measured time.</p>"
    )


def check_name(observable: str) -> str:
    """The quantity a check row compares: plaquette, ``<Q_Z²>`` or a sector weight."""
    q = sector_charge(observable)
    if q is not None:
        return f"P(|Q_Z| = {q})"
    return CHECK_NAMES.get(observable, observable)


def checks_html(checks: pd.DataFrame) -> str:
    """Every check, failing first; sector weights that were not checked (frozen charge or
    chains too short for the sector) are counted above the table, not listed: they carry no
    verdict, and at large beta they would outnumber the rest."""
    if checks.empty:
        return "<p>No plaquette or charge measurements.</p>"
    sector = checks.observable.map(sector_charge).notna()
    unchecked = sector & checks.status.isin(UNCHECKED)
    n_sectors = int(unchecked.sum())
    order = {"out of range": 0, "diverged": 0, "FAIL": 0, "no error estimate": 1, "frozen": 2,
             "pass": 3, "no exact value": 4}  # fmt: skip
    checks = checks[~unchecked].sort_values("status", key=lambda s: s.map(order), kind="stable")
    n_refused = int(checks.status.isin(REFUSED).sum())
    n_fail = int((checks.status == "FAIL").sum())
    n_pass = int((checks.status == "pass").sum())
    n_none = int((checks.status == "no exact value").sum())
    n_frozen = int((checks.status == "frozen").sum())
    bad = "bad" if n_fail or n_refused else ""
    summary = (
        f'<p class="{bad}">{n_pass} of {len(checks) - n_none - n_frozen} '
        f"checks with an exact value pass, {n_fail} FAIL (|pull| &ge; {PULL_LIMIT:g}); "
        f"{n_refused} refused (a mean outside its physical range, or a chain set whose "
        "trajectories diverged: no verdict on a sampler that did not sample); "
        f"{n_frozen} not checked (frozen charge: no error estimate); {n_none} without an "
        f"exact value; {n_sectors} sector weights P(|Q_Z| = q) not checked and not listed "
        "(frozen charge, or chains too short to visit the sector often enough).</p>"
    )
    header = [
        "status",
        "observable",
        "group",
        "lattice",
        "beta",
        "sampler",
        "N_LF",
        "ε",
        "measured",
        "exact",
        "pull",
        "exact value from",
    ]
    rows, classes = [], []
    for _, c in checks.iterrows():
        rows.append(
            [
                c.status,
                check_name(c.observable),
                c.group,
                c.lattice,
                fmt(c.beta),
                sampler_label(c),
                fmt(c.nlf),
                fmt(c.eps),
                f"{fmt_to_error(c.measured, c.measured_err)} ± {c.measured_err:.2g}",
                fmt_to_error(c.exact, c.measured_err, extra_digits=1)
                + (f" ± {c.exact_err:.2g}" if c.exact_err > 0 else ""),
                fmt(c.pull),
                c.source,
            ]
        )
        classes.append(STATUS_CLASS.get(c.status, ""))
    return summary + html_table(header, rows, classes, text_cols=(0, 1, 2, 5, 11))


def tau_html(table: pd.DataFrame) -> str:
    header = [
        "sampler",
        "beta",
        "N_LF",
        "ε",
        "observable",
        "mean",
        "τ_int",
        "τ_int (free mean)",
        "τ_int (pyerrors)",
        "N_LF τ_int",
        "s / indep.",
        "accept",
        "diverged",
        "chains × traj",
        "W",
        "lower bound because",
    ]
    rows, classes = [], []
    for _, r in table.sort_values(["observable", "beta", "category", "nlf", "eps"]).iterrows():
        b = bound(r.frozen)
        rows.append(
            [
                sampler_label(r) + _move(r),
                fmt(r.beta),
                fmt(r.nlf),
                fmt(r.eps),
                r.observable + (" (mean 0)" if not pd.isna(r.known_mean) else ""),
                fmt_err(r["mean"], r.mean_err),
                fmt_err(r.tau_int, r.tau_int_err, b),
                fmt_err(r.tau_int_free_mean, r.tau_int_free_mean_err, b),
                fmt_err(r.tau_int_pyerrors, r.tau_int_pyerrors_err),
                fmt_err(r.cost_lf, r.cost_lf_err, b),
                fmt_err(r.seconds_per_indep, None, b),
                fmt(r.accept_rate),
                fmt(r.divergent_rate) if r.get("divergent_rate", 0) > 0 else "",
                f"{r.n_chains} × {r.n_traj}",
                fmt(r.window),
                "" if pd.isna(r.frozen_reason) else str(r.frozen_reason),
            ]
        )
        diverged = r.get("divergent_rate", 0) >= DIVERGED_LIMIT
        classes.append("fail" if diverged else "warn" if r.frozen else "")
    return html_table(header, rows, classes, text_cols=(0, 4, 15))


def _move(r) -> str:
    """Settings that tell samplers of one category apart, for the tau_int table."""
    if r.category == "whmc":
        accepted = (
            "" if pd.isna(r.instanton_accept_rate) else f", {r.instanton_accept_rate:.2g} acc."
        )
        return (
            f" ({int(r.instanton_hits)} hits, size {int(r.instanton_size) or 'lattice'}{accepted})"
        )
    if r.category == "l2hmc_w":
        return f" (winding {int(r.winding)})"
    return ""
