"""The ``local`` family: gauge-covariant link updates whose weights run on any volume.

Its networks are convolutions (U(1)) or nearest-neighbour stencils (SU(3)) over
gauge-invariant loops, and every shift they apply transforms like the link it moves
(physics.md, "Gauge equivariance and local layers"), so a layer commutes with every gauge
transformation and its parameter count does not depend on the lattice.  The updates are the
group's own geometry: plaquette-coupled circle maps for U(1) (:mod:`.local_u1`), left
multiplication by exponentials of frozen loops for SU(3) (:mod:`.local_su3`).
"""

from __future__ import annotations

from dlhmc.families.contract import dense_weights
from dlhmc.families.local_su3 import LocalSU3Layers
from dlhmc.families.local_u1 import LocalU1Layers
from dlhmc.nets.local import CONVS

# Periods of the U(1) link masks: 4 as in the published flows, 2 with half the network
# evaluations (the frozen 1x2 rectangle carries what the active plaquette's density depends on).
PERIODS = (2, 4)
# Kinds of the U(1) networks' 3x3 convolutions: full, or depthwise-separable (about 5x fewer
# multiply-adds, measured 1.25-1.3x faster layers; docs/results.md, 2026-12-06 third session).
CONV_KINDS = tuple(CONVS)


class LocalFamily:
    """Local gauge-covariant layers of U(1) and SU(3)."""

    name = "local"
    layers = {"U1": LocalU1Layers, "SU3": LocalSU3Layers}
    groups = frozenset(layers)
    options = ("local_period", "local_conv")
    any_volume = True

    def check_config(self, config) -> None:
        if config.local_period not in PERIODS:
            raise ValueError(f"local_period: expected one of {PERIODS}, "
                             f"got {config.local_period!r}")
        if config.local_conv not in CONV_KINDS:
            raise ValueError(f"local_conv: expected one of {', '.join(CONV_KINDS)}, "
                             f"got {config.local_conv!r}")

    def check(self, theory, config) -> None:
        self.layers[theory.name].check_lattice(tuple(theory.lattice), config)

    def build(self, theory, adapter, config):
        return self.layers[theory.name](tuple(theory.lattice), config)

    def chain_attrs(self, config) -> dict:
        return {"local_period": int(config.local_period), "local_conv": config.local_conv}

    def weight_bound(self, theory, config) -> int:
        """Two networks per layer, each a stack of per-site maps from the layers' input
        channels through the hidden widths to its outputs (kernels of at least one site)."""
        inputs, outputs = self.layers[theory.name].widths
        return config.nlf * sum(dense_weights([n_in, *config.hidden, n_out])
                                for n_in, n_out in zip(inputs, outputs, strict=True))
