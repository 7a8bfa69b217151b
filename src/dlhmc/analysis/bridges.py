"""Bridges and replica exchange in the report (issue 20): derivative estimators, swap acceptance
of plain parallel tempering against T-REX, and the cost of an independent sample at the top of
the ladder.

Inputs (``dlhmc report --derivatives CSV... --exchange DIR...``, the workflow's
``bridge/derivative.csv`` of every pair and ``pt/``, ``trex/`` directory of every volume):

- ``derivatives``: the rows of ``dlhmc derivative`` (observable ``plaq`` or ``q2``, estimator
  ``independent``, ``reweight`` or ``flow``, ``beta_from``, ``beta_to``, the finite difference
  ``value = (<O>_to - <O>_from) / (beta_to - beta_from)`` with its ``error``, the ``exact``
  difference where known, ``n_configs``), each with the ``group`` and ``lattice`` of its files;
- ``exchanges``: the ``swaps.csv`` rows of every ``dlhmc trex`` directory (pair, betas,
  proposed, accepted, ``acceptance`` and its error), with the run's ``kind`` (``pt`` or
  ``trex``, the ``sampler`` of its chain files), ``group``, ``lattice`` and round trips per 1000
  trajectories where the directory has ``round_trips.csv``.

Tables: ``derivatives`` (every estimate, its pull against the exact difference and the status of
the exactness rule, which the report's checks list with the plaquette's), ``swaps`` (per volume
and pair: PT and T-REX acceptance with errors and their ratio) and ``exchange`` (per volume, at
the top beta of the ladder: tau_int of ``Q_Z``, ``N_LF tau_int`` with every force evaluation
and bridge pass of the ladder counted, and seconds per independent sample, of PT, T-REX and the
best plain HMC point there).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dlhmc.analysis.checks import COLUMNS as CHECK_COLUMNS
from dlhmc.analysis.checks import PULL_LIMIT
from dlhmc.analysis.costs import ratio_with_error
from dlhmc.analysis.report_tables import bound, fmt, fmt_err, html_table
from dlhmc.analysis.table import beta_key

OBSERVABLES = {"plaq": "d⟨plaq⟩/dβ", "q2": "d⟨Q_Z²⟩/dβ"}
ESTIMATORS = {
    "independent": "independent ensembles",
    "reweight": "reweighting",
    "flow": "bridge flow",
}
EXCHANGE_KINDS = {"pt": "parallel tempering", "trex": "T-REX"}
# The charge whose tau_int the exchange table compares (every chain file records Q_Z).
CHARGE = "charge"
DERIVATIVE_COLUMNS = ("observable", "estimator", "beta_from", "beta_to", "value", "error",
                      "exact", "n_configs")  # fmt: skip
SWAP_COLUMNS = ("pair", "beta_from", "beta_to", "proposed", "accepted", "acceptance",
                "acceptance_error")  # fmt: skip
DERIVATIVES = ("group", "lattice", *DERIVATIVE_COLUMNS, "pull", "status", "file")
SWAPS = (
    "group", "lattice", "pair", "beta_from", "beta_to",
    *(f"{k}_{c}" for k in EXCHANGE_KINDS for c in ("proposed", "acceptance", "acceptance_error")),
    "ratio", "ratio_err",
    *(f"{k}_round_trips_per_1000" for k in EXCHANGE_KINDS),
)  # fmt: skip
EXCHANGE = ("experiment", "group", "lattice", "beta", "kind", "label", "point", "tau_int",
            "tau_int_err", "cost_lf", "cost_lf_err", "frozen", "seconds", "seconds_err",
            "ratio_cost", "ratio_cost_err", "ratio_seconds", "ratio_seconds_err",
            "training_seconds", "file")  # fmt: skip
_LATTICE = re.compile(r"^[0-9]+(x[0-9]+)+$")


class BridgeInputError(ValueError):
    """A derivative CSV or exchange directory the report cannot read (one line, naming it)."""


# ---- reading -----------------------------------------------------------------------------------


def _csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise BridgeInputError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        raise BridgeInputError(f"{path}: not a CSV table") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BridgeInputError(f"{path}: missing column {missing[0]!r}")
    return frame


def _lattice_of(path: Path) -> str | None:
    """The volume label among a workflow path's directories (results/<exp>/<lattice>/...)."""
    found = [part for part in Path(path).parts if _LATTICE.match(part)]
    return found[-1] if found else None


