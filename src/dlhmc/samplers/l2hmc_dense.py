"""The ``dense`` L2HMC family (physics.md, seed 003): MLPs over every unit of one lattice.

A layer is the four updates of :mod:`dlhmc.samplers.l2hmc`: momentum update with networks
on ``(x, F(x))``, x update of the units in ``mbar^k = 1 - m^k`` with networks on the frozen
``m^k`` units and ``v``, x update of the ``m^k`` units, momentum update again.  Every step
reads only variables it leaves alone, so it is inverted in closed form.

What the units are, what the networks read of them and how an active unit moves belong to
the theory's kind (:mod:`dlhmc.samplers.l2hmc_groups`); this module holds the masks and the
networks, and has the contract of the local families (``features``, ``layer``), so the
dynamics never asks which family it runs.
"""

from __future__ import annotations

import torch
from torch import nn


def build_masks(n_units: int, parity: torch.Tensor, config) -> torch.Tensor:
    """``m^k`` for every layer, ``[N_LF, n_units]`` bool, each selecting half of the units.

    Checkerboard masks alternate colour from layer to layer; random masks are fixed
    halves drawn from ``mask_seed`` (so a checkpoint rebuilds the same masks).
    """
    if config.mask == "checkerboard":
        return torch.stack([parity == (k % 2) for k in range(config.nlf)])
    gen = torch.Generator().manual_seed(config.mask_seed)
    masks = torch.zeros(config.nlf, n_units, dtype=torch.bool)
    for k in range(config.nlf):
        masks[k, torch.randperm(n_units, generator=gen)[: n_units // 2]] = True
    return masks


class DenseLeapfrog(nn.Module):
    """Masks and networks of the dense family for one kind (one lattice of one group).

    ``vnets[k]`` serves both momentum updates of layer ``k``, ``xnets[k][h]`` the x update
    of half ``h`` (``active[k, 0] = mbar^k`` moved first, ``active[k, 1] = m^k`` second).
    The networks read every unit, so the weights fit only this volume.
    """

    # Checkpoints keep the keys the networks had as attributes of ``L2HMCDynamics``.
    state_prefix = ""

    def __init__(self, kind, config):
        super().__init__()
        self.kind = kind
        masks = build_masks(kind.n_units, kind.parity(), config)
        self.register_buffer("active", torch.stack([~masks, masks], dim=1), persistent=False)
        self.vnets = nn.ModuleList(kind.vnet(config) for _ in range(config.nlf))
        self.xnets = nn.ModuleList(
            nn.ModuleList(kind.xnet(config, self.active[k, h]) for h in range(2))
            for k in range(config.nlf)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the networks read of the units: the kind's real features of every unit."""
        return self.kind.features(x)

    def v_update(self, k, v, force, features, eps, inverse):
        """``v' = v exp(eps/2 s_v) - eps/2 (F exp(eps q_v) + t_v)`` (or its inverse) and
        ``log|J| = sum eps/2 s_v`` (negated for the inverse)."""
        s, t, q = self.vnets[k](features, force)
        half_eps = 0.5 * eps
        # kick / half_eps = F exp(eps q) + t; addcmul fuses the products into the sums.
        kick = torch.addcmul(t, force, torch.exp(2.0 * half_eps * q))
        log_scale = half_eps * s
        if inverse:
            v = torch.addcmul(v, kick, half_eps) * torch.exp(-log_scale)
            return v, -log_scale.flatten(1).sum(1)
        v = torch.addcmul(v * torch.exp(log_scale), kick, half_eps, value=-1.0)
        return v, log_scale.flatten(1).sum(1)

    def x_update(self, theory, k, half, x, v, features, eps, inverse, translation=None):
        """Move the units of half ``half`` of layer ``k``; ``translation`` (the winding field,
        U(1) only) is added to their shift."""
        xnet = self.xnets[k][half]
        s, t, q = xnet(features, v)
        extra = {} if translation is None else {"translation": translation}
        return self.kind.update_x(theory, x, v, s, t, q, eps, xnet.active_index, inverse,
                                  **extra)

    def layer(self, theory, k, x, v, force, features, steps, inverse, translation=None):
        """One dense leapfrog layer (or its inverse).

        ``force`` and ``features`` belong to ``x`` and are returned for the new links, so
        that each configuration along the trajectory is evaluated once.  ``steps.eps_v``,
        ``steps.eps_x`` are the step sizes of every layer, read afresh by each update (as
        the dense family always has: the gradients of the step sizes keep their bits).
        """
        v, ld0 = self.v_update(k, v, force, features, steps.eps_v[k], inverse)
        first, second = (1, 0) if inverse else (0, 1)
        x, ld1 = self.x_update(theory, k, first, x, v, features, steps.eps_x[k], inverse,
                               translation)
        x, ld2 = self.x_update(theory, k, second, x, v, self.features(x), steps.eps_x[k],
                               inverse, translation)
        force, features = theory.force(x), self.features(x)
        v, ld3 = self.v_update(k, v, force, features, steps.eps_v[k], inverse)
        return x, v, force, features, ld0 + ld1 + ld2 + ld3
