"""Figure 6: the derivative in beta of the plaquette and of ``<Q_Z^2>``, three estimators against
the exact values (issue 20, the bridges).

One column per observable (``plaq``, ``q2``), one row per volume.  Each estimate is a finite
difference over a pair of betas and is drawn at the pair's midpoint with its error bar, the three
estimators side by side (independent ensembles grey, reweighting orange, the bridge flow blue);
the exact difference of the same pair is a black cross.  Estimates that ``dlhmc derivative``
flags (a frozen charge, degenerate weights) are hollow: their errors are lower bounds.  The
plaquette panel also draws the exact derivative ``d<cos x_P>/dbeta`` as a curve
(:func:`dlhmc.analysis.exact.exact_derivative`); the charge's exact values cost a sector sum
each, so its panel shows the exact differences only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dlhmc.analysis.bridges import ESTIMATORS, OBSERVABLES
from dlhmc.analysis.exact import exact_derivative_curve
from dlhmc.analysis.figures_style import new_figure, note, offsets, styled

ESTIMATOR_STYLE = {
    "independent": ("0.45", "s"),
    "reweight": ("tab:orange", "^"),
    "flow": ("tab:blue", "o"),
}
# Observables whose exact derivative is cheap enough to draw as a curve (points per curve).
CURVES = {"plaq": 120}
AXIS_LABELS = {"plaq": r"$d\langle \cos x_P\rangle / d\beta$",
               "q2": r"$d\langle Q_Z^2\rangle / d\beta$"}  # fmt: skip


@styled
def fig_derivatives(derivatives: pd.DataFrame) -> Figure:
    """Figure 6 (see the module's docstring)."""
    lattices = sorted(set(derivatives.lattice.astype(str)), key=_volume) if len(derivatives) else []
    if not lattices:
        fig = new_figure(6.5, 3.0)
        note(fig.add_subplot(), "no bridge derivatives (experiment key bridges)")
        return fig
    observables = [o for o in OBSERVABLES if (derivatives.observable == o).any()]
    fig = new_figure(3.4 * max(len(observables), 1), 2.8 * len(lattices))
    axes = np.atleast_2d(fig.subplots(len(lattices), len(observables), squeeze=False))
    for i, lattice in enumerate(lattices):
        for j, observable in enumerate(observables):
            rows = derivatives[(derivatives.lattice.astype(str) == lattice)
                               & (derivatives.observable == observable)]  # fmt: skip
            _panel(axes[i, j], rows, lattice, observable)
    legend = {}
    for ax in axes.flat:  # every label once, from whichever panel has it (flagged ones may not)
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncol=3,
               fontsize="small")
    return fig


def _flagged(rows: pd.DataFrame) -> pd.Series:
    """Estimates that ``dlhmc derivative`` flags (``frozen``: a frozen charge, or weights too
    degenerate for an error), drawn hollow: their error bars are lower bounds, and a point far
    from the curve is then no failure."""
    if "frozen" not in rows:
        return pd.Series(False, index=rows.index)
    return rows.frozen.fillna(0).astype(bool)


def _volume(label: str) -> int:
    return int(np.prod([int(n) for n in label.split("x")]))


def _panel(ax, rows: pd.DataFrame, lattice: str, observable: str) -> None:
    mid = (rows.beta_from.astype(float) + rows.beta_to.astype(float)) / 2
    width = float((rows.beta_to - rows.beta_from).min()) if len(rows) else 1.0
    if observable in CURVES and len(rows):
        group = str(rows.group.iloc[0])
        shape = tuple(int(n) for n in lattice.split("x"))
        grid = np.linspace(rows.beta_from.min(), rows.beta_to.max(), CURVES[observable])
        curve = exact_derivative_curve(group, shape, grid, observable)
        if curve is not None:
            ax.plot(*curve, color="black", lw=1.2, label="exact derivative")
    exact = rows.dropna(subset=["exact"]).drop_duplicates(["beta_from", "beta_to"])
    if len(exact):
        ax.plot((exact.beta_from + exact.beta_to) / 2, exact.exact, "x", color="black",
                markersize=8, label="exact difference")  # fmt: skip
    shift = offsets(len(ESTIMATORS), 0.15 * width)
    flagged = _flagged(rows)
    for k, estimator in enumerate(ESTIMATORS):
        color, marker = ESTIMATOR_STYLE[estimator]
        for hollow in (False, True):
            mine = rows[(rows.estimator == estimator) & (flagged == hollow)]
            if mine.empty:
                continue
            ax.errorbar(mid[mine.index] + shift[k], mine.value, yerr=np.nan_to_num(mine.error),
                        color=color, marker=marker, linestyle="none", capsize=3,
                        markerfacecolor="white" if hollow else color,
                        label=f"{ESTIMATORS[estimator]}{' (flagged)' if hollow else ''}")
    ax.set_xlabel(r"$\beta$ (midpoint of the pair)")
    ax.set_ylabel(AXIS_LABELS.get(observable, observable))
    ax.set_title(f"{lattice}: {OBSERVABLES.get(observable, observable)}")
