"""Which torch device a run uses, from the name a user gives (``auto``, ``cpu``, ``cuda[:N]``)."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, so the same command runs on a laptop and on Polaris.

    Raises ``ValueError`` for a name torch does not know and for CUDA on a machine without it
    (failing here, before any work, instead of at the first tensor put on the device).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r} (expected auto, cpu or cuda[:N])") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name!r} requested but CUDA is not available")
    return device
