"""The ``dlhmc`` command: one subcommand per module in :mod:`dlhmc.commands`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from dlhmc import __version__
from dlhmc.allocator import keep_freed_memory
from dlhmc.commands import outputs
from dlhmc.commands.options import OneLineParser, UsageError

# Each module provides ``register(subparsers)`` which adds its parser and sets ``func``.
COMMANDS = ("hmc", "trex", "train", "infer", "analyze", "derivative", "report", "toy_gmm",
            "check_config")


def build_parser(commands: tuple[str, ...] = COMMANDS) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="dlhmc",
        description="Learned (L2HMC / DLHMC) and plain HMC sampling of lattice gauge theories.",
    )
    parser.add_argument("--version", action="version", version=f"dlhmc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name in commands:
        importlib.import_module(f"dlhmc.commands.{name}").register(sub)
    return parser


def _requested_command(argv: list[str]) -> tuple[str, ...]:
    """The one command module a call needs, or all of them (for ``--help`` and typos).

    Loading only the chosen module keeps start-up short: a pipeline runs hundreds of
    short ``dlhmc`` jobs, and the analysis modules pull in matplotlib and xarray.
    """
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    name = first.replace("-", "_") if first else None
    return (name,) if name in COMMANDS else COMMANDS


def main(argv: list[str] | None = None) -> int:
    """Run one command; its every way of ending is one line on stderr and an exit status.

    2: a bad option or input, refused before any work (``UsageError``); 1: a failure during the
    run, here a write that failed (a full disk: an ``OSError`` naming the output and errno);
    130: interrupted (Ctrl-C).  The last two say what was kept, since outputs are replaced whole
    or not at all (:mod:`dlhmc.atomic`) and training keeps its last checkpoint.
    """
    program = argv is None  # the process is this command: it may end itself
    argv = sys.argv[1:] if argv is None else list(argv)
    keep_freed_memory()
    parser = build_parser(_requested_command(argv))
    args = parser.parse_args(argv)
    prefix = f"dlhmc {args.command}"
    try:
        outputs.check(args)
        return int(args.func(args) or 0)
    except UsageError as err:
        print(f"{prefix}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted: {outputs.kept(args)}", file=sys.stderr)
        return 130
    except OSError as err:
        if not err.errno:
            raise
        print(f"{prefix}: error: {outputs.write_failure(err)}; {outputs.kept(args)}",
              file=sys.stderr)
        if program:  # HDF5's exit handler crashes on a file it could not write: skip it
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        return 1


if __name__ == "__main__":
    sys.exit(main())
