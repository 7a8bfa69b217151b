"""Names and captions of the report's figures, each written once.

The HTML report (``dlhmc.analysis.report``) and the workflow's ``report(...)`` outputs
(``workflow/rules/report.smk``, via ``common.smk``) both read the captions from the ``.rst``
files beside this module, one per figure.  Neither torch nor matplotlib is imported here, so
Snakemake can import the figure names while it parses the workflow.
"""

from __future__ import annotations

from pathlib import Path

# The figures `dlhmc report` draws, each written as .png and .pdf, in the report's order.
REPORT_FIGURES = (
    "fig1_cost_vs_beta",
    "fig2_charge_history",
    "fig3_layer_diagnostics",
    "fig4_plaquette",
    "fig5_training",
)

CAPTIONS_DIR = Path(__file__).resolve().parent


def caption_path(name: str) -> Path:
    """The caption file of figure ``name`` (reStructuredText, as Snakemake reports expect)."""
    if name not in REPORT_FIGURES:
        raise ValueError(f"unknown figure {name!r} (expected one of {', '.join(REPORT_FIGURES)})")
    return CAPTIONS_DIR / f"{name}.rst"


def caption(name: str) -> str:
    """The caption of figure ``name`` as one line of plain text."""
    return " ".join(caption_path(name).read_text().split())
