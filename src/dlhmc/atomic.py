"""Atomic output files: an interrupted job must never leave a file that looks finished.

Every file the package writes (chain files, checkpoints, metrics, tables, figures,
reports) goes through :func:`atomic_path`: the content is written to
``name.tmp-<pid>`` in the same directory and renamed over ``name`` only once it is
complete, so Snakemake (or a user) never mistakes a half-written file for a result,
and a file that already exists is replaced in one step or not at all.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield ``path.tmp-<pid>``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
