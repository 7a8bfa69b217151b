"""The tau_int table: one row per chain file and observable, the input of every comparison.

Observables: ``charge``, ``charge_real`` (where the file has it), ``charge_sq`` (``Q^2`` of the
stored charge, for the exactness check of the charge distribution), ``plaq`` and, where the exact
charge distribution is known (2D U(1)), ``sector_q`` for ``q = 0, 1, ...``: the indicator of
``|Q_Z| = q`` (mean ``P(|Q_Z| = q)``), for every sector above ``exact.SECTOR_THRESHOLD``, whose
means the exactness checks compare with the exact sector weights. Every row
carries the sampler's category (``hmc``, ``whmc``, ``l2hmc``, ``l2hmc_w``: see
``chains.CATEGORIES``) and the settings that tell samplers of one category apart. The topological
charges have mean 0 by parity, so their ``tau_int`` is the Gamma-method estimate with the mean
fixed at 0 (``known_mean`` = 0): nothing is estimated from the data, and slow sector-to-sector
wandering counts fully even when the sample mean happens to be off. The global-mean estimate is
kept beside it in ``tau_int_free_mean``; for ``plaq`` (no known mean) both columns are the
global-mean estimate. A row is ``frozen`` (tau_int and the costs are lower bounds) when either
estimate is; ``frozen_reason`` says why. ``tau_int_pyerrors`` is the pyerrors cross-check
(per-chain means, biased low for chains short compared with tau_int); it is left blank for frozen
rows, where subtracting each stuck chain's own mean would turn "never moves" into tau_int = 1/2,
and for the sector indicators (a cross-check of costs that nothing compares; on a dozen indicators
per file it would take most of the analysis time).

Every row also has a ``role``: ``main`` for the samplers the comparison is about, and for the
beta-transfer files (a model trained at the beta below, deliberately less trained, passed
separately) ``transfer_none`` (sampled at a beta it was not trained at: ``train_beta != beta``) or
``transfer_retrained`` (briefly retrained at this beta), and for the volume curriculum's transfer
files (the model of train.lattice sampled unchanged on a volume where the ``main`` row is its
fine-tuned model, passed separately as well) ``transfer_volume``. Only ``main`` rows compete in
the comparison; an older table without the column is all ``main``.

``divergent_rate`` is the fraction of trajectories whose log-acceptance was not finite (rejected:
a chain set where every one diverged never left its start, and would otherwise read as merely
"frozen"). From :data:`DIVERGED_LIMIT` on, ``frozen_reason`` names the divergence, the exactness
checks get status ``diverged`` and :func:`report_divergences` makes ``dlhmc analyze`` say so;
where every trajectory diverged it exits 1, as ``dlhmc hmc`` does for such a run.

The ``charge`` row of a 2D U(1) file also counts the changes of the integer charge
(``charge_events`` of ``charge_pairs`` consecutive trajectories), their equilibrium rate per
trajectory (``tunnel_rate``) and ``tau_lag1 = 2 <Q^2> / <dQ^2> - 1/2``, the lag-1 bound of
``tau_int`` (:mod:`dlhmc.analysis.charge_moves`): where the charge is frozen on the chains'
length they still rank samplers.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd

from dlhmc.analysis.autocorr import DEFAULT_S, gamma_method, pyerrors_tau_int
from dlhmc.analysis.chains import ChainFileError, ChainSet
from dlhmc.analysis.charge_moves import charge_moves
from dlhmc.analysis.costs import sample_cost
from dlhmc.analysis.exact import exact_sectors
from dlhmc.theory import same_coupling

OBSERVABLES = ("charge", "charge_real", "charge_sq", "plaq")
KNOWN_MEANS = {"charge": 0.0, "charge_real": 0.0}
# Observables computed from a stored variable: name -> (variable, function).
DERIVED = {"charge_sq": ("charge", np.square)}
# Indicator of the charge sector |Q_Z| = q: observable SECTOR_PREFIX + str(q).
SECTOR_PREFIX = "sector_"
ROLES = ("main", "transfer_none", "transfer_retrained", "transfer_volume")
# From this fraction of divergent trajectories on, a chain set has barely sampled: whatever its
# tau_int or its checks say, the step size (not the sampler's mixing) is the cause.
DIVERGED_LIMIT = 0.9
# The charge row's counts of charge changes: raw events and pairs of consecutive trajectories,
# the equilibrium events per trajectory and the lag-1 tau_int bound (analysis.charge_moves).
MOVES_COLUMNS = ("charge_events", "charge_pairs", "tunnel_rate", "tunnel_rate_err", "tau_lag1",
                 "tau_lag1_err")  # fmt: skip
# Columns a table written before they existed lacks, with the value they mean there.
OPTIONAL_COLUMNS = {
    "role": "main",
    "train_beta": math.nan,
    "training_steps": math.nan,
    "n_params": math.nan,
    "train_lattice": "",
    "divergent_rate": math.nan,
    "flow_layers": 0,
    "ess": math.nan,
    **dict.fromkeys(MOVES_COLUMNS, math.nan),
}

COLUMNS = (
    "experiment",
    "group",
    "lattice",
    "beta",
    "sampler",
    "category",
    "role",
    "nlf",
    "eps",
    "instanton_hits",
    "instanton_size",
    "lf_per_traj",
    "winding",
    "network",
    "integrator",
    "flow_layers",
    "ess",
    "observable",
    "mean",
    "mean_err",
    "tau_int",
    "tau_int_err",
    "cost_lf",
    "cost_lf_err",
    "seconds_per_indep",
    "seconds_per_indep_err",
    "seconds_per_indep_amortized",
    "accept_rate",
    "divergent_rate",
    "instanton_accept_rate",
    *MOVES_COLUMNS,
    "n_chains",
    "n_traj",
    "frozen",
    "frozen_reason",
    "window",
    "known_mean",
    "tau_int_free_mean",
    "tau_int_free_mean_err",
    "tau_int_pyerrors",
    "tau_int_pyerrors_err",
    "traj_per_second",
    "training_seconds",
    "train_beta",
    "training_steps",
    "n_params",
    "train_lattice",
    "amortize_samples",
    "file",
)


def sector_charge(observable: str) -> int | None:
    """``q`` of a ``sector_q`` observable, ``None`` for every other observable."""
    if not isinstance(observable, str) or not observable.startswith(SECTOR_PREFIX):
        return None
    return int(observable[len(SECTOR_PREFIX) :])


def series(chains: ChainSet) -> dict[str, np.ndarray]:
    """``[chain, traj]`` values of every observable of the table that this file has.

    The sector indicators compare ``|Q_Z|`` rounded to the nearest integer (the stored charge
    is integer valued up to round-off) with each ``q`` of the exact distribution.
    """
    out = {}
    for name in OBSERVABLES:
        variable, function = DERIVED.get(name, (name, None))
        if variable in chains.data.variables:
            values = chains.values(variable)
            out[name] = values if function is None else function(values)
    sectors = exact_sectors(chains.group, chains.lattice, chains.beta)
    if sectors:
        size = np.rint(np.abs(chains.values("charge")))
        for q in sectors:
            out[f"{SECTOR_PREFIX}{q}"] = (size == q).astype(np.float64)
    return out


def beta_key(betas: pd.Series) -> pd.Series:
    """Betas rounded to 10 significant digits, so that a beta read back from CSV matches the
    one computed; significant digits, not decimals, so that no finite beta overflows (rounding
    1e300 to 10 decimals multiplies it by 1e10)."""
    return betas.map(lambda beta: float(f"{beta:.10g}"))


def main_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that compete in the comparison: role ``main`` (every row of a table without
    roles, written before they existed)."""
    if "role" not in table.columns:
        return table
    return table[table.role.fillna("main") == "main"]


