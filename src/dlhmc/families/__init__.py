"""Learned transformation families, one module each, behind one contract (:mod:`.contract`).

``network`` in the settings names a family here; the L2HMC dynamics builds its layers from
this registry and never asks which family it runs.  A new family is one module plus one line.
"""

from __future__ import annotations

from dlhmc.families.contract import LayerFamily
from dlhmc.families.dense import DenseFamily
from dlhmc.families.local import LocalFamily

FAMILIES: dict[str, LayerFamily] = {
    # The paper's MLPs over every link of one volume.
    "dense": DenseFamily(),
    # Gauge-covariant convolutional layers whose weights run on any volume.
    "local": LocalFamily(),
}
NETWORKS = tuple(FAMILIES)


def family(name: str) -> LayerFamily:
    """The family called ``name``; ``ValueError`` naming the setting otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"network: expected one of {', '.join(FAMILIES)}, got {name!r}") from None
