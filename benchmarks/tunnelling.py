"""Tunnelling rate: how often a trajectory changes the integer charge (issue 18 item 6).

At large beta the charge of every sampler freezes on chains of affordable length, so
``dlhmc analyze`` can only give ``tau_int(Q)`` as a lower bound, and two frozen samplers
cannot be told apart by it. Counting events can: a trajectory *tunnels* when the integer
charge ``Q_Z`` of its chain differs before and after it. This reads chain files of
``dlhmc hmc`` and ``dlhmc infer`` (variable ``charge``, per chain and trajectory) and prints,
per file, the fraction ``p = k / n`` of the ``n`` consecutive pairs whose charge differs, with

- the binomial error ``sqrt(p (1 - p) / n)`` and the 95 % Clopper-Pearson interval (at
  ``k = 0`` only its upper end, ``~3 / n``, says something);
- a chain-resampled (bootstrap over chains) error: the binomial one assumes independent
  trajectories, which fails if events cluster (a chain that tunnels and comes back);
- the (equilibrium) rate per leapfrog-step equivalent, ``p / N_LF`` (``N_LF``: leapfrog
  steps of an HMC trajectory, network layers of an L2HMC one, the repository's cost
  convention), and its inverse, the leapfrog steps per tunnelling event;
- the same rate reweighted to equilibrium, with its error (chains as clusters), and
  ``tau_lag1 = 2 <Q^2> / <dQ^2> - 1/2``, the lag-1 bound of ``tau_int``: both from
  :mod:`dlhmc.analysis.charge_moves`, which ``dlhmc analyze`` and the report's tunnelling table
  use too (frozen chains from a hot start sit in a sector distribution of the quench, so the
  rate out of each sector ``|Q_Z| = q`` is averaged with the exact sector probabilities);
- the fraction of events that undo the chain's previous event (``dQ`` opposite to the last
  ``dQ`` of that chain): a sampler that flips back and forth tunnels often but decorrelates
  the charge little; ``tau_int`` from ``dlhmc analyze`` stays the measure of decorrelation;
- the acceptance, the plaquette (error from the spread of chain means) against the exact
  finite-volume value, ``<Q_Z^2>`` against its exact value, and the depth of the
  plaquette dip of the middle layers (``min lf_plaq_dev``, L2HMC files only: the paper's
  figure-5 mechanism, the layers open the configuration up and close it again).

Usage (one row per file; ``--skip`` drops each chain's first trajectories)::

    .venv/bin/python benchmarks/tunnelling.py CHAINS.nc [CHAINS.nc ...] [--skip 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.stats import beta as beta_dist

from dlhmc.analysis.charge_moves import charge_moves
from dlhmc.analysis.exact import exact_charge_sq, exact_plaquette

BOOTSTRAP = 500


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval of ``k`` successes in ``n`` trials."""
    alpha = 1.0 - level
    low = 0.0 if k == 0 else float(beta_dist.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta_dist.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def tunnelling(path: Path, skip: int, seed: int = 0) -> dict:
    """Counts and rates of one chain file."""
    with xr.open_dataset(path) as data:
        charge = np.rint(data["charge"].values[:, skip:])
        accepted = data["accepted"].values[:, skip:]
        plaq = data["plaq"].values[:, skip:]
        attrs = dict(data.attrs)
        dip = float(data["lf_plaq_dev"].values.min()) if "lf_plaq_dev" in data else np.nan
    changed = charge[:, 1:] != charge[:, :-1]
    per_chain = changed.sum(axis=1)
    k, n = int(per_chain.sum()), int(changed.size)
    p = k / n
    rng = np.random.default_rng(seed)
    chains = len(per_chain)
    boot = [per_chain[rng.integers(0, chains, chains)].sum() / n for _ in range(BOOTSTRAP)]
    nlf = int(attrs["nlf"])
    lattice = tuple(int(v) for v in attrs["lattice"])
    beta = float(attrs["beta"])
    exact_p = exact_plaquette(attrs["group"], lattice, beta)
    exact_q2 = exact_charge_sq(attrs["group"], lattice, beta)
    means = plaq.mean(axis=1)
    steps = [np.diff(row)[np.diff(row) != 0] for row in charge]
    pairs_of_events = sum(max(len(d) - 1, 0) for d in steps)
    undone = sum(int((np.sign(d[1:]) == -np.sign(d[:-1])).sum()) for d in steps)
    moves = charge_moves(charge, attrs["group"], lattice, beta)
    # the equilibrium rate where the sectors allow it (a chain set that never thermalized may
    # start all its events in sectors too rare to have an exact weight: then the raw rate)
    rate_eq = moves.rate if moves is not None else np.nan
    best = rate_eq if rate_eq > 0 else p
    return {
        "file": path.name,
        "sampler": str(attrs.get("sampler", "?")),
        "lattice": "x".join(map(str, lattice)),
        "beta": beta,
        "nlf": nlf,
        "chains_x_traj": f"{charge.shape[0]}x{charge.shape[1]}",
        "accept": float(accepted.mean()),
        "events": k,
        "pairs": n,
        "rate": p,
        "binom_err": float(np.sqrt(p * (1 - p) / n)),
        "cp95": clopper_pearson(k, n),
        "rate_eq": rate_eq,
        "rate_eq_err": moves.rate_err if moves is not None else np.nan,
        "tau_lag1": moves.tau_lag1 if moves is not None else np.nan,
        "tau_lag1_err": moves.tau_lag1_err if moves is not None else np.nan,
        "boot_err": float(np.std(boot)),
        "chains_moving": int((per_chain > 0).sum()),
        "undone": undone / pairs_of_events if pairs_of_events else np.nan,
        "rate_per_lf": best / nlf,
        "lf_per_event": nlf / best if best > 0 else np.inf,
        "lf_per_event_min": nlf / clopper_pearson(k, n)[1],
        "plaq": float(means.mean()),
        "plaq_err": float(means.std(ddof=1) / np.sqrt(chains)),
        "plaq_exact": exact_p.value if exact_p is not None else np.nan,
        "q2": float((charge**2).mean()),
        "q2_exact": exact_q2.value if exact_q2 is not None else np.nan,
        "dip": dip,
        "sectors": int(len(np.unique(charge))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--skip", type=int, default=0, help="first trajectories per chain to drop")
    args = parser.parse_args()
    header = (
        "| file | sampler | L | beta | N_LF | chains x traj | accept | events / pairs "
        "| rate per traj (binom, boot) | 95% CP | equilibrium rate | tau_lag1 "
        "| eq. rate per LF step | LF steps per event "
        "| chains moving | undone | plaq (exact) | <Q_Z^2> (exact) | min lf_plaq_dev |"
    )
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for path in args.files:
        r = tunnelling(path, args.skip)
        low, high = r["cp95"]
        per_event = f"{r['lf_per_event']:.3g}" if r["events"] else f">= {r['lf_per_event_min']:.3g}"
        print(
            f"| {r['file']} | {r['sampler']} | {r['lattice']} | {r['beta']:g} | {r['nlf']} "
            f"| {r['chains_x_traj']} | {r['accept']:.3f} | {r['events']} / {r['pairs']} "
            f"| {r['rate']:.2e} +- {r['binom_err']:.1e} ({r['boot_err']:.1e}) "
            f"| [{low:.1e}, {high:.1e}] "
            f"| {r['rate_eq']:.2e} +- {r['rate_eq_err']:.1e} "
            f"| {r['tau_lag1']:.4g} +- {r['tau_lag1_err']:.2g} "
            f"| {r['rate_per_lf']:.2e} | {per_event} "
            f"| {r['chains_moving']} | {r['undone']:.2f} "
            f"| {r['plaq']:.5f}({r['plaq_err'] * 1e5:.0f}) "
            f"({r['plaq_exact']:.5f}) | {r['q2']:.3f} ({r['q2_exact']:.3f}) | {r['dip']:.3f} |"
        )


if __name__ == "__main__":
    main()
