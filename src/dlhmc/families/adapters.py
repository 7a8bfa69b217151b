"""Which :class:`~dlhmc.theory.LinkAdapter` moves the variables of each theory, by its name.

Each adapter lives beside its theory (the lattice modules, the toy), which owns the group's
maths; the samplers look it up here, so no lattice module imports a sampler and a new gauge
group is its ``group/`` and ``lattice/`` modules plus its entry in :data:`dlhmc.groups.GROUPS`
(the toy's is written below).  Imported on demand, as
:data:`dlhmc.lattice.THEORIES`, so that HMC users never load the network code.
"""

from __future__ import annotations

import importlib

from dlhmc.groups import GROUPS
from dlhmc.theory import LinkAdapter, Theory

# theory name -> "module:Class": every gauge group's own (its line in dlhmc.groups.GROUPS) and
# the toy's real coordinates.
ADAPTERS = {
    **{name: facts.adapter for name, facts in GROUPS.items()},
    "GMM": "dlhmc.toy.gmm:Coordinates",
}


def adapter_for(theory: Theory) -> LinkAdapter:
    """The adapter of ``theory``; ``ValueError`` for a theory no learned sampler can move."""
    try:
        module, name = ADAPTERS[theory.name].split(":")
    except KeyError:
        raise ValueError(f"group: no learned sampler moves {theory.name} "
                         f"(expected one of {', '.join(ADAPTERS)})") from None
    return getattr(importlib.import_module(module), name)(theory)
