"""U(1) links as the learned transformations see them (:class:`~dlhmc.theory.LinkAdapter`).

The dense L2HMC networks read ``[cos x, sin x]`` of every link (the embedding of the circle
in the plane, smooth where the angle itself jumps) and move the active links with the
non-compact projection of physics.md: ``tan(x/2)`` scaled by ``exp(eps s_x)``, then shifted
by the momentum term.  The winding field is the lattice instanton, a constant translation.
"""

from __future__ import annotations

import torch

from dlhmc.group.u1 import circle_map, cos_sin, wrap
from dlhmc.lattice.u1_instanton import lattice_instanton
from dlhmc.theory import LinkAdapter


class U1Links(LinkAdapter):
    """Angles ``x[B, 2, Nt, Nx]``: two features and one momentum component per link."""

    n_features = 2
    components = 1
    scales_x = True
    conv_front = True

    @staticmethod
    def units_of(theory) -> tuple[int, ...]:
        return (2, *theory.lattice)

    def features(self, x):
        return cos_sin(x, dim=-1).flatten(1, -2)

    def winding_field(self, winding):
        """``winding`` lattice instantons: every plaquette angle grows by ``2 pi winding / V``
        modulo ``2 pi``, a constant translation with Jacobian 1."""
        return lattice_instanton(self.lattice, winding)

    def update_x(self, x, v, s, t, q, eps, index, inverse, translation=None):
        """Circle map of each active angle, then the shift ``eps (v exp(eps q) + t)`` (plus the
        winding field): invertible, and the shift does not enter the Jacobian."""
        links = x.flatten(1)
        x = links.index_select(1, index)
        shift = eps * (v.flatten(1).index_select(1, index) * torch.exp(eps * q) + t)
        if translation is not None:
            shift = shift + translation.flatten().index_select(0, index)
        es = -eps * s if inverse else eps * s
        y = wrap(x - shift) if inverse else x
        new, log_jac = circle_map(y, es)
        if not inverse:
            new = wrap(new + shift)
        return links.index_copy(1, index, new).view(v.shape), log_jac.sum(1)