def read_derivatives(paths: Sequence[str | Path], group: str = "U1") -> pd.DataFrame:
    """The rows of every ``dlhmc derivative`` CSV with ``group``, ``lattice`` and ``file``; the
    lattice from a ``lattice`` column where the file has one, else from its path."""
    parts = []
    for path in map(Path, paths):
        frame = _csv(path, DERIVATIVE_COLUMNS)
        if "lattice" not in frame.columns:
            lattice = _lattice_of(path)
            if lattice is None:
                raise BridgeInputError(
                    f"{path}: no lattice column and no volume (e.g. 8x8) in its path"
                )
            frame["lattice"] = lattice
        if "group" not in frame.columns:
            frame["group"] = group
        frame["file"] = str(path)
        parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=["group", "lattice", *DERIVATIVE_COLUMNS, "file"])
    out = pd.concat(parts, ignore_index=True)
    out["lattice"] = out["lattice"].astype(str)
    return out


def read_exchanges(dirs: Sequence[str | Path]) -> pd.DataFrame:
    """The ``swaps.csv`` rows of every ``dlhmc trex`` directory with ``kind``, ``group`` and
    ``lattice`` (the attributes of its chain files) and its round trips per 1000 trajectories."""
    import xarray as xr

    parts = []
    for directory in map(Path, dirs):
        frame = _csv(directory / "swaps.csv", SWAP_COLUMNS)
        chains = sorted(directory.glob("beta*.nc"))
        if not chains:
            raise BridgeInputError(f"{directory}: no chain file beta<B>.nc of dlhmc trex")
        try:
            with xr.open_dataset(chains[0], engine="h5netcdf") as data:
                attrs = dict(data.attrs)
        except Exception as err:  # any reader failure: the file is damaged
            raise BridgeInputError(
                f"{chains[0]}: not a chain file ({type(err).__name__})"
            ) from None
        kind = str(attrs.get("sampler", ""))
        if kind not in EXCHANGE_KINDS:
            raise BridgeInputError(f"{chains[0]}: sampler {kind!r} is not one of "
                                   f"{', '.join(EXCHANGE_KINDS)}")  # fmt: skip
        frame["kind"] = kind
        frame["group"] = str(attrs.get("group", ""))
        frame["lattice"] = "x".join(str(int(n)) for n in np.atleast_1d(attrs.get("lattice", [])))
        trips = directory / "round_trips.csv"
        per_1000 = math.nan
        if trips.is_file():
            rows = _csv(trips, ("per_1000_trajectories",))
            per_1000 = float(rows.per_1000_trajectories.iloc[0]) if len(rows) else math.nan
        frame["round_trips_per_1000"] = per_1000
        frame["dir"] = str(directory)
        parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=[*SWAP_COLUMNS, "kind", "group", "lattice",
                                     "round_trips_per_1000", "dir"])  # fmt: skip
    return pd.concat(parts, ignore_index=True)


# ---- derivatives -------------------------------------------------------------------------------


def _status(value: float, error: float, exact: float, frozen: bool) -> tuple[float, str]:
    """Pull and status; ``frozen`` (the Gamma method's error is only a lower bound, the
    ``frozen`` column of dlhmc derivative) gives no verdict, as a frozen chain set's checks."""
    if pd.isna(exact):
        return math.nan, "no exact value"
    if not (math.isfinite(value) and error > 0):
        return math.nan, "no error estimate"
    pull = (value - exact) / error
    if frozen:
        return pull, "frozen"
    return pull, "pass" if abs(pull) < PULL_LIMIT else "FAIL"


