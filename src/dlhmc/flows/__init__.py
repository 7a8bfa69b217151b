"""Gauge-equivariant normalizing flows for 2D U(1) (``dlhmc train --sampler flow``).

A flow maps Haar-random links ``z`` (uniform angles: the theory at beta 0) to ``x = f(z)`` with
the density ``q(x) = r(z) / |det df/dz|``; trained by the reverse Kullback-Leibler divergence to
``exp(-S)`` it proposes configurations for an exact Metropolis test (independence sampler) or
gives the variables of flow HMC (physics.md, "Normalizing flows, flow HMC, bridges and replica
exchange").  The flow is a stack of the ``local`` family's link updates without momenta
(Kanwar et al. arXiv:2003.06413, Albergo et al. arXiv:2101.08176):

- :mod:`.mixture`: the circle map of an active plaquette, a mixture of non-compact projections
  plus a rotation, its derivative and its inverse;
- :mod:`.coupling`: one coupling layer (a link mask, the network on frozen loops, the update);
- :mod:`.model`: :class:`~dlhmc.flows.model.FlowConfig` and
  :class:`~dlhmc.flows.model.GaugeFlow`, the prior and the stack;
- :mod:`.store`: a trained flow (or bridge between two couplings, ``--sampler bridge``) from a
  run directory, on any lattice its masks allow.
"""
