"""The tables and figures `dlhmc report` writes, each named once with its builder and caption.

Three readers share this list: ``dlhmc.analysis.report`` builds and writes every entry and puts
it into report.html, the workflow (``workflow/rules/report.smk``, through ``common.smk``) declares
every file as an output of the report rule with the same caption for ``snakemake --report``,
and ``tests/test_report.py`` checks that each builder exists with the inputs named here.  Adding a
table or a figure is its builder plus one line below (and its caption, ``captions/<name>.rst``).

Torch-free and matplotlib-free: Snakemake imports it while it parses the workflow, so builders are
named by ``module:function`` and imported only when the report is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CAPTIONS_DIR = Path(__file__).resolve().parent / "captions"


@dataclass(frozen=True)
class ReportItem:
    """One table or figure of the report.

    ``name`` is the file stem (``<name>.csv`` for a table, ``<name>.png`` and ``.pdf`` for a
    figure) and the caption's (``captions/<name>.rst``); ``builder`` the ``module:function``
    that makes it from the report's inputs named by ``inputs``, in order (the chain table
    ``table``, ``chain_sets``, training ``runs``, the derived ``checks``, ``main``, ``main_plaq``,
    the bridges' ``derivative_rows`` and the replica exchanges' ``swap_rows``
    (:mod:`dlhmc.analysis.bridges`), and every table built before it, by name); ``html``
    optionally the ``module:function`` that renders a table as its section of report.html
    (figures are embedded with their caption).
    ``opening`` items open report.html, figures before tables, so that the page starts with
    the answer (figure 1 and the headline table); the others follow in this list's order.
    """

    name: str
    builder: str
    inputs: tuple[str, ...]
    html: str | None = None
    opening: bool = False

    def build(self, available: Mapping[str, Any]) -> Any:
        return resolve(self.builder)(*(available[name] for name in self.inputs))


REPORT_TABLES = (
    ReportItem("comparison", "dlhmc.analysis.comparison:comparison_table", ("table",),
               html="dlhmc.analysis.report_tables:comparison_sections"),
    ReportItem("headline", "dlhmc.analysis.headline:headline_table", ("comparison",),
               html="dlhmc.analysis.headline:headline_html", opening=True),
    ReportItem("learners", "dlhmc.analysis.learners:learners_table", ("table",),
               html="dlhmc.analysis.learners:learners_html"),
    ReportItem("tunnelling", "dlhmc.analysis.tunnelling:tunnelling_table", ("table",),
               html="dlhmc.analysis.tunnelling:tunnelling_html"),
    # Bridges and replica exchange (issue 20): derivative estimators, swap acceptance, the top
    # of the ladder against HMC; empty tables where the experiment has neither.
    ReportItem("derivatives", "dlhmc.analysis.bridges:derivatives_table", ("derivative_rows",),
               html="dlhmc.analysis.bridges:derivatives_html"),
    ReportItem("derivative_precision", "dlhmc.analysis.derivative_precision:precision_table",
               ("derivative_rows",), html="dlhmc.analysis.derivative_precision:precision_html"),
    ReportItem("swaps", "dlhmc.analysis.bridges:swaps_table", ("swap_rows",),
               html="dlhmc.analysis.bridges:swaps_html"),
    ReportItem("exchange", "dlhmc.analysis.bridges:exchange_table", ("table",),
               html="dlhmc.analysis.bridges:exchange_html"),
)  # fmt: skip
REPORT_FIGURES = (
    ReportItem("fig1_cost_vs_beta", "dlhmc.analysis.figures:fig_cost_vs_beta",
               ("main", "comparison"), opening=True),
    ReportItem("fig2_charge_history", "dlhmc.analysis.figures:fig_charge_history",
               ("comparison", "chain_sets")),
    ReportItem("fig3_layer_diagnostics", "dlhmc.analysis.figures:fig_layer_diagnostics",
               ("chain_sets",)),
    ReportItem("fig4_plaquette", "dlhmc.analysis.figures:fig_plaquette", ("main", "main_plaq")),
    ReportItem("fig5_training", "dlhmc.analysis.figures:fig_training", ("runs",)),
    ReportItem("fig6_derivatives", "dlhmc.analysis.figures_bridges:fig_derivatives",
               ("derivative_rows",)),
)  # fmt: skip
FIGURE_FORMATS = ("png", "pdf")


def resolve(reference: str) -> Callable:
    """The function a ``module:function`` reference names (imported now, not at parse time)."""
    module, _, function = reference.partition(":")
    return getattr(importlib.import_module(module), function)


def caption_path(name: str) -> Path:
    """The caption file of table or figure ``name`` (reStructuredText, as Snakemake expects)."""
    names = [item.name for item in (*REPORT_TABLES, *REPORT_FIGURES)]
    if name not in names:
        raise ValueError(f"unknown report item {name!r} (expected one of {', '.join(names)})")
    return CAPTIONS_DIR / f"{name}.rst"


def caption(name: str) -> str:
    """The caption of table or figure ``name`` as one line of plain text."""
    return " ".join(caption_path(name).read_text().split())


def table_file(item: ReportItem) -> str:
    return f"{item.name}.csv"


def report_files(out_dir: str) -> list[str]:
    """Everything `dlhmc report` writes into ``out_dir``: the page, the tables, the figures."""
    return [
        f"{out_dir}/report.html",
        *(f"{out_dir}/{table_file(item)}" for item in REPORT_TABLES),
        *(f"{out_dir}/{item.name}.{ext}" for item in REPORT_FIGURES for ext in FIGURE_FORMATS),
    ]
