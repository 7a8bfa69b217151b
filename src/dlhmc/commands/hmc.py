"""``dlhmc hmc``: HMC chains for one (group, lattice, beta, N_LF, eps) -> a chain file.

This is the baseline every trained sampler is compared with, so it records
exactly what the analysis needs (observables, acceptance and ``dH`` per
trajectory, wall-clock throughput, force evaluations per trajectory) and nothing
depends on which group runs: the theory object supplies the physics and its own
observables.  With ``--instanton-hits K`` it is winding HMC, the baseline of a
learned sampler that has a topological move.  The hits' cost in leapfrog steps is a
fixed count of their operations (``dlhmc.analysis.move_costs``), not a timing: the
file records only what the analysis counts from (``instanton_hits``,
``instanton_size``, the accepted hits per trajectory) and the real time of the
hits is in ``traj_per_second``.  Files written before carry a measured
``hit_cost_lf``, which the analysis ignores.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from tqdm import tqdm

from dlhmc.atomic import check_room
from dlhmc.commands import checks, outputs
from dlhmc.commands.options import OneLineParser, UsageError, add_settings
from dlhmc.groups import resolve_integrator
from dlhmc.io import chain_dataset, write_chains
from dlhmc.lattice import make_theory, theory_class
from dlhmc.samplers.base import run_chains, sampling_mode
from dlhmc.samplers.hmc import HMC
from dlhmc.settings import MAX_INSTANTON_HITS, MAX_SEED, HMCSettings
from dlhmc.theory import GaugeTheory


def register(subparsers: argparse._SubParsersAction) -> None:
    parser: OneLineParser = subparsers.add_parser(
        "hmc",
        help="run HMC chains and write a chain file",
        description="Run batched HMC chains (one per --chains) and write a NetCDF chain file.",
    )
    add_settings(parser, HMCSettings)
    parser.set_defaults(func=run)
    outputs.declare(parser, outputs=("out",))


def _kernel(theory: GaugeTheory, args: argparse.Namespace) -> HMC:
    """The HMC kernel; its own checks (instanton options against the lattice and the group)
    become usage errors naming the option, whose key starts the library's message."""
    try:
        return HMC(theory, args.nlf, args.eps, resolve_integrator(args.group, args.integrator),
                   args.instanton_hits, args.instanton_size)
    except ValueError as err:
        key, _, rest = str(err).partition(" ")
        raise UsageError(f"--{key.rstrip(':').replace('_', '-')}: {rest}") from None


def validate(args: argparse.Namespace) -> torch.device:
    """Every check of the options alone that can fail, before any work, each naming its option:
    the lattice, the seed, the device, the memory the chains need and that the chain file can be
    written.  Returns the device the chains run on; the kernel checks the rest as it is built."""
    try:
        theory_class(args.group).check_lattice(tuple(args.lattice))
    except ValueError as err:
        raise UsageError(f"--lattice: {err}") from None
    if args.seed > MAX_SEED:
        raise UsageError(f"--seed: must be <= {MAX_SEED}, got {args.seed}")
    if args.instanton_hits > MAX_INSTANTON_HITS:
        raise UsageError(f"--instanton-hits: expected at most {MAX_INSTANTON_HITS} hits per "
                         f"trajectory, got {args.instanton_hits}")
    if args.instanton_size and not args.instanton_hits:
        raise UsageError(f"--instanton-size: {args.instanton_size} has no effect without "
                         "--instanton-hits K (K > 0 hits after each trajectory)")
    checks.seed(args.seed)
    device = checks.device(args.device)
    if args.save_every > args.trajectories:
        raise UsageError(f"--save-every: {args.save_every} keeps no configuration of "
                         f"--trajectories {args.trajectories}; expected at most that")
    checks.memory(args.group, args.lattice, args.chains, args.precision, "hmc",
                  "--chains, --lattice", device, trajectories=args.trajectories)
    checks.writable(args.out, "--out")
    return device


def run(args: argparse.Namespace) -> int:
    device = validate(args)
    theory = make_theory(args.group, args.lattice, args.beta, args.precision, device)
    kernel = _kernel(theory, args)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    total = args.therm + args.trajectories
    bar = tqdm(
        total=total,
        desc="hmc",
        unit="traj",
        file=sys.stderr,
        disable=args.no_progress or not sys.stderr.isatty(),
    )
    with sampling_mode(kernel), bar:
        start = time.perf_counter()
        if args.start == "hot":
            x = theory.hot_start(args.chains, generator)
        else:
            x = theory.cold_start(args.chains)
        chains = run_chains(kernel, x, args.therm, args.trajectories, generator, progress=bar,
                            save_every=args.save_every)
        per_traj = chains.per_traj
        wall_seconds = time.perf_counter() - start
    attrs = {
        "group": args.group,
        "lattice": list(theory.lattice),
        "beta": args.beta,
        "sampler": "hmc",
        "nlf": args.nlf,
        "eps": args.eps,
        "integrator": resolve_integrator(args.group, args.integrator),
        "force_evaluations": kernel.force_evaluations,
        "instanton_hits": kernel.instanton_hits,
        "instanton_size": kernel.instanton_size,
        "n_therm": args.therm,
        "seed": args.seed,
        "wall_seconds": wall_seconds,
        "traj_per_second": total / wall_seconds,
        "precision": args.precision,
        "start": args.start,
        "device": str(device),
    }
    if args.save_every:
        attrs["save_every"] = args.save_every
    dataset = chain_dataset(per_traj, attrs, configurations=chains.configurations,
                            save_every=args.save_every)
    check_room(args.out, dataset.nbytes)
    write_chains(args.out, dataset)
    return checks.divergences(
        "hmc", per_traj, f"--eps {args.eps:g} at --beta {args.beta:g}", args.out
    )
