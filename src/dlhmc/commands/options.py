"""Argument types shared by the subcommands; every failure names its option on one line."""

from __future__ import annotations

import argparse
import sys

import torch

from dlhmc import devices


class UsageError(Exception):
    """A bad option value found after parsing (e.g. a lattice that does not fit the group)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports errors on one line, without the usage block."""

    def error(self, message: str):  # noqa: D401 - argparse API
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def resolve_device(name: str) -> torch.device:
    """:func:`dlhmc.devices.resolve_device`, its errors reported as ``--device`` usage errors."""
    try:
        return devices.resolve_device(name)
    except ValueError as err:
        raise UsageError(f"--device: {err}") from None