def derivatives_table(derivatives: pd.DataFrame) -> pd.DataFrame:
    """Every derivative estimate, sorted, with its pull ``(value - exact) / error`` against the
    exact finite difference and the status of the exactness rule (``|pull| >= 4`` fails;
    ``frozen``, no verdict, where the file's ``frozen`` column says the error is a bound)."""
    rows = []
    for _, r in derivatives.iterrows():
        frozen = r.get("frozen", 0)
        frozen = not pd.isna(frozen) and bool(frozen)
        pull, status = _status(float(r.value), float(r.error), float(r.exact), frozen)
        rows.append({**{c: r[c] for c in ("group", "lattice", *DERIVATIVE_COLUMNS, "file")},
                     "pull": pull, "status": status})  # fmt: skip
    out = pd.DataFrame(rows, columns=list(DERIVATIVES))
    order = {name: i for i, name in enumerate(ESTIMATORS)}
    return out.sort_values(
        ["lattice", "observable", "beta_from", "estimator"],
        key=lambda s: s.map(order) if s.name == "estimator" else s,
        kind="stable",
    ).reset_index(drop=True)


def derivative_checks(derivatives: pd.DataFrame) -> pd.DataFrame:
    """The derivative estimates with an exact value as rows of the report's exactness checks
    (:data:`dlhmc.analysis.checks.COLUMNS`): the same pull and rule as the plaquette's."""
    table = derivatives_table(derivatives)
    out = []
    for _, r in table[table.status != "no exact value"].iterrows():
        out.append({
            "observable": OBSERVABLES.get(r.observable, r.observable), "group": r.group,
            "lattice": r.lattice, "beta": r.beta_to,
            "sampler": f"{ESTIMATORS.get(r.estimator, r.estimator)} "
            f"(β {r.beta_from:g} → {r.beta_to:g})", "category": "derivative", "role": "main",
            "nlf": math.nan, "eps": math.nan, "measured": r.value, "measured_err": r.error,
            "exact": r.exact, "exact_err": 0.0, "pull": r.pull, "pull_limit": PULL_LIMIT,
            "status": r.status, "source": "exact finite difference (Bessel sums)",
        })  # fmt: skip
    return pd.DataFrame(out, columns=list(CHECK_COLUMNS))


def derivatives_html(table: pd.DataFrame) -> str:
    if table.empty:
        return ""
    header = ["lattice", "observable", "β pair", "estimator", "value", "exact", "pull",
              "status", "configs"]  # fmt: skip
    rows, classes = [], []
    for _, r in table.iterrows():
        rows.append([
            str(r.lattice), OBSERVABLES.get(r.observable, r.observable),
            f"{r.beta_from:g} → {r.beta_to:g}", ESTIMATORS.get(r.estimator, r.estimator),
            fmt_err(r.value, r.error), fmt(r.exact), fmt(r.pull), r.status, fmt(r.n_configs),
        ])  # fmt: skip
        classes.append({"FAIL": "fail", "frozen": "warn"}.get(r.status, ""))
    return (
        "<h2>Bridges and replica exchange</h2><h3>Derivatives in β, three ways</h3><p>Finite "
        "differences (⟨O⟩(β₂) − ⟨O⟩(β₁)) / (β₂ − β₁) between neighbouring betas: from the two "
        "independent HMC ensembles, by reweighting the β₁ ensemble, and through the bridge flow "
        "trained from β₁ to β₂ (the same configurations of β₁); errors by the Gamma method, "
        "exact: the same difference of the exact values. Figure 6 draws them against the exact "
        f"derivative; a pull |pull| &ge; {PULL_LIMIT:g} fails and is listed with the exactness "
        "checks; frozen: the chains are too short for the Gamma method, whose error is then a "
        "lower bound (no verdict).</p>"
        + html_table(header, rows, classes, text_cols=(0, 1, 2, 3, 7))
    )


