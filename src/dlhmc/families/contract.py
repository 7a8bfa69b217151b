"""The written contract of a learned transformation family.

An L2HMC leapfrog layer is the same for every family (:func:`dlhmc.samplers.l2hmc.leapfrog_layer`):
a momentum half-update ``v' = v exp(eps/2 s_v) - eps/2 (F exp(eps q_v) + t_v)``, the link
sub-updates in order (reversed for the inverse), and the momentum half-update again at the new
links.  What differs between families is only what their networks read and how a link moves:

- ``features(x)``: what the momentum networks read of the links, computed once per
  configuration along the trajectory and handed back with the force;
- ``v_terms(k, force, features)``: the momentum coefficients ``(s_v, t_v, q_v)`` of layer ``k``
  (``s_v, q_v`` broadcastable to the momentum, ``t_v`` shaped like it): the skeleton applies
  them, so the momentum update and its Jacobian are written once;
- ``n_sub_updates`` and ``x_update(theory, k, j, x, v, eps, inverse, translation, carry)``: the
  link sub-update ``j`` of layer ``k`` (or its inverse) with its ``log|J|``; ``carry`` is what
  the family may reuse between consecutive sub-updates of one layer (``None`` at the first),
  returned with the new links; at the first it is the ``features`` the momentum update read.

A family (:class:`LayerFamily`) declares the groups it supports, the settings only it reads
(every other family must leave them at their defaults, so no setting is silently ignored),
whether its weights run on any volume, and what it adds to the chain files.  Its layers are an
``nn.Module``: the dynamics saves and loads them under ``layers.`` with every other parameter.
A new family is one module with these two classes plus one line in
:data:`dlhmc.families.FAMILIES`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from dlhmc.theory import LinkAdapter, Theory


@runtime_checkable
class FamilyLayers(Protocol):
    """The networks and link updates of one family on one lattice (an ``nn.Module``)."""

    n_sub_updates: int

    def features(self, x: torch.Tensor) -> Any: ...

    def v_terms(
        self, k: int, force: torch.Tensor, features: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...

    def x_update(
        self, theory: Theory, k: int, j: int, x: torch.Tensor, v: torch.Tensor,
        eps: torch.Tensor, inverse: bool, translation: torch.Tensor | None, carry: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]: ...


@runtime_checkable
class LayerFamily(Protocol):
    """A named family of learned leapfrog layers."""

    name: str
    groups: frozenset[str]  # the theory names it can move
    options: tuple[str, ...]  # L2HMCConfig fields only this family reads
    any_volume: bool  # whether the weights fit every lattice of the group

    def check_config(self, config) -> None:
        """Raise ``ValueError`` naming the setting where ``config`` is invalid for the family."""

    def check(self, theory: Theory, config) -> None:
        """Raise ``ValueError`` where the layers cannot run on ``theory``'s lattice (their masks
        do not fit), without building the networks."""

    def build(self, theory: Theory, adapter: LinkAdapter, config) -> nn.Module:
        """The family's layers for ``theory``'s lattice (``ValueError`` where its masks do not
        fit the lattice)."""

    def chain_attrs(self, config) -> dict[str, Any]:
        """What chain files record of the family's own settings."""

    def weight_bound(self, theory: Theory, config) -> int:
        """A lower bound of the parameter count, from the networks' real input and output
        widths and the hidden widths, without building anything: the commands refuse a model
        that cannot fit in memory before allocating it (:func:`dense_weights`)."""


def dense_weights(widths) -> int:
    """Weights of a chain of dense maps through ``widths`` (biases left out: a lower bound)."""
    widths = [int(w) for w in widths]
    return sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=False))
