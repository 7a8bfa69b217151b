"""Networks of the L2HMC leapfrog layers, one module per family.

``dense`` holds the paper's per-layer MLPs over all links (the ``network: dense``
family, also used by the toy); ``local`` holds the periodic convolutions over gauge-invariant
maps of the ``network: local`` family.  The names other modules import from
``dlhmc.nets`` are re-exported here.
"""

from dlhmc.nets.dense import (
    ACTIVATIONS,
    HEAD_INIT_SCALE,
    Gather,
    LeapfrogNet,
    PeriodicConv,
    make_activation,
)

__all__ = [
    "ACTIVATIONS",
    "HEAD_INIT_SCALE",
    "Gather",
    "LeapfrogNet",
    "PeriodicConv",
    "make_activation",
]
