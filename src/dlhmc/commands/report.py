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

# The report's inputs besides the table, each a list of paths: option, metavar, what the report
# takes from it, its reader, and the error the reader raises on a bad one (the command names the
# option in front of the reader's message).
INPUTS = (
    ("chains", "CHAINS.nc", "chain files (charge histories, per-layer diagnostics, settings)",
     lambda paths: [load_chain_set(p) for p in paths], ChainFileError),
    ("runs", "RUN_DIR", "training run directories (metrics.csv, config.yaml)",
     lambda paths: [load_run(p) for p in paths], RunDirError),
    ("derivatives", "DERIVATIVE.csv",
     "dlhmc derivative tables (bridges: figure 6, the derivatives table and checks)",
     read_derivatives, BridgeInputError),
    ("exchange", "DIR", "dlhmc trex output directories (swaps.csv and chain files: the swaps "
     "table)", read_exchanges, BridgeInputError),
)  # fmt: skip


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
    for name, metavar, words, _read, _error in INPUTS:
        parser.add_argument(f"--{name}", nargs="*", default=[], type=Path, metavar=metavar,
                            help=words)  # fmt: skip
    parser.add_argument("--experiment", required=True, help="experiment whose rows to report")
    parser.add_argument("--out-dir", required=True, type=Path, help="directory for the report")
    parser.set_defaults(func=run)
    outputs.declare(parser, inputs=("table", *(entry[0] for entry in INPUTS)),
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
    inputs = {}
    for name, _metavar, _words, read, error in INPUTS:
        try:
            inputs[name] = read(getattr(args, name))
        except error as err:
            raise UsageError(f"--{name}: {err}") from None
    checks.writable(args.out_dir, "--out-dir", directory=True)
    path = build_report(table, inputs["chains"], inputs["runs"], args.experiment, args.out_dir,
                        inputs["derivatives"], inputs["exchange"])  # fmt: skip
    print(f"wrote {path}")
    return report_divergences(table, "report")
