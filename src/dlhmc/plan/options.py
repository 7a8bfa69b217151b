"""Command-line words of the rules' options: settings of the config as `--key value ...`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def cli_options(settings: Mapping, skip: Iterable[str] = ()) -> str:
    """`--key value ...` for every setting (lists as several values), in config order."""
    words = []
    for key, value in settings.items():
        if key in skip:
            continue
        words.append(f"--{key.replace('_', '-')}")
        words.extend(str(v) for v in (value if isinstance(value, list) else [value]))
    return " ".join(words)


def lattice_option(wildcards) -> str:
    """`--lattice` values of the job's volume: 16x16 -> '16 16'."""
    return wildcards.lattice.replace("x", " ")

