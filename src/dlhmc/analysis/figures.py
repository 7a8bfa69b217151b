"""The five figures of the report (PNG and PDF), drawn for print: large markers, thick lines.

Built on ``matplotlib.figure.Figure`` without pyplot, so no global backend or figure state is
touched (Agg renders the files). Lower bounds (frozen chain sets) are drawn as open markers with
an upward arrow, never as ordinary points. A figure whose inputs are absent (no trained sampler,
no per-layer diagnostics, no training runs) says so in its panel instead of being left out.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from dlhmc.analysis.chains import ChainSet
from dlhmc.analysis.exact import exact_curve
from dlhmc.analysis.runs import TrainingRun
from dlhmc.atomic import atomic_path

TRAINED_COLOR = "C0"
BEST_HMC_COLOR = "C3"
HMC_COLOR = "0.45"
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
CHAINS_SHOWN = 4


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


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _points(ax, x, y, yerr, frozen, color, marker, label, line=False, zorder=2):
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
        )
        for xi, yi in zip(x[frozen], y[frozen], strict=True):
            ax.annotate(
                "",
                xy=(xi, yi * 1.8),
                xytext=(xi, yi),
                arrowprops={"arrowstyle": "->", "color": color, "lw": 1.2},
            )


def hmc_markers(table: pd.DataFrame) -> dict[tuple[int, float], str]:
    """One marker per HMC grid point ``(N_LF, eps)``, the same in every figure."""
    hmc = table[table.sampler == "hmc"]
    grid = sorted({(int(n), float(e)) for n, e in zip(hmc.nlf, hmc.eps, strict=True)})
    return {point: MARKERS[i % len(MARKERS)] for i, point in enumerate(grid)}


def _offsets(n: int, span: float) -> np.ndarray:
    """Small horizontal offsets that keep overlapping grid points apart."""
    return (np.arange(n) - (n - 1) / 2) * span / max(n, 1)


@styled
def fig_cost_vs_beta(table: pd.DataFrame, comparison: pd.DataFrame) -> Figure:
    """Figure 1: ``N_LF * tau_int`` of the charge against beta (the paper's figure 3)."""
    fig = new_figure()
    ax = fig.add_subplot()
    charge = table[table.observable == "charge"]
    if charge.empty:
        _note(ax, "no charge measurements in the table")
        return fig
    betas = np.unique(charge.beta)
    span = 0.04 * (np.ptp(betas) if betas.size > 1 else 1.0)
    hmc = charge[charge.sampler == "hmc"]
    markers = hmc_markers(table)
    offsets = _offsets(len(markers), span)
    for i, ((nlf, eps), marker) in enumerate(markers.items()):
        pts = hmc[(hmc.nlf == nlf) & np.isclose(hmc.eps, eps)].sort_values("beta")
        _points(
            ax,
            pts.beta + offsets[i],
            pts.cost_lf,
            pts.cost_lf_err,
            pts.frozen,
            HMC_COLOR,
            marker,
            f"HMC $N_{{LF}}$={nlf}, $\\epsilon$={eps:g}",
        )
    best = comparison.dropna(subset=["hmc_cost_lf"]).sort_values("beta")
    if not best.empty:
        ax.plot(
            best.beta,
            best.hmc_cost_lf,
            color=BEST_HMC_COLOR,
            linestyle="--",
            label="best HMC",
            zorder=3,
        )
    for sampler, pts in charge[charge.sampler != "hmc"].groupby("sampler"):
        pts = pts.sort_values("beta")
        _points(
            ax,
            pts.beta,
            pts.cost_lf,
            pts.cost_lf_err,
            pts.frozen,
            TRAINED_COLOR,
            "o",
            f"trained ({sampler})",
            line=True,
            zorder=4,
        )
    ax.set_yscale("log")
    bounds = charge.cost_lf[charge.frozen.astype(bool)]
    if len(bounds):  # keep the lower-bound arrows inside the axes
        ax.set_ylim(top=max(ax.get_ylim()[1], 2.5 * float(bounds.max())))
    ax.set_xlabel(r"$\beta$")
    ax.set_ylabel(r"$N_{LF}\,\tau_{int}(Q)$  [leapfrog steps]")
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], marker="o", mfc="none", color="k", linestyle="none"))
    labels.append("open, arrow: lower bound (frozen)")
    ax.legend(handles, labels, loc="best", ncol=2 if len(labels) > 6 else 1)
    return fig


