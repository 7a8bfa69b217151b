"""Which torch device a run uses, from the name a user gives (``auto``, ``cpu``, ``cuda[:N]``)."""

from __future__ import annotations

import re

import torch

# The devices every tensor op of the package is written and tested for.
_ACCEPTED = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(name: str) -> str:
    """Accept only ``auto``, ``cpu``, ``cuda`` and ``cuda:N``; return ``name`` unchanged.

    Why a list and not "whatever torch knows": torch also parses ``meta`` (tensors without
    data), ``mps``, ``xla``, ``hpu``... on which the samplers were never run and fail with a
    ``RuntimeError`` deep in the first kernel (or silently compute nothing, for ``meta``).
    """
    if not isinstance(name, str) or not _ACCEPTED.fullmatch(name):
        raise ValueError(f"unknown device {name!r} (expected auto, cpu, cuda or cuda:N)")
    return name


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, so the same command runs on a laptop and on Polaris.

    Raises ``ValueError`` for a name outside :func:`check_device`'s list, for CUDA on a
    machine without it, and for ``cuda:N`` beyond the devices present (failing here, before
    any work, instead of at the first tensor put on the device).
    """
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name!r} requested but CUDA is not available")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"{name!r} requested but this machine has {count} CUDA device(s)")
    return device
