"""``dlhmc report``: the per-experiment HTML report, comparison table and figures."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pandas as pd

from dlhmc.analysis.bridges import BridgeInputError, read_derivatives, read_exchanges
from dlhmc.analysis.chains import ChainFileError, load_chain_set
from dlhmc.analysis.checks import exactness_checks, physical_range
from dlhmc.analysis.report import build_report
from dlhmc.analysis.runs import RunDirError, load_run
from dlhmc.analysis.table import COLUMNS, OPTIONAL_COLUMNS, report_divergences
from dlhmc.commands import checks, outputs
from dlhmc.commands.options import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="HTML report, comparison table and figures of one experiment",
        description=(
            "Compare, per beta, the best of each kind of sampler (plain HMC, winding HMC, L2HMC, "
            "L2HMC with winding; N_LF * tau_int of the charge and seconds per independent "
            "sample), check every plaquette, U(1) <Q_Z^2> and U(1) sector weight P(|Q_Z| = q) "
            "(where the chains resolve it) against its exact value, set the "
            "beta-transfer rows of the table (if any) beside the ladder's model, and draw the "
            "six figures (PNG and PDF) into one HTML page."
        ),
    )
    parser.add_argument("--table", required=True, type=Path, help="CSV from dlhmc analyze")
    parser.add_argument(
        "--chains",
        nargs="*",
        default=[],
        type=Path,
        metavar="CHAINS.nc",
        help="chain files (charge histories, per-layer diagnostics, settings)",
    )
    parser.add_argument(
        "--runs",
        nargs="*",
        default=[],
        type=Path,
        metavar="RUN_DIR",
        help="training run directories (metrics.csv, config.yaml)",
    )
    parser.add_argument(
        "--derivatives",
        nargs="*",
        default=[],
        type=Path,
        metavar="DERIVATIVE.csv",
        help="dlhmc derivative tables (bridges: figure 6, the derivatives table and checks)",
    )
    parser.add_argument(
        "--exchange",
        nargs="*",
        default=[],
        type=Path,
        metavar="DIR",
        help="dlhmc trex output directories (swaps.csv and chain files: the swaps table)",
    )
    parser.add_argument("--experiment", required=True, help="experiment whose rows to report")
    parser.add_argument("--out-dir", required=True, type=Path, help="directory for the report")
    parser.set_defaults(func=run)
    outputs.declare(parser, inputs=("table", "chains", "runs", "derivatives", "exchange"),
                    output_dirs=("out_dir",))  # fmt: skip


def _kind(path: Path) -> str:
    """What a path that is no regular file is, in words (``/dev/null``: a character device)."""
    mode = path.stat().st_mode
    for test, words in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
                        (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "not a regular file"


def read_table(path: Path, experiment: str) -> pd.DataFrame:
    """The rows of ``experiment`` in a table written by ``dlhmc analyze``."""
    if not path.exists():
        raise UsageError(f"--table: {path}: no such file")
    if not path.is_file():
        raise UsageError(
            f"--table: {path} is {_kind(path)}, expected a CSV file from dlhmc analyze"
        )
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        raise UsageError(f"--table: {path}: not a CSV table") from None
    missing = [c for c in COLUMNS if c not in table.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise UsageError(f"--table: {path}: missing column {missing[0]!r}")
    for column, value in OPTIONAL_COLUMNS.items():
        if column not in table.columns:
            table[column] = value
    rows = table[table.experiment.astype(str) == experiment].reset_index(drop=True)
    if rows.empty:
        found = ", ".join(sorted(set(table.experiment.astype(str)))) or "none"
        raise UsageError(f"--experiment: no rows for {experiment!r} in {path} (found: {found})")
    rows["frozen"] = rows.frozen.astype(str).str.lower().isin(("true", "1"))
    rows["lattice"] = rows.lattice.astype(str)
    return rows


def check_ranges(table: pd.DataFrame, path: Path) -> None:
    """Refuse a table with a checked mean outside its physical range (one line naming the row).

    The exactness checks give such a mean the status ``out of range`` (never ``pass``);
    ``dlhmc analyze`` cannot write one, since it refuses chain files with values out of range,
    so the table was edited or damaged: the report is not written from it.
    """
    checks = exactness_checks(table)
    bad = checks[checks.status == "out of range"]
    if bad.empty:
        return
    row = bad.iloc[0]
    low, high = physical_range(row.group, tuple(map(int, str(row.lattice).split("x"))),
                               row.observable)  # fmt: skip
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    raise UsageError(
        f"--table: {path}: {row.observable} of {row.sampler} at beta {row.beta:g}, lattice "
        f"{row.lattice}: mean {float(row.measured)!r} outside its physical range "
        f"[{low:g}, {high:g}]{more}; the table was edited or damaged (rerun dlhmc analyze)"
    )


def run(args: argparse.Namespace) -> int:
    """Write the report; exit 1 (the report written, as the evidence) when a chain file's every
    trajectory diverged, as ``dlhmc analyze`` does for its table."""
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise UsageError(f"--out-dir: {args.out_dir} exists and is not a directory")
    table = read_table(args.table, args.experiment)
    check_ranges(table, args.table)
    try:
        chain_sets = [load_chain_set(p) for p in args.chains]
    except ChainFileError as err:
        raise UsageError(f"--chains: {err}") from None
    try:
        runs = [load_run(p) for p in args.runs]
    except RunDirError as err:
        raise UsageError(f"--runs: {err}") from None
    try:
        derivative_rows = read_derivatives(args.derivatives)
    except BridgeInputError as err:
        raise UsageError(f"--derivatives: {err}") from None
    try:
        swap_rows = read_exchanges(args.exchange)
    except BridgeInputError as err:
        raise UsageError(f"--exchange: {err}") from None
    checks.writable(args.out_dir, "--out-dir", directory=True)
    path = build_report(table, chain_sets, runs, args.experiment, args.out_dir,
                        derivative_rows, swap_rows)  # fmt: skip
    print(f"wrote {path}")
    return report_divergences(table, "report")