def _find(
    chain_sets: Sequence[ChainSet], sampler: str, beta: float, nlf: int, eps: float | None = None
) -> ChainSet | None:
    for cs in chain_sets:
        if (
            cs.sampler == sampler
            and np.isclose(cs.beta, beta)
            and cs.nlf == int(nlf)
            and (eps is None or np.isclose(cs.eps, eps))
        ):
            return cs
    return None


def history_pair(comparison: pd.DataFrame, chain_sets: Sequence[ChainSet]):
    """The largest beta where both the trained sampler's and the best HMC's chains are given."""
    both = comparison.dropna(subset=["trained_cost_lf", "hmc_cost_lf"])
    for _, row in both.sort_values("beta", ascending=False).iterrows():
        trained = _find(chain_sets, row.sampler, row.beta, row.trained_nlf)
        hmc = _find(chain_sets, "hmc", row.beta, row.hmc_nlf, row.hmc_eps)
        if trained is not None and hmc is not None:
            return row, trained, hmc
    return None


@styled
def fig_charge_history(comparison: pd.DataFrame, chain_sets: Sequence[ChainSet]) -> Figure:
    """Figure 2: the charge along a few chains, trained sampler above the best HMC (fig. 4)."""
    fig = new_figure(6.5, 4.8)
    pair = history_pair(comparison, chain_sets)
    if pair is None:
        _note(
            fig.add_subplot(),
            "no beta with chain files of both the trained sampler\nand the best HMC grid point",
        )
        return fig
    row, trained, hmc = pair
    axes = fig.subplots(2, 1, sharey=True)
    for ax, cs, label in (
        (axes[0], trained, f"trained ({trained.sampler})"),
        (axes[1], hmc, "best HMC"),
    ):
        q = cs.values("charge")
        for c in range(min(CHAINS_SHOWN, q.shape[0])):
            ax.plot(
                np.arange(q.shape[1]),
                q[c],
                drawstyle="steps-post",
                lw=0.9,
                color=f"C{c}",
                label=f"chain {c}",
            )
        ax.set_title(
            f"{label}: $\\beta$={cs.beta:g}, $N_{{LF}}$={cs.nlf}, $\\epsilon$={cs.eps:.3g}",
            fontsize=10,
        )
        ax.set_ylabel("$Q$")
    axes[1].set_xlabel("trajectory")
    axes[0].legend(loc="upper right", ncol=CHAINS_SHOWN)
    return fig


@styled
def fig_layer_diagnostics(chain_sets: Sequence[ChainSet]) -> Figure:
    """Figure 3: plaquette deviation, ``H - sum log|J|`` and ``Q_R`` against layer (fig. 5)."""
    fig = new_figure(6.5, 5.6)
    sets = sorted(
        (
            cs
            for cs in chain_sets
            if cs.sampler != "hmc"
            and {"lf_plaq_dev", "lf_energy", "lf_charge_real"} <= set(cs.data.variables)
        ),
        key=lambda cs: cs.beta,
    )
    if not sets:
        _note(fig.add_subplot(), "no per-layer diagnostics (lf_*) in the chain files")
        return fig
    axes = fig.subplots(3, 1, sharex=True)
    colors = _beta_colors([cs.beta for cs in sets])
    for cs in sets:
        layer = np.arange(cs.data.sizes["lf"])
        energy = np.asarray(cs.data["lf_energy"].values, dtype=float)
        series = (
            cs.data["lf_plaq_dev"].values,
            energy - energy[0],
            cs.data["lf_charge_real"].values,
        )
        for ax, values in zip(axes, series, strict=True):
            ax.plot(layer, values, marker="o", color=colors[cs.beta], label=f"$\\beta$={cs.beta:g}")
    references = sorted(
        {str(cs.attr("lf_plaq_reference")) for cs in sets if cs.attr("lf_plaq_reference")}
    )
    if references:
        axes[0].set_title(f"P_ref: {', '.join(references)}", fontsize=9)
    axes[0].set_ylabel(r"$\langle P\rangle - P_{ref}$")
    axes[1].set_ylabel(r"$H - \sum\log|J|$" + "\n(minus layer 0)")
    axes[2].set_ylabel("$Q_R$")
    axes[2].set_xlabel("leapfrog layer (0 = input)")
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    # The energy panel starts at 0 for every beta, so its upper left stays free for the legend.
    axes[1].legend(loc="upper left", ncol=2)
    return fig


