"""``dlhmc hmc``: plain HMC chains for one (group, lattice, beta, N_LF, eps) -> a chain file.

This is the baseline every trained sampler is compared with, so it records
exactly what the analysis needs (observables, acceptance and ``dH`` per
trajectory, wall-clock throughput) and nothing depends on which group runs:
the theory object supplies the physics and its own observables.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from dlhmc.commands.options import (
    OneLineParser,
    UsageError,
    nonnegative_int,
    positive_float,
    positive_int,
    resolve_device,
)
from dlhmc.io import chain_dataset, write_chains
from dlhmc.lattice import PRECISIONS, THEORIES, make_theory, theory_class
from dlhmc.samplers.base import run_chains
from dlhmc.samplers.hmc import HMC
from dlhmc.theory import GaugeTheory

MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed accepts 64-bit seeds


def register(subparsers: argparse._SubParsersAction) -> None:
    parser: OneLineParser = subparsers.add_parser(
        "hmc",
        help="run HMC chains and write a chain file",
        description="Run batched HMC chains (one per --chains) and write a NetCDF chain file.",
    )
    parser.add_argument("--group", choices=tuple(THEORIES), default="U1", help="gauge group")
    parser.add_argument(
        "--lattice",
        type=positive_int,
        nargs="+",
        required=True,
        metavar="N",
        help="lattice extents: Nt Nx for U1, Nt Nx Ny Nz for SU3",
    )
    parser.add_argument("--beta", type=positive_float, required=True, help="gauge coupling")
    parser.add_argument(
        "--nlf", type=positive_int, default=10, help="leapfrog steps per trajectory"
    )
    parser.add_argument("--eps", type=positive_float, default=0.1, help="leapfrog step size")
    parser.add_argument(
        "--chains", type=positive_int, default=64, help="independent chains (batch)"
    )
    parser.add_argument(
        "--trajectories",
        type=positive_int,
        default=2000,
        help="recorded trajectories per chain, after thermalization",
    )
    parser.add_argument(
        "--therm", type=nonnegative_int, default=200, help="unrecorded thermalization trajectories"
    )
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the one generator")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda[:N]")
    parser.add_argument("--precision", choices=PRECISIONS, default="double")
    parser.add_argument("--start", choices=("hot", "cold"), default="hot", help="initial links")
    parser.add_argument("--out", type=Path, required=True, help="chain file to write (.nc)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def validate(args: argparse.Namespace) -> tuple[GaugeTheory, torch.device]:
    """Every check that can fail, before any work, each naming its option."""
    try:
        theory_class(args.group).check_lattice(tuple(args.lattice))
    except ValueError as err:
        raise UsageError(f"--lattice: {err}") from None
    if args.seed > MAX_SEED:
        raise UsageError(f"--seed: must be <= {MAX_SEED}, got {args.seed}")
    if args.out.is_dir():
        raise UsageError(f"--out: {str(args.out)!r} is a directory")
    device = resolve_device(args.device)
    theory = make_theory(args.group, args.lattice, args.beta, args.precision, device)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out: cannot create {str(args.out.parent)!r}: {err.strerror}") from None
    return theory, device


def run(args: argparse.Namespace) -> int:
    theory, device = validate(args)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    total = args.therm + args.trajectories
    bar = tqdm(
        total=total,
        desc="hmc",
        unit="traj",
        file=sys.stderr,
        disable=args.no_progress or not sys.stderr.isatty(),
    )
    with torch.no_grad(), bar:
        start = time.perf_counter()
        if args.start == "hot":
            x = theory.hot_start(args.chains, generator)
        else:
            x = theory.cold_start(args.chains)
        kernel = HMC(theory, args.nlf, args.eps)
        per_traj = run_chains(
            kernel, x, args.therm, args.trajectories, generator, progress=bar
        ).per_traj
        wall_seconds = time.perf_counter() - start
    attrs = {
        "group": args.group,
        "lattice": list(theory.lattice),
        "beta": args.beta,
        "sampler": "hmc",
        "nlf": args.nlf,
        "eps": args.eps,
        "n_therm": args.therm,
        "seed": args.seed,
        "wall_seconds": wall_seconds,
        "traj_per_second": total / wall_seconds,
        "precision": args.precision,
        "start": args.start,
        "device": str(device),
    }
    write_chains(args.out, chain_dataset(per_traj, attrs))
    return 0
