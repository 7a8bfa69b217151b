"""Atomic output files: an interrupted job must never leave a file that looks finished.

Every file the package writes (chain files, checkpoints, metrics, tables, figures,
reports) goes through :func:`atomic_path`: the content is written to
``name.tmp-<pid>`` in the same directory and renamed over ``name`` only once it is
complete, so Snakemake (or a user) never mistakes a half-written file for a result,
and a file that already exists is replaced in one step or not at all.

A write that fails for lack of room (or any other system error) surfaces as one
``OSError`` naming the output and its errno, whichever library wrote it: h5py reports the
temporary's name inside a long message, ``torch.save`` a ``RuntimeError`` with no errno.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
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
    with _held_stderr() as held:
        try:
            yield tmp
            os.replace(tmp, path)
        except Exception as err:
            failure = write_error(err, path)
            if failure is None:
                raise
            held.clear()  # echoes of this failure, reported once as ``failure``
            raise failure from err
        finally:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _held_stderr() -> Iterator[list]:
    """Hold what is written to the standard error (file descriptor 2) while a file is written;
    pass it on afterwards unless the caller emptied the yielded list.

    Why: when HDF5 cannot write (a full disk), every h5py object it frees prints the same
    failure again from C (a traceback each, "Exception ignored in ObjectID.__dealloc__"); the
    failure itself is reported once, naming the output.  A successful write passes on
    everything (warnings included), in order.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to hold
        yield []
        return
    capture = tempfile.TemporaryFile()
    held = [capture]
    os.dup2(capture.fileno(), 2)
    try:
        yield held
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if held:
            capture.seek(0)
            os.write(2, capture.read())
        capture.close()


def write_error(err: Exception, path: Path) -> OSError | None:
    """The ``OSError`` (errno, reason, ``path``) that ``err``, raised while writing ``path``,
    stands for; ``None`` for an error that is no failure of the file system.

    Why the free-space test: libraries that write through their own C++ streams lose the errno
    (``torch.save`` on a full disk: ``RuntimeError: [enforce fail at inline_container.cc]``);
    an error while the file system has no free block left is that full disk.
    """
    if isinstance(err, OSError) and err.errno:
        return OSError(err.errno, os.strerror(err.errno), str(path))
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return None
    if stats.f_bavail == 0 and isinstance(err, (OSError, RuntimeError)):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return None


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


def check_creatable(path: str | os.PathLike, key: str) -> Path:
    """Make sure ``path`` (a file or directory) could be created, creating nothing that stays.

    Why: a command with several outputs checks all of them before making any directory, so a
    refusal of the last one leaves no empty directory of the first (``dlhmc train --out new
    --hash-log /unwritable``).  A probe file is created and removed in the nearest existing
    ancestor, the directory in which the first new directory would be made.
    """
    path = Path(path).absolute()
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{key}: cannot write {path}: {ancestor} is not a directory")
    probe_write(ancestor, ".dlhmc-probe", path, key)
    return path


def probe_write(folder: Path, name: str, path, key: str) -> None:
    """Create and remove ``<folder>/<name>.tmp-<pid>``: ``ValueError`` naming ``key`` and
    ``path`` if that fails.  Why a probe and not ``os.access``: ACLs, read-only mounts, quotas
    and root-squashed network file systems all answer ``os.access`` wrongly.  The probe is named
    like the atomic temporaries, so one left by a killed check is removed by the next write."""
    probe = folder / f"{name}.tmp-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ValueError(f"{key}: cannot write {path} ({reason})") from None


def check_room(path: str | os.PathLike, nbytes: int) -> None:
    """Raise ``OSError(ENOSPC)`` naming ``path`` when its file system has less room than
    ``nbytes`` plus a margin for the format's own structures.

    Why before writing: HDF5 does not always survive a full disk (h5py can crash the process
    in the middle of the write, beyond any handler); refusing before the first byte leaves the
    old output in place and reports the disk, not a crash.
    """
    path = Path(path)
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return
    if stats.f_bavail * stats.f_frsize < int(nbytes * 1.05) + 2**20:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
