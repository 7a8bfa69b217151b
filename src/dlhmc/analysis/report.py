"""The per-experiment report: comparison table, figures, exactness checks and run settings.

One self-contained HTML page (figures embedded as PNG data, PDFs written beside it for print), so
the page can be mailed or archived without its directory. Lower bounds are printed with ``>=``
(never as plain numbers) and failing checks are listed first and marked, not hidden.

Number format, shared by every table: values ``{:.4g}``, errors ``{:.2g}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from dlhmc import __version__
from dlhmc.analysis import figures
from dlhmc.analysis.autocorr import DEFAULT_S, MIN_CHAIN_TAUS
from dlhmc.analysis.captions import REPORT_FIGURES, caption
from dlhmc.analysis.chains import ChainSet
from dlhmc.analysis.checks import PULL_LIMIT, plaquette_checks
from dlhmc.analysis.comparison import comparison_table
from dlhmc.analysis.runs import TrainingRun
from dlhmc.atomic import atomic_path, write_text
from dlhmc.io import REQUIRED_ATTRS

CSS = """
body { font-family: Helvetica, Arial, sans-serif; max-width: 1100px; margin: 1em auto;
       color: #111; font-size: 11pt; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 9pt; }
th, td { border: 1px solid #999; padding: 2px 6px; text-align: right; }
th { background: #eee; }
td.text { text-align: left; }
tr.fail td { background: #f6c6c6; font-weight: bold; }
tr.warn td { background: #fbe7c0; }
figure { margin: 1em 0; page-break-inside: avoid; }
figure img { max-width: 100%; }
figcaption { font-size: 9pt; }
pre { background: #f6f6f6; padding: 0.5em; font-size: 8pt; overflow-x: auto; }
.bad { color: #a00; font-weight: bold; }
@media print { body { max-width: none; } h2 { page-break-before: auto; } }
"""


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


def _bound(frozen) -> str:
    """``>= `` for a lower bound; ``frozen`` may be missing (NaN) where a side has no data."""
    return "≥ " if not pd.isna(frozen) and bool(frozen) else ""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], classes=None, text_cols=()) -> str:
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


RATIO_PREFIX = {"lower bound": "≥ ", "upper bound": "≤ ", "value": ""}


def comparison_html(comp: pd.DataFrame) -> str:
    if comp.empty:
        return "<p>No charge measurements: nothing to compare.</p>"
    header = [
        "group",
        "lattice",
        "beta",
        "trained sampler",
        "N_LF τ_int (trained)",
        "best HMC N_LF, ε",
        "N_LF τ_int (best HMC)",
        "improvement",
        "s / indep. (trained)",
        "s / indep. (HMC)",
        "improvement (s)",
        "s / indep. amortized",
        "improvement (amort.)",
    ]
    rows = []
    for _, r in comp.iterrows():
        prefix = RATIO_PREFIX.get(r.ratio_kind)
        if prefix is None:
            ratios = [r.ratio_kind] * 3
        else:
            ratios = [
                fmt_err(r.ratio_lf, r.ratio_lf_err, prefix),
                fmt_err(r.ratio_seconds, r.ratio_seconds_err, prefix),
                fmt_err(r.ratio_seconds_amortized, r.ratio_seconds_amortized_err, prefix),
            ]
        hmc_point = "" if pd.isna(r.hmc_nlf) else f"{int(r.hmc_nlf)}, {r.hmc_eps:.4g}"
        rows.append(
            [
                r.group,
                r.lattice,
                fmt(r.beta),
                fmt(r.sampler) if isinstance(r.sampler, str) else "",
                fmt_err(r.trained_cost_lf, r.trained_cost_lf_err, _bound(r.trained_frozen)),
                hmc_point,
                fmt_err(r.hmc_cost_lf, r.hmc_cost_lf_err, _bound(r.hmc_frozen)),
                ratios[0],
                fmt_err(r.trained_seconds, None, _bound(r.trained_frozen)),
                fmt_err(r.hmc_seconds, None, _bound(r.hmc_frozen)),
                ratios[1],
                fmt_err(r.trained_seconds_amortized, None, _bound(r.trained_frozen)),
                ratios[2],
            ]
        )
    return _table(header, rows, text_cols=(0, 3))


def checks_html(checks: pd.DataFrame) -> str:
    if checks.empty:
        return "<p>No plaquette measurements.</p>"
    order = {"FAIL": 0, "no error estimate": 1, "pass": 2, "no exact value": 3}
    checks = checks.sort_values("status", key=lambda s: s.map(order), kind="stable")
    n_fail = int((checks.status == "FAIL").sum())
    n_pass = int((checks.status == "pass").sum())
    n_none = int((checks.status == "no exact value").sum())
    summary = (
        f'<p class="{"bad" if n_fail else ""}">{n_pass} of {len(checks) - n_none} checks with an '
        f"exact value pass, {n_fail} FAIL (|pull| &ge; {PULL_LIMIT:g}); {n_none} without an "
        "exact value.</p>"
    )
    header = [
        "status",
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
                c.group,
                c.lattice,
                fmt(c.beta),
                c.sampler,
                fmt(c.nlf),
                fmt(c.eps),
                f"{fmt_to_error(c.measured, c.measured_err)} ± {c.measured_err:.2g}",
                fmt_to_error(c.exact, c.measured_err, extra_digits=1)
                + (f" ± {c.exact_err:.2g}" if c.exact_err > 0 else ""),
                fmt(c.pull),
                c.source,
            ]
        )
        classes.append({"FAIL": "fail", "no error estimate": "warn"}.get(c.status, ""))
    return summary + _table(header, rows, classes, text_cols=(0, 1, 4, 10))


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
        "chains × traj",
        "W",
        "lower bound because",
    ]
    rows, classes = [], []
    for _, r in table.sort_values(["observable", "beta", "sampler", "nlf", "eps"]).iterrows():
        b = _bound(r.frozen)
        rows.append(
            [
                r.sampler,
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
                f"{r.n_chains} × {r.n_traj}",
                fmt(r.window),
                "" if pd.isna(r.frozen_reason) else str(r.frozen_reason),
            ]
        )
        classes.append("warn" if r.frozen else "")
    return _table(header, rows, classes, text_cols=(0, 4, 14))


# Every attribute a chain file must carry, plus the L2HMC and provenance ones when present.
SETTING_ATTRS = (*REQUIRED_ATTRS, "training_seconds", "checkpoint", "dlhmc_version")


def settings_html(
    chain_sets: Sequence[ChainSet], runs: Sequence[TrainingRun], table: pd.DataFrame
) -> str:
    amortize = table.amortize_samples.dropna()
    parts = [
        "<p>Gamma method (Wolff 2004): chains combined as replicas with the global mean, automatic "
        f"window S = {DEFAULT_S:g}, bias-corrected Gamma; charges with the mean fixed at 0. Lower "
        f"bound when chains are constant, the window does not converge before half a chain, or "
        f"chains are shorter than {MIN_CHAIN_TAUS:g} τ_int. Exactness check fails at |pull| "
        f"&ge; {PULL_LIMIT:g}. Training time amortized over "
        f"{int(amortize.iloc[0]) if len(amortize) else 'no (not requested)'} independent samples."
        f" dlhmc {html.escape(__version__)}.</p>"
    ]
    header = ["file", "chains × traj", *SETTING_ATTRS]
    rows = []
    for cs in sorted(chain_sets, key=lambda c: (c.sampler, c.beta, c.nlf, c.eps)):
        values = [str(cs.path), f"{cs.data.sizes['chain']} × {cs.data.sizes['traj']}"]
        for name in SETTING_ATTRS:
            value = cs.lattice_label if name == "lattice" else cs.attr(name, "")
            values.append(fmt(value) if isinstance(value, float) else str(value))
        rows.append(values)
    if rows:
        parts.append("<h3>Chain files</h3>" + _table(header, rows, text_cols=(0, 2, 5, 13)))
    for run in runs:
        parts.append(f"<h3>Training run {html.escape(str(run.path))}</h3>")
        metrics = run.metrics
        betas = ", ".join(f"{b:g}" for b in sorted(metrics.beta.unique()))
        seconds = fmt(float(metrics.seconds.max()) if len(metrics) else math.nan)
        parts.append(f"<p>{len(metrics)} steps, betas {betas}, {seconds} s.</p>")
        if run.config is not None:
            text = yaml.safe_dump(run.config, sort_keys=False)
            parts.append(f"<pre>{html.escape(text)}</pre>")
    return "\n".join(parts)


def _figure_html(name: str, png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return (
        f'<figure id="{name}"><img alt="{name}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{name}</b> ({html.escape(png.stem)}.pdf beside this page). "
        f"{html.escape(caption(name))}</figcaption></figure>"
    )


def build_report(
    table: pd.DataFrame,
    chain_sets: Sequence[ChainSet],
    runs: Sequence[TrainingRun],
    experiment: str,
    out_dir: Path,
) -> Path:
    """Write ``report.html``, ``comparison.csv`` and the five figures into ``out_dir``."""
    out_dir = Path(out_dir)
    comp = comparison_table(table)
    checks = plaquette_checks(table)
    drawn = {
        "fig1_cost_vs_beta": figures.fig_cost_vs_beta(table, comp),
        "fig2_charge_history": figures.fig_charge_history(comp, chain_sets),
        "fig3_layer_diagnostics": figures.fig_layer_diagnostics(chain_sets),
        "fig4_plaquette": figures.fig_plaquette(table, checks),
        "fig5_training": figures.fig_training(runs),
    }
    pngs = {name: figures.save_figure(fig, out_dir, name)[0] for name, fig in drawn.items()}
    with atomic_path(out_dir / "comparison.csv") as tmp:
        comp.to_csv(tmp, index=False)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"dlhmc report: {html.escape(experiment)}"
    body = [
        f"<h1>{title}</h1><p>Generated {stamp}.</p>",
        "<h2>Trained sampler against the best HMC (topological charge)</h2>",
        "<p>Improvement = cost of the best HMC grid point / cost of the trained sampler (above 1: "
        "the trained sampler is cheaper), in leapfrog steps N_LF τ_int and in seconds per "
        "independent sample; &ge; and &le; mark bounds coming from frozen chain sets.</p>",
        comparison_html(comp),
        "<h2>Exactness checks: average plaquette</h2>",
        checks_html(checks),
        "<h2>Figures</h2>",
        *(_figure_html(name, pngs[name]) for name in REPORT_FIGURES),
        "<h2>Integrated autocorrelation times</h2>",
        tau_html(table),
        "<h2>Settings</h2>",
        settings_html(chain_sets, runs, table),
    ]
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    path = out_dir / "report.html"
    write_text(path, page)
    return path
