"""Figures against beta: the cost of an independent charge sample (figure 1, the paper's figure 3,
with the paper's own points) and the plaquette with its exact value (figure 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from dlhmc.analysis.chains import CATEGORIES
from dlhmc.analysis.exact import exact_curve
from dlhmc.analysis.figures_style import (
    CATEGORY_STYLE,
    MARKERS,
    label,
    new_figure,
    note,
    offsets,
    points,
    styled,
)
from dlhmc.analysis.paper import PAPER_LATTICE, PAPER_SOURCE, paper_points

# Figure 1's panels: the paper's observable first, the integer charge beside it.
CHARGE_PANELS = (("charge_real", "Q_R"), ("charge", "Q_Z"))
# The paper's points: its HMC in the HMC colour, its trained sampler in the learned one.
PAPER_STYLE = {
    "HMC": {"color": CATEGORY_STYLE["hmc"]["color"], "marker": "x"},
    "trained": {"color": CATEGORY_STYLE["l2hmc"]["color"], "marker": "+"},
}
PAPER_LABEL = "paper, {sampler} (arXiv:2105.03418)"


@styled
def fig_cost_vs_beta(table: pd.DataFrame, comparison: pd.DataFrame) -> Figure:
    """Figure 1: ``N_LF * tau_int`` of ``Q_R`` and ``Q_Z`` against beta for the four categories.

    Per category every grid point (faint) and the best point per beta (line); the paper's
    published 16x16 points on the ``Q_R`` panel whenever a 16x16 lattice is in the table.
    """
    panels = [(obs, name) for obs, name in CHARGE_PANELS if (table.observable == obs).any()]
    fig = new_figure(5.0 + 4.0 * max(len(panels) - 1, 0), 5.0)
    if not panels:
        note(fig.add_subplot(), "no charge measurements in the table")
        return fig
    axes = fig.subplots(1, len(panels), sharex=True, sharey=True, squeeze=False)[0]
    axes[0].set_yscale("log")  # before any limits are set: the panels share it
    paper = PAPER_LATTICE in set(table.lattice.astype(str))
    for ax, (observable, name) in zip(axes, panels, strict=True):
        rows = table[table.observable == observable]
        best = comparison[comparison.observable == observable]
        _cost_panel(ax, rows, best)
        if paper and observable == "charge_real":
            _paper_overlay(ax)
        ax.set_xlabel(r"$\beta$")
        ax.set_title(f"$N_{{LF}}\\,\\tau_{{int}}({name[0]}_{{\\mathbb{{{name[2]}}}}})$")
        bounds = rows.cost_lf[rows.frozen.astype(bool)]
        if len(bounds):  # keep the lower-bound arrows inside the axes
            ax.set_ylim(top=max(ax.get_ylim()[1], 2.5 * float(bounds.max())))
    axes[0].set_ylabel("leapfrog steps per independent sample")
    handles, labels = {}, {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    labels = list(handles)
    bound = Line2D([], [], marker="o", mfc="none", color="0.3", linestyle="none")
    fig.legend(
        [*handles.values(), bound],
        [*labels, "open, arrow: lower bound (frozen)"],
        loc="outside lower center",
        ncol=len(panels) + 1,
    )
    return fig


def _cost_panel(ax, rows: pd.DataFrame, best: pd.DataFrame) -> None:
    betas = np.unique(rows.beta)
    span = 0.06 * (np.ptp(betas) if betas.size > 1 else 1.0)
    present = [c for c in CATEGORIES if (rows.category == c).any()]
    shift = dict(zip(present, offsets(len(present), span), strict=True))
    lattices = sorted(set(best.lattice.astype(str)))
    for category in present:
        style = CATEGORY_STYLE[category]
        grid = rows[rows.category == category]
        points(
            ax,
            grid.beta + shift[category],
            grid.cost_lf,
            grid.cost_lf_err,
            grid.frozen,
            style["color"],
            style["marker"],
            f"{label(category)}: every point",
            alpha=0.3,
        )
        for lattice in lattices:
            line = best[(best.lattice.astype(str) == lattice)].dropna(
                subset=[f"{category}_cost_lf"]
            )
            if line.empty:
                continue
            line = line.sort_values("beta")
            suffix = f" {lattice}" if len(lattices) > 1 else ""
            points(
                ax,
                line.beta + shift[category],
                line[f"{category}_cost_lf"],
                line[f"{category}_cost_lf_err"],
                line[f"{category}_frozen"].astype(bool),
                style["color"],
                style["marker"],
                f"best {label(category)}{suffix}",
                line=True,
                zorder=4,
            )


def _paper_overlay(ax) -> None:
    """The paper's figure 3 (16x16, ``Q_R``): dotted, with markers of their own."""
    for sampler, pts in paper_points().groupby("sampler", sort=False):
        style = PAPER_STYLE.get(sampler, {"color": "0.5", "marker": "*"})
        ax.plot(
            pts.beta,
            pts.cost,
            linestyle=":",
            markersize=9,
            markeredgewidth=2,
            label=PAPER_LABEL.format(sampler=sampler),
            gid="paper",
            zorder=3,
            **style,
        )
    ax.text(0.02, 0.98, PAPER_SOURCE, transform=ax.transAxes, fontsize=7, color="0.3", va="top")


@styled
def fig_plaquette(table: pd.DataFrame, checks: pd.DataFrame) -> Figure:
    """Figure 4: average plaquette against beta, the exact curve, and each point's pull."""
    fig = new_figure(6.5, 5.6)
    plaq = table[table.observable == "plaq"]
    if plaq.empty:
        note(fig.add_subplot(), "no plaquette measurements in the table")
        return fig
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    for (group, lattice), rows in plaq.groupby(["group", "lattice"]):
        betas = np.linspace(rows.beta.min(), rows.beta.max(), 120)
        curve = exact_curve(group, tuple(int(n) for n in lattice.split("x")), betas)
        if curve is not None:
            top.plot(curve[0], curve[1], color="k", lw=1.2, label=f"exact {group} {lattice}")
    keys = sorted(
        {
            (c, int(n), float(e))
            for c, n, e in zip(checks.category, checks.nlf, checks.eps, strict=True)
        },
        key=lambda k: (CATEGORIES.index(k[0]) if k[0] in CATEGORIES else 99, k[1], k[2]),
    )
    for i, (category, nlf, eps) in enumerate(keys):
        rows = checks[
            (checks.category == category) & (checks.nlf == nlf) & np.isclose(checks.eps, eps)
        ].sort_values("beta")
        color = CATEGORY_STYLE.get(category, {"color": "0.5"})["color"]
        marker = MARKERS[i % len(MARKERS)]
        name = f"{label(category)} $N_{{LF}}$={nlf}, $\\epsilon$={eps:.3g}"
        top.errorbar(
            rows.beta,
            rows.measured,
            yerr=rows.measured_err,
            color=color,
            marker=marker,
            linestyle="none",
            capsize=3,
            label=name,
        )
        bottom.plot(rows.beta, rows.pull, color=color, marker=marker, linestyle="none")
    limit = float(checks.pull_limit.iloc[0]) if not checks.empty else 4.0
    for y in (-limit, limit):
        bottom.axhline(y, color="C3", lw=1, linestyle="--")
    bottom.axhline(0, color="k", lw=0.8)
    top.set_ylabel(r"$\langle P \rangle$")
    bottom.set_ylabel("pull")
    bottom.set_xlabel(r"$\beta$")
    top.legend(loc="best", ncol=2 if len(keys) > 4 else 1)
    return fig
