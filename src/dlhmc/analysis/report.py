"""The per-experiment report: comparison table, figures, exactness checks and run settings.

One self-contained HTML page (figures embedded as PNG data, PDFs written beside it for print), so
the page can be mailed or archived without its directory. The tables are drawn by
``report_tables`` (lower bounds with ``>=``, failing checks first and marked, not hidden); the
tables and figures written as files are the entries of ``registry``, which the workflow declares
as the outputs of its report rule.
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
from dlhmc.analysis.autocorr import DEFAULT_S, MIN_CHAIN_TAUS
from dlhmc.analysis.bridges import derivative_checks, read_derivatives, read_exchanges
from dlhmc.analysis.chains import ChainSet
from dlhmc.analysis.checks import PULL_LIMIT, exactness_checks
from dlhmc.analysis.figures import save_figure
from dlhmc.analysis.registry import (
    REPORT_FIGURES,
    REPORT_TABLES,
    ReportItem,
    caption,
    resolve,
    table_file,
)
from dlhmc.analysis.report_tables import checks_html, fmt, html_table, move_note, tau_html
from dlhmc.analysis.runs import TrainingRun
from dlhmc.analysis.table import main_rows
from dlhmc.analysis.transfer import transfer_html, transfer_table
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


# Every attribute a chain file must carry, plus the L2HMC and provenance ones when present.
SETTING_ATTRS = (
    *REQUIRED_ATTRS,
    "training_seconds",
    "checkpoint",
    "dlhmc_version",
    "instanton_hits",
    "instanton_size",
    "winding",
    "network",
    "integrator",
)
TEXT_ATTRS = ("group", "sampler", "checkpoint", "network", "integrator")


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
        text_cols = (0, *(2 + SETTING_ATTRS.index(a) for a in TEXT_ATTRS if a in SETTING_ATTRS))
        parts.append("<h3>Chain files</h3>" + html_table(header, rows, text_cols=text_cols))
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


def _table_html(item: ReportItem, available: dict) -> str:
    """A table's section of report.html (empty for a table without one)."""
    return resolve(item.html)(available[item.name]) if item.html else ""


def build_report(
    table: pd.DataFrame,
    chain_sets: Sequence[ChainSet],
    runs: Sequence[TrainingRun],
    experiment: str,
    out_dir: Path,
    derivative_rows: pd.DataFrame | None = None,
    swap_rows: pd.DataFrame | None = None,
) -> Path:
    """Write ``report.html``, the tables (CSV) and the figures (PNG, PDF) of the registry into
    ``out_dir``; ``derivative_rows`` and ``swap_rows`` are the bridges' derivative estimates and
    the replica exchanges' swaps (:func:`dlhmc.analysis.bridges.read_derivatives`,
    :func:`~dlhmc.analysis.bridges.read_exchanges`; none when absent)."""
    out_dir = Path(out_dir)
    if derivative_rows is None:
        derivative_rows = read_derivatives([])
    if swap_rows is None:
        swap_rows = read_exchanges([])
    checks = exactness_checks(table)
    derivative = derivative_checks(derivative_rows)
    if len(derivative):  # the derivative estimates with an exact value, checked by the same rule
        checks = pd.concat([checks, derivative], ignore_index=True) if len(checks) else derivative
    # The inputs the registry's builders name.  The figures show what is compared: beta-transfer
    # rows have a table of their own.
    available = {
        "table": table,
        "chain_sets": chain_sets,
        "runs": runs,
        "checks": checks,
        "main": main_rows(table),
        "main_plaq": checks[(checks.observable == "plaq") & (checks.role == "main")],
        "derivative_rows": derivative_rows,
        "swap_rows": swap_rows,
    }
    for item in REPORT_TABLES:
        available[item.name] = item.build(available)
    pngs = {
        item.name: save_figure(item.build(available), out_dir, item.name)[0]
        for item in REPORT_FIGURES
    }
    for item in REPORT_TABLES:
        with atomic_path(out_dir / table_file(item)) as tmp:
            available[item.name].to_csv(tmp, index=False)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"dlhmc report: {html.escape(experiment)}"
    body = [
        f"<h1>{title}</h1><p>Generated {stamp}.</p>",
        *(_figure_html(item.name, pngs[item.name]) for item in REPORT_FIGURES if item.opening),
        *(_table_html(item, available) for item in REPORT_TABLES if item.opening),
        "<h2>Four-way comparison: learned samplers against the baseline with the same move</h2>",
        "<p>Best point (lowest N_LF τ_int) of each sampler per beta. A learned sampler is compared "
        "with the baseline that has the same topological move: L2HMC with plain HMC, L2HMC with "
        "winding with winding HMC (what the networks add on top of the move). Ratio = cost of the "
        "baseline / cost of the learned sampler (above 1: the learned sampler is cheaper), in "
        "leapfrog steps N_LF τ_int and in seconds per independent sample; &ge; and &le; mark "
        "bounds coming from frozen chain sets. Break-even: independent samples after which the "
        "training time (every stage behind the model) has paid for itself against the point of "
        "the same-move baseline that is fastest in seconds, training seconds / (baseline - "
        "learned seconds per independent sample); never when the learned sampler is not faster "
        "per sample.</p>",
        move_note(table),
        *(_table_html(item, available) for item in REPORT_TABLES if not item.opening),
        transfer_html(transfer_table(table)),
        "<h2>Exactness checks: average plaquette, &lt;Q_Z²&gt;, charge-sector weights and "
        "derivatives in β</h2>",
        checks_html(checks),
        "<h2>Figures</h2>",
        *(_figure_html(item.name, pngs[item.name]) for item in REPORT_FIGURES if not item.opening),
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