def transfer_role(chains: ChainSet) -> str:
    """Role of a beta-transfer chain file: ``transfer_none`` when its model was trained at another
    beta than it samples at, ``transfer_retrained`` when (re)trained at this one."""
    if chains.sampler == "hmc":
        raise ChainFileError(f"{chains.path}: an HMC file; transfer files come from trained models")
    train_beta = chains.attr("train_beta")
    if train_beta is None:
        raise ChainFileError(f"{chains.path}: missing attribute 'train_beta' (needed for transfer)")
    if same_coupling(train_beta, chains.beta):
        return "transfer_retrained"
    return "transfer_none"


def observable_rows(
    chains: ChainSet,
    experiment: str,
    amortize_samples: int | None = None,
    s: float = DEFAULT_S,
    role: str = "main",
) -> list[dict]:
    """Rows of the table for one chain file."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    traj_per_second = float(chains.attr("traj_per_second"))
    training_seconds = 0.0
    if chains.sampler != "hmc":
        training = chains.attr("training_seconds")
        if training is None and amortize_samples is not None:
            raise ChainFileError(
                f"{chains.path}: missing attribute 'training_seconds' (needed to amortize)"
            )
        training_seconds = math.nan if training is None else float(training)
    train_beta, training_steps, n_params, train_lattice = (
        chains.attr(a) for a in ("train_beta", "training_steps", "n_params", "train_lattice")
    )
    accept_rate = float(np.mean(chains.values("accepted")))
    divergent_rate = chains.divergent_rate
    diverged = divergence_text(divergent_rate) if divergent_rate >= DIVERGED_LIMIT else ""
    hits_rate = math.nan
    if chains.instanton_hits > 0 and "instanton_accepted" in chains.data.variables:
        hits_rate = float(np.mean(chains.values("instanton_accepted"))) / chains.instanton_hits
    moves = charge_moves(chains.values("charge"), chains.group, chains.lattice, chains.beta)
    rows = []
    for name, values in series(chains).items():
        known = KNOWN_MEANS.get(name)
        try:
            free = gamma_method(values, s=s)
            main = free if known is None else gamma_method(values, s=s, known_mean=known)
        except ValueError as err:
            raise ChainFileError(f"{chains.path}: variable {name!r}: {err}") from None
        reasons = dict.fromkeys(r for r in (diverged, main.reason, free.reason) if r)
        frozen = main.frozen or free.frozen
        cross_check = not frozen and sector_charge(name) is None
        pe_tau, pe_err = pyerrors_tau_int(values, s=s)[:2] if cross_check else (math.nan, math.nan)
        cost = sample_cost(
            main.tau_int,
            main.tau_int_err,
            chains.lf_per_traj,
            traj_per_second,
            training_seconds=training_seconds,
            amortize_samples=amortize_samples,
            chains=values.shape[0],
        )
        rows.append(
            {
                "experiment": experiment,
                "group": chains.group,
                "lattice": chains.lattice_label,
                "beta": chains.beta,
                "sampler": chains.sampler,
                "category": chains.category,
                "role": role,
                "nlf": chains.nlf,
                "eps": chains.eps,
                "instanton_hits": chains.instanton_hits,
                "instanton_size": chains.instanton_size,
                "lf_per_traj": chains.lf_per_traj,
                "winding": chains.winding,
                "network": chains.network,
                "integrator": chains.integrator,
                "flow_layers": chains.flow_layers,
                "ess": chains.ess,
                "observable": name,
                "mean": free.mean,
                "mean_err": free.mean_err,
                "tau_int": main.tau_int,
                "tau_int_err": main.tau_int_err,
                "cost_lf": cost.cost_lf,
                "cost_lf_err": cost.cost_lf_err,
                "seconds_per_indep": cost.seconds_per_indep,
                "seconds_per_indep_err": cost.seconds_per_indep_err,
                "seconds_per_indep_amortized": cost.seconds_per_indep_amortized,
                "accept_rate": accept_rate,
                "divergent_rate": divergent_rate,
                "instanton_accept_rate": hits_rate,
                **_moves_fields(moves if name == "charge" else None),
                "n_chains": int(values.shape[0]),
                "n_traj": int(values.shape[1]),
                "frozen": bool(frozen),
                "frozen_reason": "; ".join(reasons),
                "window": main.window,
                "known_mean": math.nan if known is None else known,
                "tau_int_free_mean": free.tau_int,
                "tau_int_free_mean_err": free.tau_int_err,
                "tau_int_pyerrors": pe_tau,
                "tau_int_pyerrors_err": pe_err,
                "traj_per_second": traj_per_second,
                "training_seconds": training_seconds,
                "train_beta": math.nan if train_beta is None else float(train_beta),
                "training_steps": math.nan if training_steps is None else int(training_steps),
                "n_params": math.nan if n_params is None else int(n_params),
                "train_lattice": ""
                if train_lattice is None
                else "x".join(str(int(n)) for n in np.atleast_1d(train_lattice)),
                "amortize_samples": math.nan if amortize_samples is None else amortize_samples,
                "file": str(chains.path),
            }
        )
    return rows


def _moves_fields(moves) -> dict:
    """The charge row's counts of charge changes (:mod:`dlhmc.analysis.charge_moves`); NaN on
    every other row and where the theory has no exact charge distribution."""
    if moves is None:
        return dict.fromkeys(MOVES_COLUMNS, math.nan)
    return {
        "charge_events": moves.events,
        "charge_pairs": moves.pairs,
        "tunnel_rate": moves.rate,
        "tunnel_rate_err": moves.rate_err,
        "tau_lag1": moves.tau_lag1,
        "tau_lag1_err": moves.tau_lag1_err,
    }


def divergence_text(rate: float) -> str:
    """What a divergent fraction means, in the words of the table and the report."""
    if rate >= 1.0:
        return "every trajectory diverged (non-finite dH): nothing was sampled"
    return f"a fraction {rate:.4g} of the trajectories diverged (non-finite dH)"


def report_divergences(table: pd.DataFrame, command: str = "analyze") -> int:
    """Say on stderr which chain files diverged; the exit status of the command.

    A warning per file with divergent trajectories, an error per file where every one diverged:
    its rows hold no sample (their tau_int is the bound of a chain that never moved), so the
    command exits 1 even though the table is written, as the evidence.
    """
    status = 0
    files = table.drop_duplicates(["file", "role"])
    for row in files[files.divergent_rate.fillna(0) > 0].itertuples():
        level = "error" if row.divergent_rate >= 1.0 else "warning"
        status = 1 if level == "error" else status
        print(f"dlhmc {command}: {level}: {row.file}: {divergence_text(row.divergent_rate)}; "
              f"the table marks its rows", file=sys.stderr)  # fmt: skip
    return status


def tau_table(
    chain_sets: list[ChainSet],
    experiment: str,
    amortize_samples: int | None = None,
    s: float = DEFAULT_S,
    transfer: list[ChainSet] = (),
    volume_transfer: list[ChainSet] = (),
) -> pd.DataFrame:
    """Rows of every chain set (role ``main``), of every beta-transfer chain set (its role from
    :func:`transfer_role`) and of every volume-transfer chain set (``transfer_volume``)."""
    roles = [(cs, "main") for cs in chain_sets] + [(cs, transfer_role(cs)) for cs in transfer]
    roles += [(cs, "transfer_volume") for cs in volume_transfer]
    rows = [
        r
        for cs, role in roles
        for r in observable_rows(cs, experiment, amortize_samples, s, role=role)
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))
