"""Argument types shared by the subcommands; every failure names its option on one line."""

from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING
from pathlib import Path

import torch

from dlhmc import devices
from dlhmc.settings import (
    NONNEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    Range,
    option_fields,
)


class UsageError(Exception):
    """A bad option value found after parsing (e.g. a lattice that does not fit the group)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports errors on one line, without the usage block."""

    def error(self, message: str):  # noqa: D401 - argparse API
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def arg_type(rng: Range):
    """An argparse ``type`` that parses with ``rng`` and reports its message on one line."""

    def convert(text: str):
        try:
            return rng.parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = rng.name
    return convert


positive_int = arg_type(POSITIVE_INT)
nonnegative_int = arg_type(NONNEGATIVE_INT)
positive_float = arg_type(POSITIVE_FLOAT)


def _shown(value) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_settings(parser: argparse.ArgumentParser, cls, *, with_defaults: bool = True) -> None:
    """One ``--name`` option per field of the settings class ``cls`` (``dlhmc.settings``).

    ``with_defaults=False`` leaves defaults and required options to the caller (``dlhmc train``
    merges --config files before applying them).
    """
    for f in option_fields(cls):
        opt = f.metadata["option"]
        has_default = f.default is not MISSING
        help_text = opt.help
        if has_default and not (f.default is None or f.default is False or f.default == ()):
            help_text += f" (default {_shown(f.default)})"
        kwargs: dict = {"help": help_text}
        if opt.metavar is not None:
            kwargs["metavar"] = opt.metavar
        if has_default and f.default is False:
            kwargs["action"] = "store_true"
        else:
            if opt.range is not None:
                kwargs["type"] = arg_type(opt.range)
            elif opt.value_type is not str:  # text stays text, as argparse gives it
                kwargs["type"] = opt.value_type
            if opt.choices is not None:  # checked after the type: choices may be numbers
                kwargs["choices"] = opt.choices
            if opt.nargs is not None:
                kwargs["nargs"] = opt.nargs
        if with_defaults:
            if has_default:
                kwargs["default"] = f.default
            else:
                kwargs["required"] = True
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def option_error(err: ValueError) -> UsageError:
    """A library ``ValueError`` whose message starts with a setting (``lattice: ...``) as a
    usage error naming its option (``--lattice: ...``)."""
    name, sep, rest = str(err).partition(": ")
    if sep and name.isidentifier():
        return UsageError(f"--{name.replace('_', '-')}: {rest}")
    return UsageError(str(err))


def read_config_text(path) -> str:
    """The text of a YAML config file; ``ValueError`` naming the file when it cannot be read or
    is not UTF-8 (YAML's encoding: a Latin-1 file would otherwise end in a traceback)."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror or type(err).__name__}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
                         f"{err.start}); save it as UTF-8") from None


def resolve_device(name: str) -> torch.device:
    """:func:`dlhmc.devices.resolve_device`, its errors reported as ``--device`` usage errors."""
    try:
        return devices.resolve_device(name)
    except ValueError as err:
        raise UsageError(f"--device: {err}") from None
