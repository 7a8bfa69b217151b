"""``dlhmc analyze``: tau_int (Wolff's Gamma method) and costs of every chain file, as one CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from dlhmc.analysis.chains import ChainFileError, load_chain_set
from dlhmc.analysis.table import report_divergences, tau_table
from dlhmc.atomic import atomic_path
from dlhmc.commands import checks, outputs
from dlhmc.commands.options import UsageError, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="integrated autocorrelation times and costs of chain files",
        description=(
            "One row per chain file and observable (charge, charge_real, charge_sq, plaq and, "
            "for U(1), the sector indicators sector_q of |Q_Z| = q): tau_int by "
            "Wolff's Gamma method (S = 1.5, chains as replicas, global mean; mean fixed at 0 for "
            "the charges), the mean with its error, N_LF * tau_int and seconds per independent "
            "sample. Frozen chain sets are flagged and their tau_int is a lower bound. Files "
            "given with --transfer (a model of another beta, as it is or briefly retrained) get "
            "their own role and stay out of the comparison, as do those given with "
            "--volume-transfer (a model of another volume, as it is, where the main row is "
            "its fine-tuned model)."
        ),
    )
    parser.add_argument("chains", nargs="+", type=Path, metavar="CHAINS.nc")
    parser.add_argument("--out", required=True, type=Path, help="CSV table to write")
    parser.add_argument(
        "--experiment", default="default", help="experiment name stored in every row"
    )
    parser.add_argument(
        "--transfer",
        nargs="+",
        default=[],
        type=Path,
        metavar="CHAINS.nc",
        help="beta-transfer chain files (role transfer_none or transfer_retrained by their "
        "train_beta attribute)",
    )
    parser.add_argument(
        "--volume-transfer",
        nargs="+",
        default=[],
        type=Path,
        metavar="CHAINS.nc",
        help="volume-curriculum transfer chain files (role transfer_volume): the model of the "
        "training volume sampled unchanged where the main file samples its fine-tuned model",
    )
    parser.add_argument(
        "--amortize-samples",
        type=positive_int,
        default=None,
        metavar="N",
        help="amortize L2HMC training time over N independent samples",
    )
    parser.set_defaults(func=run)
    outputs.declare(parser, inputs=("chains", "transfer", "volume_transfer"), outputs=("out",),
                    names=(("chains", "CHAINS.nc"),))


def run(args: argparse.Namespace) -> int:
    if not args.out.parent.is_dir():
        raise UsageError(f"--out: directory {args.out.parent} does not exist")
    if args.out.is_dir():
        raise UsageError(f"--out: {args.out} is a directory")
    checks.writable(args.out, "--out")
    try:
        table = tau_table(
            [load_chain_set(p) for p in args.chains],
            experiment=args.experiment,
            amortize_samples=args.amortize_samples,
            transfer=[load_chain_set(p) for p in args.transfer],
            volume_transfer=[load_chain_set(p) for p in args.volume_transfer],
        )
    except ChainFileError as err:
        raise UsageError(str(err)) from None
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    for row in table[table.observable == "charge"].itertuples():
        bound = ">=" if row.frozen else "="
        error = "" if pd.isna(row.tau_int_err) else f" +- {row.tau_int_err:.2g}"
        role = "" if row.role == "main" else f" ({row.role})"
        print(
            f"{row.sampler}{role} beta={row.beta:g} nlf={row.nlf} eps={row.eps:g}: "
            f"tau_int(charge) {bound} {row.tau_int:.4g}{error}, "
            f"N_LF*tau_int {bound} {row.cost_lf:.4g}"
        )
    print(f"wrote {len(table)} rows to {args.out}")
    return report_divergences(table)
