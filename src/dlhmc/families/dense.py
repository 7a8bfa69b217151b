"""The ``dense`` L2HMC family (physics.md, seed 003): MLPs over every unit of one lattice.

A layer is the skeleton of :func:`dlhmc.samplers.l2hmc.leapfrog_layer` with two link
sub-updates: the units in ``mbar^k = 1 - m^k`` move first, with networks on the frozen ``m^k``
units and ``v``, then the ``m^k`` units.  Every step reads only variables it leaves alone, so
it is inverted in closed form.  What the units are, what the networks read of them and how an
active unit moves belong to the theory's adapter (:class:`~dlhmc.theory.LinkAdapter`): this
module holds the masks and the networks.  The networks read every unit, so the weights fit
one volume only.
"""

from __future__ import annotations

import torch
from torch import nn

from dlhmc.families.adapters import ADAPTERS, adapter_for
from dlhmc.families.contract import dense_weights
from dlhmc.nets import Gather, LeapfrogNet, PeriodicConv

MASKS = ("checkerboard", "random")


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


class VNet(nn.Module):
    """Momentum network ``(links, force) -> (s_v, t_v, q_v)``, each shaped like the force."""

    def __init__(self, net: LeapfrogNet):
        super().__init__()
        self.net = net

    def forward(self, features: torch.Tensor, force: torch.Tensor):
        s, t, q = self.net(features, force)
        return s.view(force.shape), t.view(force.shape), q.view(force.shape)


class XNet(nn.Module):
    """Link network ``(frozen links, v) -> (s_x, t_x, q_x)`` on the active units.

    Outputs exist only for the active units: ``[B, n_active * components]``, entry ``i``
    belonging to entry ``active_index[i]`` of the flattened momentum (``s_x`` is ``None``
    where the adapter's x update has no scaling).  The x updates work on these compact
    tensors, so the frozen half of the links costs nothing.
    """

    def __init__(self, net: LeapfrogNet, active: torch.Tensor, components: int):
        super().__init__()
        self.net = net
        index = active.nonzero() * components + torch.arange(components)
        self.register_buffer("active_index", index.flatten(), persistent=False)

    def forward(self, features: torch.Tensor, v: torch.Tensor):
        return self.net(features, v)


def front(adapter, config, keep: torch.Tensor | None) -> tuple[nn.Module | None, int]:
    """Front end for the link input (``keep``: the frozen units, ``None`` = all units) and the
    width it hands to the MLP: the features themselves, or periodic convolutions over them
    where the adapter's links live on a 2D torus (``conv_channels``)."""
    if config.conv_channels:
        if not adapter.conv_front:
            raise ValueError(f"conv_channels: no convolutional front end for "
                             f"{adapter.theory.name}")
        conv = PeriodicConv(adapter.lattice, adapter.n_features, config.conv_channels,
                            config.activation, keep)
        return conv, conv.out_size
    if keep is None:
        return None, adapter.n_units * adapter.n_features
    index = keep.nonzero().squeeze(1)
    return Gather(index, adapter.n_features), index.numel() * adapter.n_features


class DenseLayers(nn.Module):
    """Masks and networks of the dense family for one adapter (one lattice of one group).

    ``vnets[k]`` serves both momentum updates of layer ``k``, ``xnets[k][h]`` the x update
    of half ``h`` (``active[k, 0] = mbar^k`` moved first, ``active[k, 1] = m^k`` second).
    """

    n_sub_updates = 2

    def __init__(self, adapter, config):
        super().__init__()
        self.adapter = adapter
        masks = build_masks(adapter.n_units, adapter.parity(), config)
        self.register_buffer("active", torch.stack([~masks, masks], dim=1), persistent=False)
        size = adapter.n_units * adapter.components
        self.vnets = nn.ModuleList()
        for _ in range(config.nlf):
            head, width = front(adapter, config, None)
            self.vnets.append(VNet(LeapfrogNet(width, size, size, config.hidden,
                                               config.activation, True, head)))
        self.xnets = nn.ModuleList(
            nn.ModuleList(self._xnet(config, self.active[k, h]) for h in range(2))
            for k in range(config.nlf)
        )

    def _xnet(self, config, active: torch.Tensor) -> XNet:
        adapter = self.adapter
        head, width = front(adapter, config, ~active)
        out = int(active.sum()) * adapter.components
        net = LeapfrogNet(width, adapter.n_units * adapter.components, out, config.hidden,
                          config.activation, adapter.scales_x, head)
        return XNet(net, active, adapter.components)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the networks read of the units: the adapter's real features of every unit."""
        return self.adapter.features(x)

    def v_terms(self, k, force, features):
        return self.vnets[k](features, force)

    def x_update(self, theory, k, j, x, v, eps, inverse, translation, carry):
        """Move the units of half ``j`` of layer ``k``, with networks on the features of the
        current links (those of the other half are frozen): ``carry``, the features the
        momentum update read, at the first half; recomputed after the links moved."""
        xnet = self.xnets[k][j]
        s, t, q = xnet(self.features(x) if carry is None else carry, v)
        x, logdet = self.adapter.update_x(x, v, s, t, q, eps, xnet.active_index, inverse,
                                          translation)
        return x, logdet, None


class DenseFamily:
    """The paper's design: per-layer MLPs over every unit, for every adapter."""

    name = "dense"
    groups = frozenset(ADAPTERS)  # every theory with an adapter
    options = ("mask", "mask_seed", "conv_channels")
    any_volume = False

    def check_config(self, config) -> None:
        if config.mask not in MASKS:
            raise ValueError(f"mask: expected one of {', '.join(MASKS)}, got {config.mask!r}")

    def check(self, theory, config) -> None:
        """Masks of halves of the units fit every lattice."""

    def build(self, theory, adapter, config) -> DenseLayers:
        return DenseLayers(adapter, config)

    def chain_attrs(self, config) -> dict:
        return {}

    def weight_bound(self, theory, config) -> int:
        """Three networks per layer, each reading at least the momenta (or forces) of every
        unit and writing at least one number per momentum component."""
        adapter = adapter_for(theory)
        size = adapter.n_units * adapter.components
        return 3 * config.nlf * dense_weights([size, *config.hidden, size])
