"""Theories that misbehave on purpose, for the tests of how samplers handle numerical faults."""

from __future__ import annotations

import torch

from dlhmc.lattice.u1 import U1Theory


def nan_on_chains(*broken: bool) -> type[U1Theory]:
    """A U(1) theory whose links of the chains marked in ``broken`` turn NaN during every
    trajectory (a blown-up integrator), so ``dH`` is NaN exactly there."""
    mask = torch.tensor(broken)

    class NaNOnChains(U1Theory):
        def evolve_links(self, x, p, eps):
            moved = super().evolve_links(x, p, eps)
            return torch.where(mask.view(-1, 1, 1, 1), torch.nan, moved)

    NaNOnChains.broken = mask
    return NaNOnChains
