"""Winding HMC for 2D U(1): Metropolis "instanton hits" between HMC trajectories.

HMC changes the topological charge only by pushing one plaquette angle through
``+-pi``, a barrier of about ``2 beta``, so its charge freezes as beta grows.  A
hit (Albandea, Hernandez, Ramos, Romero-Lopez, arXiv:2106.14234; physics.md
"Winding HMC") proposes instead to add, with sign ``+-1`` (probability 1/2 each),
a whole ``2 pi`` flux to the links at once, spread over a ``W x W`` patch of
plaquettes at a uniformly random position (``W = 0``: the delocalized lattice
instanton, ``2 pi / V`` on every plaquette), and accepts with
``min(1, exp(-dS))``.  The proposal is symmetric: the hit with the same position
and the opposite sign is its exact reverse, and a constant link translation has
Jacobian 1, so the Metropolis test alone keeps the Boltzmann distribution.

Only the plaquettes of the patch change (modulo ``2 pi``, where ``cos`` does not
see the difference), so ``dS`` is computed from the patch alone: a hit costs
``O(W^2)`` per chain, independent of the volume for ``W > 0``.  The links are
gathered and scattered with per-chain offsets, one batched operation per hit.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch

from dlhmc.group.u1 import TWO_PI, wrap_
from dlhmc.groups import groups_with
from dlhmc.lattice.u1_instanton import check_instanton_size, instanton_field, patch_extents
from dlhmc.samplers.base import acceptance, metropolis


def check_instanton_options(theory, hits: int, size: int) -> tuple[int, int]:
    """``(hits, size)`` as integers, or ``ValueError`` naming the offending key.

    ``size = 1`` is refused: a ``2 pi`` flux on a single plaquette is no change
    at all (its links are zero), a move that is always accepted and does nothing.
    Only U(1) has the move; other theories accept the defaults ``0, 0`` only.
    """
    values = {}
    for key, value in (("instanton_hits", hits), ("instanton_size", size)):
        try:
            if isinstance(value, bool):
                raise TypeError
            values[key] = operator.index(value)
        except TypeError:
            raise ValueError(f"{key} must be an integer, got {value!r}") from None
        if values[key] < 0:
            raise ValueError(f"{key} must be >= 0, got {value}")
    hits, size = values["instanton_hits"], values["instanton_size"]
    if theory.name not in groups_with("instanton_hits"):
        for key, value in (("instanton_hits", hits), ("instanton_size", size)):
            if value:
                raise ValueError(
                    f"{key}: the instanton move exists for U1 only, not {theory.name}"
                )
        return hits, size
    check_instanton_size(theory.lattice, size)
    return hits, size


@dataclass(frozen=True)
class _Patch:
    """Where one hit acts, as link coordinates at corner ``(0, 0)``.

    ``mu, t, s`` list first the four links of each of the ``P = Wt Ws`` patch
    plaquettes (``x_0(n)``, ``x_1(n + e0)``, ``x_0(n + e1)``, ``x_1(n)``, in blocks
    of ``P``), then the nonzero links of the field, whose values are ``values``.
    Every patch plaquette changes by ``flux`` modulo ``2 pi``.
    """

    mu: torch.Tensor
    t: torch.Tensor
    s: torch.Tensor
    n_plaquettes: int
    values: torch.Tensor
    flux: float

    def index(self, lattice, t0: torch.Tensor, s0: torch.Tensor) -> torch.Tensor:
        """Flat link indices ``[B, 4 P + L]`` with the corner moved to ``(t0, s0)`` (``[B, 1]``)."""
        nt, nx = lattice
        return self.mu + ((self.t + t0) % nt) * nx + (self.s + s0) % nx


def _patch(lattice: tuple[int, int], size: int, dtype, device) -> _Patch:
    field = instanton_field(lattice, size, dtype=torch.float64)
    link_mu, link_t, link_s = field.nonzero(as_tuple=True)
    wt, ws = patch_extents(lattice, size)
    t, s = (c.flatten() for c in torch.meshgrid(torch.arange(wt), torch.arange(ws), indexing="ij"))
    zero, one = torch.zeros_like(t), torch.ones_like(t)
    mu = torch.cat((zero, one, zero, one, link_mu))
    return _Patch(
        mu=(mu * lattice[0] * lattice[1]).to(device),
        t=torch.cat((t, t + 1, t, t, link_t)).to(device),
        s=torch.cat((s, s, s + 1, s, link_s)).to(device),
        n_plaquettes=wt * ws,
        values=field[link_mu, link_t, link_s].to(dtype=dtype, device=device),
        flux=TWO_PI / (wt * ws),
    )


def _action_change(beta: float, plaquette_links: torch.Tensor, flux: float, sign: torch.Tensor):
    """``S(x + sign A) - S(x)`` per chain from the links of the patch plaquettes alone.

    ``cos x_P - cos(x_P + d) = 2 sin(d/2) sin(x_P + d/2)`` with ``d = sign f``:
    no cancellation between two nearly equal sums when ``f`` is small (large ``V``).
    """
    x0, x1_up, x0_right, x1 = plaquette_links.unflatten(1, (4, -1)).unbind(1)
    half = 0.5 * flux * sign
    angles = (x0 - x1).add_(x1_up).sub_(x0_right).add_(half.unsqueeze(1))
    return 2.0 * beta * torch.sin(half) * angles.sin_().sum(dim=1)


def action_change(
    theory, x: torch.Tensor, size: int, sign: torch.Tensor, corner: torch.Tensor
) -> torch.Tensor:
    """``S(x + sign A) - S(x)`` per chain, ``A`` the ``size`` instanton with corner site ``corner``.

    ``sign`` (``+-1``) and ``corner`` (flat site ``t0 Nx + s0``, ignored for ``size = 0``)
    are ``[B]`` tensors.  The same local computation a hit uses, exposed so that its
    agreement with the full action difference can be checked.
    """
    check_instanton_size(theory.lattice, size)
    batch, nx = x.shape[0], theory.lattice[1]
    patch = _patch(theory.lattice, size, x.dtype, x.device)
    corner = corner.view(batch, 1) * (size != 0)
    index = patch.index(theory.lattice, corner // nx, corner % nx)
    links = x.reshape(batch, -1).gather(1, index[:, : 4 * patch.n_plaquettes])
    return _action_change(theory.beta, links, patch.flux, sign.to(x.dtype))


def instanton_hits(
    theory,
    x: torch.Tensor,
    action: torch.Tensor,
    hits: int,
    size: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``hits`` Metropolis instanton hits on every chain; returns ``(x, action, n_accepted)``.

    Each hit draws, per chain, a sign (``torch.randint(2)``), for ``size > 0`` the
    patch corner, a site uniform on the torus (``torch.randint(V)``), and a
    uniform for the test, in that order.  ``action`` is the cached action of ``x``
    and comes back updated by the accepted ``dS``.  ``n_accepted`` (``[B]``, int64)
    counts the accepted hits per chain: a chain's links changed iff it is
    positive, and then the caller must recompute that chain's force (the HMC kernel
    does, see :class:`dlhmc.samplers.hmc.HMC`).
    """
    hits, size = check_instanton_options(theory, hits, size)
    batch = x.shape[0]
    n_accepted = torch.zeros(batch, dtype=torch.int64, device=x.device)
    if hits == 0:
        return x, action, n_accepted
    nt, nx = theory.lattice
    patch = _patch(theory.lattice, size, x.dtype, x.device)
    n_plaq_links = 4 * patch.n_plaquettes
    links = x.reshape(batch, -1).clone()
    if size == 0:  # the delocalized instanton has no position
        fixed = patch.index(theory.lattice, 0, 0).expand(batch, -1)

    def draw(high):
        return torch.randint(high, (batch, 1), generator=generator, device=x.device)

    for _ in range(hits):
        sign = draw(2).squeeze(1).mul_(2).sub_(1).to(x.dtype)
        if size == 0:
            index = fixed
        else:
            corner = draw(nt * nx)
            index = patch.index(theory.lattice, corner // nx, corner % nx)
        gathered = links.gather(1, index)
        dS = _action_change(theory.beta, gathered[:, :n_plaq_links], patch.flux, sign)
        accept_prob, _ = acceptance(-dS)
        old = gathered[:, n_plaq_links:]
        new = wrap_(old + sign.unsqueeze(1) * patch.values)
        chosen, accepted = metropolis(accept_prob, new, old, generator)
        links.scatter_(1, index[:, n_plaq_links:], chosen)
        action = torch.where(accepted, action + dS, action)
        n_accepted += accepted
    return links.view_as(x), action, n_accepted

