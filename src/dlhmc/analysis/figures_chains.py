"""Figures drawn from the chains themselves: the charge history of the best sampler of each
category (figure 2, the paper's figure 4) and the learned sampler's per-layer diagnostics
(figure 3, the paper's figure 5)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dlhmc.analysis.chains import CATEGORIES, LEARNED, ChainSet
from dlhmc.analysis.figures_style import (
    CATEGORY_STYLE,
    beta_colors,
    label,
    new_figure,
    note,
    styled,
)

LAYER_VARIABLES = ("lf_plaq_dev", "lf_energy", "lf_charge_real")
LAYER_LINESTYLE = {"l2hmc": "-", "l2hmc_w": "--"}


def history_sets(
    comparison: pd.DataFrame, chain_sets: Sequence[ChainSet]
) -> tuple[float, dict[str, ChainSet]] | None:
    """The largest beta where the best point of a learned category and of a baseline have chain
    files; returns that beta and the chain file of every category's best point there."""
    by_path = {Path(cs.path).resolve(): cs for cs in chain_sets}
    rows = comparison[comparison.observable == "charge"].sort_values("beta", ascending=False)
    for _, row in rows.iterrows():
        files = {c: row[f"{c}_file"] for c in CATEGORIES if not pd.isna(row[f"{c}_file"])}
        found = {
            c: by_path[Path(f).resolve()] for c, f in files.items() if Path(f).resolve() in by_path
        }
        if set(found) & set(LEARNED) and set(found) - set(LEARNED):
            return float(row.beta), found
    return None


@styled
def fig_charge_history(comparison: pd.DataFrame, chain_sets: Sequence[ChainSet]) -> Figure:
    """Figure 2: ``Q_Z`` against trajectory along one chain of each category's best point.

    As the paper's figure 4 (HMC black, trained blue), one panel per category at the largest
    beta where a learned sampler and a baseline both have chain files.
    """
    found = history_sets(comparison, chain_sets)
    if found is None:
        fig = new_figure(6.5, 3.0)
        note(
            fig.add_subplot(),
            "no beta with chain files of both a learned sampler\nand a baseline (best points)",
        )
        return fig
    beta, sets = found
    fig = new_figure(6.5, 1.2 + 1.5 * len(sets))
    axes = fig.subplots(len(sets), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    for ax, (category, cs) in zip(axes, sets.items(), strict=True):
        q = cs.values("charge")[0]
        ax.plot(
            np.arange(q.size),
            q,
            drawstyle="steps-post",
            lw=0.9,
            color=CATEGORY_STYLE[category]["color"],
        )
        ax.set_title(f"{label(category)}: {_settings(cs)}", fontsize=9, loc="left")
        ax.set_ylabel(r"$Q_{\mathbb{Z}}$")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"$\\beta$ = {beta:g}, {next(iter(sets.values())).lattice_label}, chain 0")
    axes[-1].set_xlabel("trajectory (MC step)")
    return fig


def _settings(cs: ChainSet) -> str:
    text = f"$N_{{LF}}$={cs.nlf}, $\\epsilon$={cs.eps:.3g}"
    if cs.instanton_hits:
        text += f", {cs.instanton_hits} hits (size {cs.instanton_size or 'L'})"
    if cs.sampler != "hmc":
        text += f", {cs.network} network" + (f", winding {cs.winding}" if cs.winding else "")
    return text


@styled
def fig_layer_diagnostics(chain_sets: Sequence[ChainSet]) -> Figure:
    """Figure 3: the paper's figure 5 -- (a) plaquette deviation, (b) ``H - sum log|J|`` and
    (c) ``Q_R`` against leapfrog layer, averaged over chains, one line per learned chain file."""
    sets = sorted(
        (cs for cs in chain_sets if set(LAYER_VARIABLES) <= set(cs.data.variables)),
        key=lambda cs: (cs.category, cs.beta, str(cs.path)),
    )
    fig = new_figure(9.0, 3.4)
    if not sets:
        note(fig.add_subplot(), "no per-layer diagnostics (lf_*) in the chain files")
        return fig
    axes = fig.subplots(1, 3, sharex=True)
    colors = beta_colors([cs.beta for cs in sets])
    categories = {cs.category for cs in sets}
    for cs in sets:
        layer = np.arange(cs.data.sizes["lf"])
        energy = np.asarray(cs.data["lf_energy"].values, dtype=float)
        series = (
            cs.data["lf_plaq_dev"].values,
            energy - energy[0],
            cs.data["lf_charge_real"].values,
        )
        name = f"$\\beta$={cs.beta:g}" + (f" {label(cs.category)}" if len(categories) > 1 else "")
        for ax, values in zip(axes, series, strict=True):
            ax.plot(
                layer,
                values,
                marker="o",
                markersize=4,
                color=colors[cs.beta],
                linestyle=LAYER_LINESTYLE.get(cs.category, ":"),
                label=name,
            )
    references = sorted(
        {str(cs.attr("lf_plaq_reference")) for cs in sets if cs.attr("lf_plaq_reference")}
    )
    if references:
        fig.suptitle(f"$P_{{ref}}$: {', '.join(references)}", fontsize=8)
    axes[0].set_title("(a) plaquette deviation", fontsize=9)
    axes[0].set_ylabel(r"$\langle P\rangle - P_{ref}$")
    axes[1].set_title(r"(b) $\mathcal{H} - \sum\log|\mathcal{J}|$ (minus layer 0)", fontsize=9)
    axes[2].set_title(r"(c) $Q_{\mathbb{R}}$", fontsize=9)
    for ax in axes:
        ax.set_xlabel("leapfrog layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # The energy panel starts at 0 for every line, so its upper left stays free for the legend.
    axes[1].legend(loc="upper left", ncol=2 if len(sets) > 4 else 1)
    return fig
