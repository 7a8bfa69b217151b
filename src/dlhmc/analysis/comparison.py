"""Trained sampler against the best-tuned HMC, per experiment and beta.

The best HMC grid point is the one with the lowest ``N_LF * tau_int`` of the charge among all
grid points at that beta, whatever their flag. If that point is frozen its cost is a lower bound,
and since every other point is worse or a bound itself, the best HMC cost is at least that value:
the improvement ratio ``cost_HMC / cost_trained`` is then a lower bound. A frozen trained sampler
makes the ratio an upper bound; both frozen leaves it undetermined. Seconds are compared at the
same best grid point (HMC seconds are ``N_LF * tau_int`` times a per-step time that barely depends
on the grid point).
"""

from __future__ import annotations

import pandas as pd

from dlhmc.analysis.costs import ratio_with_error

KEYS = ("experiment", "group", "lattice", "beta")

COLUMNS = (
    *KEYS,
    "sampler",
    "trained_nlf",
    "trained_tau_int",
    "trained_tau_int_err",
    "trained_cost_lf",
    "trained_cost_lf_err",
    "trained_frozen",
    "hmc_nlf",
    "hmc_eps",
    "hmc_tau_int",
    "hmc_tau_int_err",
    "hmc_cost_lf",
    "hmc_cost_lf_err",
    "hmc_frozen",
    "n_hmc_points",
    "ratio_lf",
    "ratio_lf_err",
    "ratio_kind",
    "trained_seconds",
    "hmc_seconds",
    "ratio_seconds",
    "ratio_seconds_err",
    "trained_seconds_amortized",
    "ratio_seconds_amortized",
    "ratio_seconds_amortized_err",
)


def ratio_kind(hmc_frozen: bool, trained_frozen: bool) -> str:
    """What ``cost_HMC / cost_trained`` is when either side is only a lower bound."""
    if hmc_frozen and trained_frozen:
        return "undetermined"
    if hmc_frozen:
        return "lower bound"
    if trained_frozen:
        return "upper bound"
    return "value"


def best_hmc(rows: pd.DataFrame) -> pd.Series | None:
    """The HMC grid point with the lowest ``cost_lf`` (charge rows of one beta)."""
    hmc = rows[(rows.sampler == "hmc") & rows.cost_lf.notna()]
    if hmc.empty:
        return None
    return hmc.loc[hmc.cost_lf.idxmin()]


def comparison_table(table: pd.DataFrame, observable: str = "charge") -> pd.DataFrame:
    """One row per (experiment, group, lattice, beta) and trained sampler (or HMC alone)."""
    rows = table[table.observable == observable].copy()
    rows["beta"] = rows["beta"].round(10)
    out = []
    for key, group in rows.groupby(list(KEYS), sort=True):
        hmc = best_hmc(group)
        trained = group[group.sampler != "hmc"]
        keys = dict(zip(KEYS, key, strict=True))
        n_hmc = int((group.sampler == "hmc").sum())
        candidates = [tr for _, tr in trained.iterrows()] if not trained.empty else [None]
        out.extend(_compare(keys, hmc, tr, n_hmc) for tr in candidates)
    return pd.DataFrame(out, columns=list(COLUMNS))


def _compare(keys: dict, hmc: pd.Series | None, tr: pd.Series | None, n_hmc: int) -> dict:
    row = dict(keys, n_hmc_points=n_hmc)
    if tr is not None:
        row.update(
            sampler=tr.sampler,
            trained_nlf=tr.nlf,
            trained_tau_int=tr.tau_int,
            trained_tau_int_err=tr.tau_int_err,
            trained_cost_lf=tr.cost_lf,
            trained_cost_lf_err=tr.cost_lf_err,
            trained_frozen=bool(tr.frozen),
            trained_seconds=tr.seconds_per_indep,
            trained_seconds_amortized=tr.seconds_per_indep_amortized,
        )
    if hmc is not None:
        row.update(
            hmc_nlf=hmc.nlf,
            hmc_eps=hmc.eps,
            hmc_tau_int=hmc.tau_int,
            hmc_tau_int_err=hmc.tau_int_err,
            hmc_cost_lf=hmc.cost_lf,
            hmc_cost_lf_err=hmc.cost_lf_err,
            hmc_frozen=bool(hmc.frozen),
            hmc_seconds=hmc.seconds_per_indep,
        )
    if tr is None or hmc is None:
        row["ratio_kind"] = "no trained sampler" if tr is None else "no HMC"
        return row
    kind = ratio_kind(bool(hmc.frozen), bool(tr.frozen))
    row["ratio_kind"] = kind
    if kind == "undetermined":
        return row
    row["ratio_lf"], row["ratio_lf_err"] = ratio_with_error(
        hmc.cost_lf, hmc.cost_lf_err, tr.cost_lf, tr.cost_lf_err
    )
    row["ratio_seconds"], row["ratio_seconds_err"] = ratio_with_error(
        hmc.seconds_per_indep,
        hmc.seconds_per_indep_err,
        tr.seconds_per_indep,
        tr.seconds_per_indep_err,
    )
    if not pd.isna(tr.seconds_per_indep_amortized):
        # Training time has no statistical error: the amortized cost carries tau_int's error.
        row["ratio_seconds_amortized"], row["ratio_seconds_amortized_err"] = ratio_with_error(
            hmc.seconds_per_indep,
            hmc.seconds_per_indep_err,
            tr.seconds_per_indep_amortized,
            tr.seconds_per_indep_err,
        )
    return row
