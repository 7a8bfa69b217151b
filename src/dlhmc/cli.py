"""The ``dlhmc`` command: one subcommand per module in :mod:`dlhmc.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

from dlhmc import __version__
from dlhmc.allocator import keep_freed_memory
from dlhmc.commands.options import OneLineParser, UsageError

# Each module provides ``register(subparsers)`` which adds its parser and sets ``func``.
COMMANDS = ("hmc", "train", "infer", "analyze", "report", "toy_gmm")


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
    argv = sys.argv[1:] if argv is None else list(argv)
    keep_freed_memory()
    parser = build_parser(_requested_command(argv))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as err:
        print(f"dlhmc {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
