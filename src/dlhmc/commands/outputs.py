"""What each command reads and writes, and the rules and messages that follow from it.

Every command declares its files once (:func:`declare`); ``dlhmc.cli.main`` applies the same
rules to all of them, so a new command gets them by declaring its options:

* an output may not be one of the command's inputs (the same file after links and ``..`` are
  resolved), nor a file inside a training run directory (a directory holding ``checkpoint.pt``):
  ``dlhmc analyze s.nc --out s.nc`` would replace the chains with a table, ``dlhmc infer
  --checkpoint r --out r/checkpoint.pt`` the model with chains;
* a Ctrl-C or a failed write (a full disk) ends in one line saying what was kept: outputs are
  replaced whole or not at all (:mod:`dlhmc.atomic`), a training run keeps its last checkpoint.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from dlhmc.checkpoint import FILENAME as CHECKPOINT_FILE
from dlhmc.commands.options import UsageError


@dataclass(frozen=True)
class Files:
    """Option destinations naming paths: read, written as files, written into as directories.

    ``run_dir`` is the destination of a training run directory the command continues (its
    checkpoint survives an interruption); ``names`` spells destinations that are no ``--option``
    (positional arguments).
    """

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    output_dirs: tuple[str, ...] = ()
    run_dir: str | None = None
    names: tuple[tuple[str, str], ...] = ()

    def option(self, dest: str) -> str:
        return dict(self.names).get(dest, "--" + dest.replace("_", "-"))


def declare(parser, **roles) -> None:
    """Record on ``parser`` which of its options are inputs and outputs (see :class:`Files`)."""
    parser.set_defaults(files=Files(**roles))


def _paths(value) -> list[Path]:
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    return [Path(item) for item in items]


def _same(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: ``samefile`` for existing ones (hard links too),
    the resolved paths otherwise."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check(args) -> None:
    """Refuse (``UsageError`` naming the output option) an output that would replace an input or
    a file of a training run.  Nothing is created or read beyond ``stat``."""
    files: Files | None = getattr(args, "files", None)
    if files is None:
        return
    inputs = [(dest, path) for dest in files.inputs for path in _paths(getattr(args, dest, None))]
    for dest in (*files.outputs, *files.output_dirs):
        key = files.option(dest)
        for out in _paths(getattr(args, dest, None)):
            for in_dest, path in inputs:
                if _same(out, path):
                    raise UsageError(f"{key}: {out} is the input {files.option(in_dest)} {path}: "
                                     "an output must not replace what the command reads")
            run = out if dest in files.output_dirs else out.parent
            if dest != files.run_dir and (run / CHECKPOINT_FILE).is_file():
                where = "is" if run == out else "is inside"
                raise UsageError(f"{key}: {out} {where} the training run directory {run} "
                                 "(it holds checkpoint.pt): write it elsewhere")


def _written(args) -> list[str]:
    files: Files | None = getattr(args, "files", None)
    if files is None:
        return []
    return [str(p) for dest in (*files.outputs, *files.output_dirs)
            if dest != files.run_dir for p in _paths(getattr(args, dest, None))]


def kept(args) -> str:
    """What an interrupted or failed run leaves, in words: every output is replaced whole or not
    at all, and a training run keeps its last checkpoint."""
    files: Files | None = getattr(args, "files", None)
    parts = []
    run = getattr(args, files.run_dir, None) if files and files.run_dir else None
    if run is not None:
        if (Path(run) / CHECKPOINT_FILE).is_file():
            parts.append(f"{run} keeps its last checkpoint (the same command resumes from it)")
        else:
            parts.append(f"no checkpoint was written in {run} yet")
    outputs = _written(args)
    if outputs:
        parts.append(f"{', '.join(outputs)}: as before (outputs are replaced whole or not at all)")
    return "; ".join(parts) or "nothing was written"


def write_failure(err: OSError) -> str:
    """One line for a write that failed: the file, the reason and the errno's name."""
    code = errno.errorcode.get(err.errno, "") if err.errno else ""
    reason = os.strerror(err.errno) if err.errno else (str(err) or type(err).__name__)
    where = f"cannot write {err.filename}" if err.filename else "a write failed"
    return f"{where}: {reason}" + (f" ({code})" if code else "")
