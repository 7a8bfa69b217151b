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
    """Yield ``path.tmp-<pid>``; rename it to ``path`` only if the block succeeds.

    First removes the temporaries of ``path`` that killed runs left behind
    (:func:`remove_stale_temporaries`): nothing else ever would.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete ``path.tmp-<pid>`` files whose process no longer runs; return what was deleted.

    Why only those: a temporary whose writer still runs (another job writing the same output)
    must survive, or that job's final rename fails.  ``os.kill(pid, 0)`` sends no signal; it
    raises ``ProcessLookupError`` only when no such process exists (``PermissionError`` means
    it exists under another user).  Pids are per machine: a writer on another node sharing the
    file system is not seen, which is why nothing here runs unless this node writes ``path``.
    """
    path = Path(path)
    prefix = f"{path.name}.tmp-"
    removed = []
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return removed
    for candidate in siblings:
        suffix = candidate.name[len(prefix) :] if candidate.name.startswith(prefix) else ""
        if not suffix.isdecimal() or int(suffix) <= 0 or int(suffix) == os.getpid():
            continue
        try:
            os.kill(int(suffix), 0)
        except ProcessLookupError:
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
        except (PermissionError, OverflowError):
            continue
    return removed
