"""``dlhmc derivative``: ``d<O>/dbeta`` of the plaquette and ``Q^2`` by finite differences
between two chain files, by independent ensembles, reweighting and (``--bridge``) a bridge flow.

The estimators, their errors and the choice of configurations are
:mod:`dlhmc.analysis.derivative`; this module checks the inputs (one line naming the option,
exit 2, before any work), maps the configurations and writes the CSV atomically. A value or
error that comes out NaN (a charge frozen in every chain, say) is written as the evidence and
ends the run with exit status 1.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from dlhmc.analysis.chains import ChainFileError, ChainSet, load_chain_set
from dlhmc.atomic import atomic_path
from dlhmc.commands import checks, outputs
from dlhmc.commands.options import UsageError, positive_int
from dlhmc.theory import same_coupling

# Configurations mapped through the flow in one pass unless --batch says.
BATCH = 256


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "derivative",
        help="d<plaq>/dbeta and d<Q^2>/dbeta by finite differences of two chain files",
        description=(
            "The finite difference (<O>_B2 - <O>_B1) / (B2 - B1) of the plaquette (plaq) and "
            "Q_Z^2 (q2) by three estimators, one CSV row each: independent (the two "
            "ensembles), reweight (the stored configurations of B1 reweighted to B2) and, with "
            "--bridge, flow (B1's configurations mapped by a bridge flow trained from B1 to "
            "B2). Errors by Wolff's Gamma method, chains as replicas, linearized for the "
            "ratio estimators. B1 must hold configurations (dlhmc hmc --save-every K)."
        ),
    )
    parser.add_argument("--chains", nargs="+", required=True, type=Path, metavar="CHAINS.nc",
                        help="two chain files: B1 (with configurations) and B2")
    parser.add_argument("--bridge", type=Path, default=None, metavar="RUN_DIR",
                        help="a bridge flow's run (dlhmc train --sampler bridge) from B1 to B2")
    parser.add_argument("--out", required=True, type=Path, help="CSV table to write")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda[:N]")
    parser.add_argument("--batch", type=positive_int, default=BATCH, metavar="N",
                        help=f"configurations per pass through the flow (default {BATCH})")
    parser.set_defaults(func=run)
    outputs.declare(parser, inputs=("chains", "bridge"), outputs=("out",))


def _chain_sets(paths: list[Path]) -> tuple[ChainSet, ChainSet]:
    from dlhmc.analysis.derivative import check_pair

    if len(paths) != 2:
        raise UsageError(f"--chains: expected exactly two chain files (B1 B2), got {len(paths)}")
    try:
        first, second = (load_chain_set(p) for p in paths)
        check_pair(first, second)
    except (ChainFileError, ValueError) as err:
        raise UsageError(f"--chains: {err}") from None
    return first, second


def _bridge(run_dir: Path, first: ChainSet, second: ChainSet, device):
    """The bridge flow of ``run_dir``, checked against the files (the same group and lattice,
    trained from B1's coupling to B2's), and the chains of B1 to evaluate it on: all of them,
    or, where the bridge trained on B1's own file, only the chains it held out (an estimate on
    its training configurations is biased: :mod:`dlhmc.analysis.derivative`)."""
    from dlhmc.flows.store import load_bridge

    try:
        flow, state = load_bridge(run_dir, device, lattice=first.lattice)
    except (OSError, ValueError) as err:  # CheckpointError is a ValueError
        raise UsageError(f"--bridge: {err}") from None
    config = state["config"]
    lattice = tuple(int(n) for n in config["lattice"])
    if config["group"] != first.group or lattice != first.lattice:
        raise UsageError(f"--bridge: {run_dir} is a {config['group']} bridge on "
                         f"{'x'.join(map(str, lattice))}; the chain files are {first.group} on "
                         f"{first.lattice_label}")
    for key, beta, which in (("beta_from", first.beta, "B1"), ("beta", second.beta, "B2")):
        if not same_coupling(config[key], beta):
            raise UsageError(f"--bridge: {run_dir} has {key} {float(config[key]):g}, but "
                             f"{which} ({(first if which == 'B1' else second).path}) is at "
                             f"beta {beta:g}")
    data = config.get("data")
    if data is None or not _same_file(Path(data), first.path):
        return flow, slice(None)
    from dlhmc.training.bridge_trainer import held_out_chains

    chains = first.data.sizes["chain"]
    held = held_out_chains(chains)
    print(f"dlhmc derivative: the bridge trained on {first.path}: the flow rows use its "
          f"{held} held-out chains of {chains}")
    return flow, slice(chains - held, None)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    from dlhmc.analysis.derivative import derivative_table

    if not args.out.parent.is_dir():
        raise UsageError(f"--out: directory {args.out.parent} does not exist")
    checks.writable(args.out, "--out")
    device = checks.device(args.device)
    first, second = _chain_sets(args.chains)
    bridge, chains = (None, slice(None)) if args.bridge is None else _bridge(
        args.bridge, first, second, device)
    try:
        table = derivative_table(first, second, bridge, device, args.batch, chains)
    except ValueError as err:  # non-finite weights or observables of the mapped links
        print(f"dlhmc derivative: error: {err}; {args.out} not written", file=sys.stderr)
        return 1
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    for row in table.itertuples():
        exact = "" if math.isnan(row.exact) else f" (exact {row.exact:.6g})"
        print(f"d<{row.observable}>/dbeta {row.estimator}: {row.value:.6g} +- {row.error:.2g}"
              f"{exact}")
    print(f"wrote {len(table)} rows to {args.out}")
    bad = table[~(table.value.notna() & table.error.notna())]
    if len(bad):
        names = ", ".join(f"{r.observable}/{r.estimator}" for r in bad.itertuples())
        print(f"dlhmc derivative: error: no finite value or error for {names} (a series "
              f"constant in every chain, e.g. a frozen charge); {args.out} is written as the "
              "evidence", file=sys.stderr)
        return 1
    return 0
