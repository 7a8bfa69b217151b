"""Shared drawing rules of the report's figures: print style, colours per sampler category,
lower-bound markers and file output.

Built on ``matplotlib.figure.Figure`` without pyplot, so no global backend or figure state is
touched (Agg renders the files). Lower bounds (frozen chain sets) are drawn as open markers with
an upward arrow, never as ordinary points. A figure whose inputs are absent says so in its panel
instead of being left out.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from dlhmc.analysis.chains import CATEGORY_LABELS
from dlhmc.atomic import atomic_path

# One colour and marker per sampler category, the same in every figure. HMC black and the
# learned sampler blue, as in the paper's figures 3 and 4.
CATEGORY_STYLE = {
    "hmc": {"color": "k", "marker": "s"},
    "whmc": {"color": "C2", "marker": "D"},
    "l2hmc": {"color": "C0", "marker": "o"},
    "l2hmc_w": {"color": "C1", "marker": "^"},
    "flow_imh": {"color": "C4", "marker": "v"},
    "flow_hmc": {"color": "C3", "marker": "P"},
    "pt": {"color": "C5", "marker": "*"},
    "trex": {"color": "C6", "marker": "X"},
}
MARKERS = "osD^vP*Xhp<>"
STYLE = {
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.6,
    "lines.markersize": 6,
    "legend.fontsize": 8,
    "legend.framealpha": 0.9,
}


def label(category: str) -> str:
    return CATEGORY_LABELS.get(category, category)


def styled(draw):
    """Draw under the print style without changing matplotlib's global settings."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def new_figure(width: float = 6.5, height: float = 4.2) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``name.png`` (200 dpi) and ``name.pdf`` atomically; return both paths."""
    paths = []
    for fmt in ("png", "pdf"):
        path = Path(out_dir) / f"{name}.{fmt}"
        with atomic_path(path) as tmp, matplotlib.rc_context(STYLE):
            fig.savefig(tmp, format=fmt, dpi=200)
        paths.append(path)
    return paths


def note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def points(ax, x, y, yerr, frozen, color, marker, label, line=False, zorder=2, alpha=1.0):
    """Error-bar points; frozen ones open with an upward arrow (their value is a lower bound)."""
    x, y, yerr = (np.asarray(v, dtype=float) for v in (x, y, yerr))
    frozen = np.asarray(frozen, dtype=bool)
    ok = ~frozen
    if ok.any():
        ax.errorbar(
            x[ok],
            y[ok],
            yerr=np.nan_to_num(yerr[ok]),
            color=color,
            marker=marker,
            linestyle="-" if line else "none",
            capsize=3,
            label=label,
            zorder=zorder,
            alpha=alpha,
        )
    if frozen.any():
        ax.plot(
            x[frozen],
            y[frozen],
            linestyle="none",
            marker=marker,
            mfc="none",
            color=color,
            label=None if ok.any() else label,
            zorder=zorder,
            alpha=alpha,
        )
        for xi, yi in zip(x[frozen], y[frozen], strict=True):
            ax.annotate(
                "",
                xy=(xi, yi * 1.8),
                xytext=(xi, yi),
                arrowprops={"arrowstyle": "->", "color": color, "lw": 1.2, "alpha": alpha},
            )


def offsets(n: int, span: float) -> np.ndarray:
    """Small horizontal offsets that keep overlapping points apart."""
    return (np.arange(n) - (n - 1) / 2) * span / max(n, 1)


def beta_colors(betas: Sequence[float]) -> dict[float, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    unique = sorted(set(betas))
    return {b: cmap(0.8 * i / max(len(unique) - 1, 1)) for i, b in enumerate(unique)}