# ---- swap acceptance ---------------------------------------------------------------------------


def swaps_table(exchanges: pd.DataFrame) -> pd.DataFrame:
    """Per volume and neighbouring pair: the swap acceptance of PT and of T-REX with errors,
    and their ratio T-REX / PT (errors in quadrature); round trips per 1000 trajectories."""
    out = []
    if exchanges.empty:
        return pd.DataFrame(columns=list(SWAPS))
    frame = exchanges.copy()
    frame["beta_from_key"] = beta_key(frame.beta_from)
    for (group, lattice, _), rows in frame.groupby(["group", "lattice", "beta_from_key"],
                                                   sort=True):  # fmt: skip
        first = rows.iloc[0]
        row = {"group": group, "lattice": lattice, "pair": first.pair,
               "beta_from": first.beta_from, "beta_to": first.beta_to}  # fmt: skip
        for kind in EXCHANGE_KINDS:
            mine = rows[rows.kind == kind]
            r = mine.iloc[0] if len(mine) else None
            row[f"{kind}_proposed"] = math.nan if r is None else r.proposed
            row[f"{kind}_acceptance"] = math.nan if r is None else r.acceptance
            row[f"{kind}_acceptance_error"] = math.nan if r is None else r.acceptance_error
            row[f"{kind}_round_trips_per_1000"] = (
                math.nan if r is None else r.round_trips_per_1000
            )
        ratio, err = ratio_with_error(
            row["trex_acceptance"], row["trex_acceptance_error"],
            row["pt_acceptance"], row["pt_acceptance_error"],
        )  # fmt: skip
        row.update(ratio=ratio, ratio_err=err)
        out.append(row)
    return pd.DataFrame(out, columns=list(SWAPS))


def swaps_html(table: pd.DataFrame) -> str:
    if table.empty:
        return ""
    header = ["lattice", "pair", "β₁ → β₂", "PT acceptance", "T-REX acceptance",
              "T-REX / PT", "round trips / 1000 traj. (PT, T-REX)"]  # fmt: skip
    rows = []
    for _, r in table.iterrows():
        trips = ", ".join(fmt(r[f"{k}_round_trips_per_1000"]) or "–" for k in EXCHANGE_KINDS)
        rows.append([
            str(r.lattice), str(r.pair), f"{r.beta_from:g} → {r.beta_to:g}",
            fmt_err(r.pt_acceptance, r.pt_acceptance_error),
            fmt_err(r.trex_acceptance, r.trex_acceptance_error),
            fmt_err(r.ratio, r.ratio_err), trips,
        ])  # fmt: skip
    return (
        "<h3>Swap acceptance: plain parallel tempering against T-REX</h3><p>Accepted fraction "
        "of the proposed swaps of each neighbouring pair (error: Gamma method over the swap "
        "series of each ladder), plain exchange U₁ ↔ U₂ against the exchange through the "
        "bridge flow (f⁻¹(U₂), f(U₁)); ratio above 1: the bridges swap more often. Round trips: "
        "replicas that went from the bottom of the ladder to the top and back.</p>"
        + html_table(header, rows, text_cols=(0, 1, 2))
    )


# ---- the top of the ladder ---------------------------------------------------------------------