@styled
def fig_plaquette(table: pd.DataFrame, checks: pd.DataFrame) -> Figure:
    """Figure 4: average plaquette against beta, the exact curve, and each point's pull."""
    fig = new_figure(6.5, 5.6)
    plaq = table[table.observable == "plaq"]
    if plaq.empty:
        _note(fig.add_subplot(), "no plaquette measurements in the table")
        return fig
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    for (group, lattice), rows in plaq.groupby(["group", "lattice"]):
        betas = np.linspace(rows.beta.min(), rows.beta.max(), 120)
        curve = exact_curve(group, tuple(int(n) for n in lattice.split("x")), betas)
        if curve is not None:
            top.plot(curve[0], curve[1], color="k", lw=1.2, label=f"exact {group} {lattice}")
    keys = sorted(
        {
            (s, int(n), float(e))
            for s, n, e in zip(checks.sampler, checks.nlf, checks.eps, strict=True)
        }
    )
    markers = hmc_markers(table)
    for sampler, nlf, eps in keys:
        rows = checks[
            (checks.sampler == sampler) & (checks.nlf == nlf) & np.isclose(checks.eps, eps)
        ].sort_values("beta")
        trained = sampler != "hmc"
        color = TRAINED_COLOR if trained else HMC_COLOR
        marker = "o" if trained else markers[(nlf, eps)]
        label = f"trained ({sampler})" if trained else f"HMC $N_{{LF}}$={nlf}, $\\epsilon$={eps:g}"
        top.errorbar(
            rows.beta,
            rows.measured,
            yerr=rows.measured_err,
            color=color,
            marker=marker,
            linestyle="none",
            capsize=3,
            label=label,
        )
        bottom.plot(rows.beta, rows.pull, color=color, marker=marker, linestyle="none")
    limit = float(checks.pull_limit.iloc[0]) if not checks.empty else 4.0
    for y in (-limit, limit):
        bottom.axhline(y, color=BEST_HMC_COLOR, lw=1, linestyle="--")
    bottom.axhline(0, color="k", lw=0.8)
    top.set_ylabel(r"$\langle P \rangle$")
    bottom.set_ylabel("pull")
    bottom.set_xlabel(r"$\beta$")
    top.legend(loc="best", ncol=2 if len(keys) > 4 else 1)
    return fig


def _beta_colors(betas: Sequence[float]) -> dict[float, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    unique = sorted(set(betas))
    return {b: cmap(0.8 * i / max(len(unique) - 1, 1)) for i, b in enumerate(unique)}


def _smooth(values: np.ndarray) -> np.ndarray:
    """Running mean over ~2% of the steps, so trends survive printing; raw data stay visible."""
    width = max(1, len(values) // 50)
    if width == 1:
        return values
    kernel = np.ones(width) / width
    return np.convolve(values, kernel, mode="valid")


@styled
def fig_training(runs: Sequence[TrainingRun]) -> Figure:
    """Figure 5: loss, acceptance, ``<dQ^2>`` and step sizes against step, one line per beta."""
    fig = new_figure(6.5, 5.6)
    curves = [(beta, m) for run in runs for beta, m in run.metrics.groupby("beta") if len(m)]
    if not curves:
        _note(fig.add_subplot(), "no training runs given")
        return fig
    axes = fig.subplots(2, 2, sharex=True).ravel()
    colors = _beta_colors([b for b, _ in curves])
    panels = (("loss", "loss"), ("accept", "acceptance"), ("dq2", r"$\langle \delta Q^2\rangle$"))
    for beta, m in curves:
        step = m.step.to_numpy(dtype=float)
        color = colors[beta]
        for ax, (col, _) in zip(axes[:3], panels, strict=False):
            values = m[col].to_numpy(dtype=float)
            ax.plot(step, values, color=color, alpha=0.25, lw=0.8)
            smooth = _smooth(values)
            start = (len(step) - len(smooth)) // 2  # centre the running mean on its window
            ax.plot(
                step[start : start + len(smooth)], smooth, color=color, label=f"$\\beta$={beta:g}"
            )
        axes[3].plot(step, m.eps_x_mean, color=color)
        axes[3].plot(step, m.eps_v_mean, color=color, linestyle="--")
    for ax, (_, label) in zip(axes[:3], panels, strict=False):
        ax.set_ylabel(label)
    axes[3].set_ylabel(r"mean $\epsilon$ (solid x, dashed v)")
    for ax in axes[2:]:
        ax.set_xlabel("training step")
    axes[0].legend(loc="best", ncol=2 if len(colors) > 4 else 1)
    return fig
