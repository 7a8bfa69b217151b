"""Learned transformation families, one module each, behind one contract (:mod:`.contract`).

``network`` in the settings names a family here; the L2HMC dynamics builds its layers from
this registry and never asks which family it runs.  A new family is one module plus one line.
The registry is names and ``"module:Class"`` paths, imported on demand: the workflow and the
config checks read :data:`NETWORKS` without loading torch.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlhmc.families.contract import LayerFamily

FAMILIES = {
    # The paper's MLPs over every link of one volume.
    "dense": "dlhmc.families.dense:DenseFamily",
    # Gauge-covariant convolutional layers whose weights run on any volume.
    "local": "dlhmc.families.local:LocalFamily",
}
NETWORKS = tuple(FAMILIES)


@cache
def family(name: str) -> LayerFamily:
    """The family called ``name``; ``ValueError`` naming the setting otherwise."""
    if name not in FAMILIES:
        raise ValueError(f"network: expected one of {', '.join(FAMILIES)}, got {name!r}")
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def families() -> list[LayerFamily]:
    """Every registered family (for the rules that involve all of them: owned settings)."""
    return [family(name) for name in FAMILIES]