def exchange_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per experiment and volume with replica-exchange chains, at the top beta of the ladder:
    PT, T-REX and the best plain HMC point (lowest ``N_LF tau_int`` of ``Q_Z``) there, with
    ``tau_int``, the cost in leapfrog-step equivalents (every force evaluation of the ladder
    and every bridge pass counted: docs/analysis.md), the seconds per independent sample and
    each one's ratio to the HMC point (HMC cost / this cost: above 1 cheaper than HMC)."""
    rows = table[(table.observable == CHARGE) & (table.get("role", "main") == "main")].copy()
    if rows.empty or not rows.category.isin(list(EXCHANGE_KINDS)).any():
        return pd.DataFrame(columns=list(EXCHANGE))
    rows["beta_k"] = beta_key(rows.beta)
    rows["lattice"] = rows.lattice.astype(str)
    out = []
    exchange = rows[rows.category.isin(list(EXCHANGE_KINDS))]
    for (experiment, group, lattice), mine in exchange.groupby(
        ["experiment", "group", "lattice"], sort=True
    ):
        top = mine.beta_k.max()
        at_top = rows[(rows.experiment == experiment) & (rows.lattice == lattice)
                      & (rows.beta_k == top)]  # fmt: skip
        hmc = at_top[(at_top.category == "hmc") & at_top.cost_lf.notna()]
        best = hmc.loc[hmc.cost_lf.idxmin()] if len(hmc) else None
        for kind, label in (("hmc", "best plain HMC"), *EXCHANGE_KINDS.items()):
            found = at_top[at_top.category == kind]
            r = best if kind == "hmc" else (found.iloc[0] if len(found) else None)
            if r is None:
                continue
            entry = {
                "experiment": experiment, "group": group, "lattice": lattice,
                "beta": float(r.beta), "kind": kind, "label": label,
                "point": f"N_LF {int(r.nlf)}, ε {float(r.eps):.4g}",
                "tau_int": r.tau_int, "tau_int_err": r.tau_int_err, "cost_lf": r.cost_lf,
                "cost_lf_err": r.cost_lf_err, "frozen": bool(r.frozen),
                "seconds": r.seconds_per_indep, "seconds_err": r.seconds_per_indep_err,
                "training_seconds": 0.0 if kind == "hmc" else r.get("training_seconds"),
                "file": r.file,
            }  # fmt: skip
            for name, col in (("cost", "cost_lf"), ("seconds", "seconds_per_indep")):
                value, err = (math.nan, math.nan)
                if best is not None:
                    value, err = ratio_with_error(best[col], best[f"{col}_err"], r[col],
                                                  r[f"{col}_err"])  # fmt: skip
                entry[f"ratio_{name}"], entry[f"ratio_{name}_err"] = value, err
            out.append(entry)
    return pd.DataFrame(out, columns=list(EXCHANGE))


def exchange_html(table: pd.DataFrame) -> str:
    if table.empty:
        return ""
    header = ["lattice", "β (top)", "sampler", "point", "τ_int(Q_Z)", "N_LF τ_int",
              "s / indep.", "HMC / this (N_LF τ_int)", "HMC / this (s)",
              "training s (bridges)"]  # fmt: skip
    rows = []
    for _, r in table.iterrows():
        b = bound(r.frozen)
        rows.append([
            str(r.lattice), fmt(r.beta), r.label, r.point, fmt_err(r.tau_int, r.tau_int_err, b),
            fmt_err(r.cost_lf, r.cost_lf_err, b), fmt_err(r.seconds, r.seconds_err, b),
            "" if r.kind == "hmc" else fmt_err(r.ratio_cost, r.ratio_cost_err),
            "" if r.kind == "hmc" else fmt_err(r.ratio_seconds, r.ratio_seconds_err),
            fmt(r.training_seconds),
        ])  # fmt: skip
    return (
        "<h3>The top of the ladder: replica exchange against plain HMC</h3><p>τ_int of the "
        "integer charge at the largest beta, its cost in leapfrog-step equivalents (for PT and "
        "T-REX the whole ladder's force evaluations per trajectory, T-REX's bridge passes at "
        "one step per coupling layer, and the force recomputed after accepted swaps: "
        "docs/analysis.md) and in measured seconds, against the best plain HMC point at that "
        "beta; &ge; marks lower bounds (frozen chains, where the ratio is a bound too). The "
        "bridges' training seconds are not in the seconds per sample: a fixed cost, shown "
        "apart (with analyze.amortize_samples the analysis table spreads it).</p>"
        + html_table(header, rows, text_cols=(0, 2, 3))
    )

