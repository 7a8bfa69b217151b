"""``dlhmc trex``: replica exchange across a ladder of couplings -> one chain file per beta.

``C`` independent ladders, one replica per beta moved by ``dlhmc hmc``'s kernel, and a swap round
between neighbours every ``--swap-every`` trajectories (:mod:`dlhmc.samplers.replica_exchange`):
plain parallel tempering (sampler ``pt``), or T-REX through one trained bridge flow per pair
(``--bridges``, sampler ``trex``).  ``DIR/beta<B>.nc`` holds the chains of the replicas sitting at
``B`` after each trajectory, an ordinary chain file; ``DIR/swaps.csv`` the acceptance of each
pair and ``DIR/round_trips.csv`` the replicas' round trips through the ladder.

Costs are charged honestly: the whole ladder is spent to make each file's chains, so every file
states the ladder's force evaluations per trajectory (``ladder_size`` times the kernel's), its
bridge passes (``flow_passes`` of ``flow_layers`` layers each) and the forces recomputed after
accepted swaps (``force_refreshes``); the analysis counts them all
(:mod:`dlhmc.analysis.move_costs`), and ``traj_per_second`` is the whole ladder's rate.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dlhmc import checkpoint as ckpt
from dlhmc.analysis.autocorr import gamma_method
from dlhmc.atomic import check_room, write_text
from dlhmc.commands import checks, outputs
from dlhmc.commands.options import UsageError, add_settings, option_error
from dlhmc.groups import resolve_integrator
from dlhmc.io import chain_dataset, write_chains
from dlhmc.lattice import make_theory, theory_class
from dlhmc.plan.paths import beta_label
from dlhmc.samplers.hmc import HMC
from dlhmc.samplers.replica_exchange import (
    LadderChains,
    ReplicaExchange,
    bridge_layers,
    round_trips,
    run_ladder,
)
from dlhmc.settings import MAX_SEED, TrexSettings
from dlhmc.theory import same_coupling

SWAP_COLUMNS = ("pair", "beta_from", "beta_to", "proposed", "accepted", "acceptance",
                "acceptance_error", "accept_prob", "divergent")  # fmt: skip
TRIP_COLUMNS = ("ladders", "ladder_size", "trajectories", "round_trips", "per_1000_trajectories")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trex",
        help="replica exchange over a beta ladder (parallel tempering, or T-REX with bridges)",
        description="Run C ladders of HMC replicas, one per --betas value, with neighbour swaps "
        "(through --bridges flows: T-REX) and write one chain file per beta, swaps.csv and "
        "round_trips.csv into --out-dir.",
    )
    add_settings(parser, TrexSettings)
    parser.set_defaults(func=run)
    outputs.declare(parser, inputs=("bridges",), output_dirs=("out_dir",))


def chain_path(out_dir, beta: float) -> Path:
    """The chain file of ``beta``, named as the workflow names beta directories."""
    return Path(out_dir) / f"beta{beta_label(beta)}.nc"


def validate(args: argparse.Namespace) -> torch.device:
    """Every check of the options alone, before any work, each naming its option."""
    try:
        theory_class(args.group).check_lattice(tuple(args.lattice))
    except ValueError as err:
        raise UsageError(f"--lattice: {err}") from None
    betas = list(args.betas)
    if len(betas) < 2:
        raise UsageError(f"--betas: a ladder needs at least 2 couplings, got {len(betas)}")
    if any(b >= c for b, c in zip(betas, betas[1:], strict=False)):
        shown = " ".join(f"{b:g}" for b in betas)
        raise UsageError(f"--betas: expected strictly increasing couplings, got {shown}")
    if args.bridges:
        from dlhmc.flows.model import GROUPS as FLOW_GROUPS

        if args.group not in FLOW_GROUPS:
            raise UsageError(f"--bridges: flows are implemented for {', '.join(FLOW_GROUPS)} "
                             f"only, got --group {args.group}")
        if len(args.bridges) != len(betas) - 1:
            raise UsageError(f"--bridges: expected one run per neighbouring pair of --betas "
                             f"({len(betas) - 1}), got {len(args.bridges)}")
    if args.seed > MAX_SEED:
        raise UsageError(f"--seed: must be <= {MAX_SEED}, got {args.seed}")
    checks.seed(args.seed)
    device = checks.device(args.device)
    checks.memory(args.group, args.lattice, args.chains * len(betas), args.precision,
                  "infer" if args.bridges else "hmc", "--chains, --lattice, --betas", device,
                  trajectories=args.trajectories)
    checks.writable(args.out_dir, "--out-dir", directory=True)
    return device


def _kernels(theory, args: argparse.Namespace) -> list[HMC]:
    integrator = resolve_integrator(args.group, args.integrator)
    try:
        return [HMC(theory.with_beta(beta), args.nlf, args.eps, integrator) for beta in args.betas]
    except ValueError as err:
        raise option_error(err) from None


def load_bridges(args: argparse.Namespace, device: torch.device, theory) -> tuple[list, float]:
    """The bridge flows of ``--bridges``, each checked against its pair of the ladder, and the
    seconds their training took in all (a cost of T-REX that plain parallel tempering does not
    pay; the chain files carry it as ``training_seconds``, as a learned sampler's do)."""
    from dlhmc.flows import store

    bridges, seconds = [], 0.0
    pairs = zip(args.bridges, args.betas, args.betas[1:], strict=False)
    for run_dir, beta_from, beta_to in pairs:
        try:
            flow, state = store.load_bridge(run_dir, device, lattice=tuple(args.lattice))
        except ckpt.CheckpointError as err:
            raise UsageError(f"--bridges: {_first_line(err)}") from None
        except (OSError, ValueError) as err:
            raise UsageError(f"--bridges: cannot use {run_dir}: {_first_line(err)}") from None
        config = state.get("config", {})
        if state.get("sampler") != "bridge":
            raise UsageError(f"--bridges: {run_dir} is not a bridge run (sampler "
                             f"{state.get('sampler')!r})")
        group = getattr(getattr(flow, "theory", None), "name", config.get("group"))
        if group != args.group:
            raise UsageError(f"--bridges: {run_dir} is a {group} bridge, not {args.group}")
        ends = (config.get("beta_from"), config.get("beta"))
        if not all(isinstance(b, (int, float)) for b in ends) or any(
                not same_coupling(b, want) for b, want in zip(ends, (beta_from, beta_to),
                                                              strict=True)):
            raise UsageError(f"--bridges: {run_dir} bridges beta {ends[0]} -> {ends[1]}, not the "
                             f"pair {beta_from:g} -> {beta_to:g} of --betas")
        bridges.append(flow.to(dtype=theory.dtype))
        seconds += ckpt.training_seconds_total(state)
    return bridges, seconds


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def swap_rows(betas, swaps: dict[int, dict[str, np.ndarray]]) -> list[dict]:
    """One row per neighbouring pair: proposals, acceptances, their rate and its error.

    ``acceptance`` is the accepted fraction; its error the Gamma method's for the 0/1 series of
    the pair's proposals (one series per ladder: consecutive swaps of one ladder are
    correlated), or the binomial ``sqrt(a (1 - a) / n)`` where the series cannot give one (too
    short, or constant).  ``accept_prob`` is the mean Metropolis probability.
    """
    rows = []
    for k in range(len(betas) - 1):
        pair = swaps.get(k)
        accepted = np.zeros((1, 0)) if pair is None else pair["accepted"].astype(np.float64)
        proposed, count = accepted.size, int(accepted.sum())
        rate = count / proposed if proposed else math.nan
        error = math.sqrt(rate * (1 - rate) / proposed) if proposed else math.nan
        if accepted.shape[1] >= 4:
            result = gamma_method(accepted)
            if not result.frozen and math.isfinite(result.mean_err):
                error = result.mean_err
        rows.append({
            "pair": f"{k}-{k + 1}", "beta_from": betas[k], "beta_to": betas[k + 1],
            "proposed": proposed, "accepted": count, "acceptance": rate,
            "acceptance_error": error,
            "accept_prob": float(pair["accept_prob"].mean()) if proposed else math.nan,
            "divergent": int(pair["divergent"].sum()) if proposed else 0,
        })  # fmt: skip
    return rows


def trip_row(replica: np.ndarray) -> dict:
    """Round trips of every replica (``replica [K, C, T]``): total, and per ladder and 1000
    trajectories."""
    trips = round_trips(replica)
    rungs, ladders, trajectories = replica.shape
    return {"ladders": ladders, "ladder_size": rungs, "trajectories": trajectories,
            "round_trips": int(trips.sum()),
            "per_1000_trajectories": 1000.0 * trips.sum() / (ladders * trajectories)}


def csv_text(rows: list[dict], columns) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def run(args: argparse.Namespace) -> int:
    device = validate(args)
    betas = [float(b) for b in args.betas]
    theory = make_theory(args.group, args.lattice, betas[0], args.precision, device)
    kernels = _kernels(theory, args)
    bridges, training_seconds = load_bridges(args, device, theory) if args.bridges else (None, 0.0)
    exchange = ReplicaExchange(kernels, bridges)
    layers = {bridge_layers(b) for b in bridges} if bridges else {0}
    if len(layers) > 1:
        raise UsageError(f"--bridges: the bridges have different depths {sorted(layers)}: the "
                         "chain files count one flow_layers per pass")
    generator = torch.Generator(device=device).manual_seed(args.seed)
    total = args.therm + args.trajectories
    bar = tqdm(total=total, desc="trex" if bridges else "pt", unit="traj", file=sys.stderr,
               disable=args.no_progress or not sys.stderr.isatty())
    with torch.no_grad(), bar:
        start = time.perf_counter()
        if args.start == "hot":
            xs = [theory.hot_start(args.chains, generator) for _ in betas]
        else:
            xs = [theory.cold_start(args.chains) for _ in betas]
        chains = run_ladder(exchange, xs, args.therm, args.trajectories, args.swap_every,
                            generator, progress=bar)
        wall_seconds = time.perf_counter() - start
    attrs = {
        "group": args.group, "lattice": list(theory.lattice),
        "sampler": "trex" if bridges else "pt",
        "nlf": args.nlf, "eps": args.eps, "integrator": resolve_integrator(args.group,
                                                                            args.integrator),
        "force_evaluations": len(betas) * kernels[0].force_evaluations,
        "force_refreshes": chains.force_refreshes,
        "flow_passes": chains.flow_passes, "flow_layers": layers.pop(),
        "betas": betas, "ladder_size": len(betas), "swap_every": args.swap_every,
        "bridges": " ".join(str(p) for p in args.bridges),
        "n_therm": args.therm, "seed": args.seed, "wall_seconds": wall_seconds,
        "traj_per_second": total / wall_seconds, "training_seconds": training_seconds,
        "precision": args.precision,
        "start": args.start, "device": str(device),
    }  # fmt: skip
    return _write(args, betas, attrs, chains)


def _write(args, betas, attrs: dict, chains: LadderChains) -> int:
    """Every file (chain files first: the tables summarize them), then the exit status:
    divergent trajectories as ``dlhmc hmc`` reports them, and divergent swaps likewise."""
    out_dir = Path(args.out_dir)
    datasets = [chain_dataset(per_traj, {**attrs, "beta": beta})
                for beta, per_traj in zip(betas, chains.per_traj, strict=True)]
    check_room(out_dir / "swaps.csv", sum(d.nbytes for d in datasets))
    for beta, dataset in zip(betas, datasets, strict=True):
        write_chains(chain_path(out_dir, beta), dataset)
    rows = swap_rows(betas, chains.swaps)
    write_text(out_dir / "swaps.csv", csv_text(rows, SWAP_COLUMNS))
    replica = np.stack([per_traj["replica"] for per_traj in chains.per_traj])
    write_text(out_dir / "round_trips.csv",
               csv_text([trip_row(replica.astype(np.int64))], TRIP_COLUMNS))
    status = _swap_divergences(rows, out_dir)
    # Rungs where every trajectory diverged last: their error is the run's last line.
    rungs = sorted(zip(betas, chains.per_traj, strict=True),
                   key=lambda rung: bool(np.all(rung[1]["divergent"])))
    for beta, per_traj in rungs:
        status = max(status, checks.divergences(
            "trex", per_traj, f"--eps {args.eps:g} at beta {beta:g}", chain_path(out_dir, beta)))
    return status


def _swap_divergences(rows: list[dict], out_dir: Path) -> int:
    """A swap whose log-ratio is not finite was rejected; all of them means a broken bridge."""
    return checks.rejections(
        "trex", sum(row["divergent"] for row in rows), sum(row["proposed"] for row in rows),
        "swaps diverged (non-finite log-acceptance, rejected): see swaps.csv",
        "swaps diverged (non-finite log-acceptance): the --bridges give no valid swap; "
        f"{out_dir} is written as evidence",
    )
