"""Lattice instantons of 2D U(1): link fields that carry one unit of topological charge.

A smooth U(1) configuration changes its integer charge only when one plaquette angle
crosses ``+-pi``, which costs about ``2 beta`` of action.  Adding a whole ``2 pi`` flux
at once, spread over many plaquettes, moves the charge by one at the much smaller cost
of the spread field.  Two samplers use these fields: the winding term of the L2HMC
layers (the delocalized instanton, a constant translation with Jacobian 1) and the
instanton hits of winding HMC (arXiv:2106.14234; a ``W x W`` patch at a random place).
"""

from __future__ import annotations

import torch

from dlhmc.group.u1 import TWO_PI, wrap
from dlhmc.groups import check_instanton_size


def patch_extents(lattice: tuple[int, int], size: int) -> tuple[int, int]:
    return (lattice[0], lattice[1]) if size == 0 else (size, size)


def instanton_field(
    lattice: tuple[int, int],
    size: int = 0,
    position: tuple[int, int] = (0, 0),
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Links ``A[mu, t, s]``, shape ``[2, Nt, Nx]``, of one ``2 pi`` flux on the ``Nt x Nx`` torus.

    The flux sits on a ``Wt x Ws`` patch of plaquettes with corner ``position``:
    ``W x W`` for ``size = W > 0``, the whole torus for ``size = 0`` (the
    delocalized lattice instanton).  With ``(a, b)`` the site relative to the corner
    and ``f = 2 pi / (Wt Ws)``, ``A_0(a, b) = -f b`` and ``A_1(a, Ws - 1) = f Ws a``
    for ``a < Wt, b < Ws``, zero elsewhere: every patch plaquette grows by ``f``
    except the corner ``(Wt - 1, Ws - 1)``, which grows by ``f - 2 pi``, and every
    plaquette outside keeps its angle.  The total flux ``2 pi`` is what raises the
    charge of a smooth configuration by exactly 1; no gauge field on a torus has
    unwrapped plaquettes summing to ``2 pi``, hence the Dirac string at the corner.

    Not wrapped (the largest entries approach ``2 pi``): callers add it to links
    and wrap the sum, a single rounding.
    """
    check_instanton_size(lattice, size)
    nt, nx = lattice
    wt, ws = patch_extents(lattice, size)
    f = TWO_PI / (wt * ws)
    a = torch.arange(wt, dtype=torch.float64).view(wt, 1)
    b = torch.arange(ws, dtype=torch.float64).view(1, ws)
    field = torch.zeros(2, nt, nx, dtype=torch.float64)
    field[0, :wt, :ws] = -f * b.expand(wt, ws)
    field[1, :wt, ws - 1] = f * ws * a.squeeze(1)
    field = field.roll(tuple(position), dims=(1, 2))
    return field.to(dtype=dtype, device=device)


def lattice_instanton(
    lattice: tuple[int, ...],
    winding: int,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``winding`` delocalized lattice instantons, links ``[2, Nt, Nx]`` wrapped to ``[-pi, pi)``.

    Every plaquette angle grows by ``2 pi winding / V`` modulo ``2 pi``.  Adding it to a
    smooth configuration (all ``|x_P| < pi - 2 pi / V``) raises ``Q_Z`` by exactly
    ``winding`` at an action cost ``beta (4 pi^2 / V) (Q_R + <cos x_P> / 2)`` per unit to
    second order in ``1 / V``, instead of the barrier ``~2 beta`` of moving one plaquette
    through ``pi`` continuously.  A constant translation has Jacobian 1, which is why samplers
    can add it to a proposal.  Built in float64 and wrapped before the cast, so every
    precision gets the same field.
    """
    return wrap(winding * instanton_field(tuple(lattice), 0)).to(dtype=dtype, device=device)
