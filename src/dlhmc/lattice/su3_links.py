"""SU(3) links as the learned transformations see them (:class:`~dlhmc.theory.LinkAdapter`).

The dense L2HMC networks read the 18 real numbers of each 3x3 link and move the active links
by ``U' = exp(i eps (P exp(eps q) + t)) U``.  ``q, t`` depend only on the frozen links and
``P``, so for the active links the update is left multiplication by a fixed group element:
Haar measure is kept and the log-Jacobian is exactly 0.  There is no scaling ``s_x`` (a group
element cannot be scaled).
"""

from __future__ import annotations

import torch

from dlhmc.theory import LinkAdapter


class SU3Links(LinkAdapter):
    """Matrices ``U[B, 4, *lattice, 3, 3]``: 18 features and 8 momentum components per link."""

    n_features = 18
    components = 8
    scales_x = False

    @staticmethod
    def units_of(theory) -> tuple[int, ...]:
        return (4, *theory.lattice)

    def features(self, x):
        return torch.view_as_real(x).flatten(-3).flatten(1, -2)

    def update_x(self, x, v, s, t, q, eps, index, inverse, translation=None):
        active = v.flatten(1).index_select(1, index) * torch.exp(eps * q) + t
        p = v.new_zeros(v.shape[0], v[0].numel()).index_copy(1, index, active).view(v.shape)
        new = self.theory.evolve_links(x, p, -eps if inverse else eps)
        return new, x.new_zeros(x.shape[0], dtype=v.dtype)
