"""The checks every command runs before any work, and the report of divergent trajectories.

The library functions (:mod:`dlhmc.limits`, :mod:`dlhmc.devices`) raise ``ValueError``; here
they become usage errors naming the option, so that a bad value costs one line on stderr and
exit status 2 instead of a traceback after the sampling.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from dlhmc import devices, limits
from dlhmc.commands.options import UsageError


def _usage(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except ValueError as err:
        raise UsageError(str(err)) from None


def device(name: str, key: str = "--device") -> torch.device:
    """The torch device of ``name``: auto, cpu, cuda or cuda:N, present on this machine."""
    try:
        return devices.resolve_device(name)
    except ValueError as err:
        raise UsageError(f"{key}: {err}") from None


def seed(value, key: str = "--seed", world_size: int = 1) -> int:
    """A seed every rank's generator accepts (rank r uses ``value + r``)."""
    return _usage(limits.check_seed, value, key, world_size)


def writable(path, key: str, directory: bool = False):
    """The output ``path`` (file, or ``directory``) can be created: checked by writing a probe."""
    return _usage(limits.check_writable, path, key, directory)


def memory(group, lattice, chains, precision, command, key, where, extra: int = 0, **sizes) -> None:
    """Refuse a run of ``command`` whose estimated memory (plus ``extra`` bytes) exceeds what
    ``where`` has free (one line)."""
    needed = limits.estimate_bytes(group, lattice, chains, precision, command, **sizes) + extra
    _usage(limits.check_memory, needed, key, where)


def network_sizes(hidden, nlf: int, batch: int) -> tuple[int, int]:
    """Lower bounds of a model's weights and of the activations training keeps, in numbers.

    Every layer has (at least) two networks, each at least the chain of its hidden widths
    from one input to one output, and autograd keeps each hidden activation of every chain;
    real networks are larger (their inputs are link features), which only makes a refusal
    of absurd widths (``--hidden 10^12``) more certain.
    """
    widths = [1, *hidden, 1]
    weights = 2 * nlf * sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    return weights, 2 * nlf * batch * sum(hidden)


def rejections(command: str, count: int, total: int, warning: str, error: str) -> int:
    """The exit status of a run of which ``count`` of ``total`` moves were rejected as
    non-finite, with one line on stderr: a few are worth a warning (``count of total
    <warning>``), all of them mean nothing was sampled and must not look like a success to a
    pipeline (``all total <error>``, exit status 1; the output is kept as the evidence)."""
    if count == 0:
        return 0
    if count < total:
        print(f"dlhmc {command}: warning: {count} of {total} {warning}", file=sys.stderr)
        return 0
    print(f"dlhmc {command}: error: all {total} {error}", file=sys.stderr)
    return 1


def divergences(command: str, per_traj: dict[str, np.ndarray], step_size: str, out) -> int:
    """Report divergent trajectories on stderr; the exit status of the run.

    A trajectory whose ``dH`` is not finite carries no information and was rejected; a few of
    them are worth a line on the terminal (the step size is near its stability limit), a run
    where every one diverged has sampled nothing.  The chain file is written anyway.
    """
    flags = per_traj.get("divergent")
    if flags is None:
        return 0
    return rejections(
        command, int(np.count_nonzero(flags)), int(np.size(flags)),
        f"trajectories diverged (non-finite dH, rejected) with {step_size}: the step size is "
        "near its stability limit",
        f"trajectories diverged (non-finite dH) with {step_size}: the step size is too large for "
        f"this coupling; {out} is written as evidence but holds no valid sample",
    )
