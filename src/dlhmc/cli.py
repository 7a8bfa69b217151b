"""The ``dlhmc`` command: one subcommand per module in :mod:`dlhmc.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

from dlhmc import __version__
from dlhmc.commands.options import OneLineParser, UsageError

# Each module provides ``register(subparsers)`` which adds its parser and sets ``func``.
COMMANDS = ("hmc", "train", "infer", "analyze", "report", "toy_gmm")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="dlhmc",
        description="Learned (L2HMC / DLHMC) and plain HMC sampling of lattice gauge theories.",
    )
    parser.add_argument("--version", action="version", version=f"dlhmc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"dlhmc.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as err:
        print(f"dlhmc {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
