"""The five figures of the report (PNG and PDF), drawn for print: large markers, thick lines.

Figures against beta live in ``figures_cost``, figures drawn from the chains in
``figures_chains``, the shared style in ``figures_style``; this module names the figures and
draws the training curves.  The figure names, captions and the inputs of each drawing function
are in :mod:`dlhmc.analysis.registry`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from dlhmc.analysis.figures_chains import fig_charge_history, fig_layer_diagnostics
from dlhmc.analysis.figures_cost import fig_cost_vs_beta, fig_plaquette
from dlhmc.analysis.figures_style import beta_colors, new_figure, note, save_figure, styled
from dlhmc.analysis.runs import TrainingRun

__all__ = [
    "fig_charge_history",
    "fig_cost_vs_beta",
    "fig_layer_diagnostics",
    "fig_plaquette",
    "fig_training",
    "save_figure",
]


def _smooth(values: np.ndarray) -> np.ndarray:
    """Running mean over ~2% of the steps, so trends survive printing; raw data stay visible."""
    width = max(1, len(values) // 50)
    if width == 1:
        return values
    kernel = np.ones(width) / width
    return np.convolve(values, kernel, mode="valid")


# Line styles of the learners of one experiment in the training figure (colour is the beta).
LEARNER_STYLES = ["-", "--", ":", "-."]


@styled
def fig_training(runs: Sequence[TrainingRun]) -> Figure:
    """Figure 5: loss, acceptance, ``<dQ^2>`` and step sizes against step, one colour per beta
    and one line style per learner (the ladder's model solid, each workflow variant its own)."""
    fig = new_figure(6.5, 5.6)
    learners = list(dict.fromkeys(run.learner for run in runs))
    curves = [
        (beta, run.learner, m)
        for run in runs
        for beta, m in run.metrics.groupby("beta")
        if len(m)
    ]
    if not curves:
        note(fig.add_subplot(), "no training runs given")
        return fig
    axes = fig.subplots(2, 2, sharex=True).ravel()
    colors = beta_colors([b for b, _, _ in curves])
    styles = dict(zip(learners, LEARNER_STYLES * len(learners), strict=False))
    panels = (("loss", "loss"), ("accept", "acceptance"), ("dq2", r"$\langle \delta Q^2\rangle$"))
    for beta, learner, m in curves:
        step = m.step.to_numpy(dtype=float)
        color, style = colors[beta], styles[learner]
        label = f"$\\beta$={beta:g}" + (f" {learner}" if learner else "")
        for ax, (col, _) in zip(axes[:3], panels, strict=False):
            values = m[col].to_numpy(dtype=float)
            ax.plot(step, values, color=color, alpha=0.25, lw=0.8, linestyle=style)
            smooth = _smooth(values)
            start = (len(step) - len(smooth)) // 2  # centre the running mean on its window
            ax.plot(
                step[start : start + len(smooth)], smooth, color=color, linestyle=style,
                label=label,
            )
        axes[3].plot(step, m.eps_x_mean, color=color, linestyle=style)
        axes[3].plot(step, m.eps_v_mean, color=color, linestyle=style, alpha=0.5)
    for ax, (_, label) in zip(axes[:3], panels, strict=False):
        ax.set_ylabel(label)
    axes[3].set_ylabel(r"mean $\epsilon$ (x dark, v light)")
    for ax in axes[2:]:
        ax.set_xlabel("training step")
    axes[0].legend(loc="best", ncol=2 if len(colors) > 4 else 1)
    return fig
