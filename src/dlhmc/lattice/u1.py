"""Two-dimensional U(1) lattice gauge theory with the Wilson action.

Links are angles ``x[b, mu, t, s]`` (``mu = 0`` points along ``t``, ``mu = 1``
along ``s``), one batch entry per independent chain, kept in ``[-pi, pi)``.
Everything follows ``physics.md``: the plaquette angle
``x_P(n) = x_0(n) + x_1(n + e0) - x_0(n + e1) - x_1(n)``, the action
``S = beta sum_n (1 - cos x_P(n))`` and its analytic gradient.

The plaquette and the force are the hot path of every sampler (one force per
leapfrog step), so they are written with periodic shifts done as two slice
operations each instead of ``torch.roll`` copies, ``sin x_P`` is computed once
per force, and buffers are updated in place where autograd allows it (on CPU
every fresh multi-megabyte temporary also costs page faults, because glibc
hands large freed blocks back to the OS; see :mod:`dlhmc.allocator`).  Under
autograd (L2HMC trains through the force) the same quantities are built out of place
with ``torch.roll``, whose backward is cheaper than that of in-place slice writes.
Everything runs unchanged on CUDA.
"""

from __future__ import annotations

import math

import torch

from dlhmc.group.u1 import TWO_PI, wrap_
from dlhmc.theory import ExactValue

DTYPES = {"double": torch.float64, "single": torch.float32}


def _tracks_grad(x: torch.Tensor) -> bool:
    """Whether autograd records operations on ``x``: then no in-place tricks."""
    return x.requires_grad and torch.is_grad_enabled()


def plaquette_angles(x: torch.Tensor) -> torch.Tensor:
    """``x_P(n)`` for links ``[B, 2, Nt, Nx]``, shape ``[B, Nt, Nx]``, not wrapped.

    Not wrapping keeps ``x_P`` a smooth function of the links (the action,
    force and ``Q_R`` only need ``cos``/``sin``); ``Q_Z`` wraps it itself.
    """
    x0, x1 = x[:, 0], x[:, 1]
    if _tracks_grad(x):
        # Out of place: the backward of rolls is cheaper than that of in-place slice writes.
        return x0 - x1 + x1.roll(-1, 1) - x0.roll(-1, 2)
    xp = x0 - x1
    # + x_1(n + e0): shift along t (dim 1 of x1), periodic.
    xp[:, :-1].add_(x1[:, 1:])
    xp[:, -1].add_(x1[:, 0])
    # - x_0(n + e1): shift along s (dim 2 of x0), periodic.
    xp[:, :, :-1].sub_(x0[:, :, 1:])
    xp[:, :, -1].sub_(x0[:, :, 0])
    return xp


def action(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Wilson action ``beta sum_n (1 - cos x_P(n))`` per chain, shape ``[B]``."""
    cos = plaquette_angles(x).cos_()
    return beta * (cos.shape[1] * cos.shape[2] - cos.sum(dim=(1, 2)))


def force(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Analytic ``dS/dx``, shape ``[B, 2, Nt, Nx]``.

    ``dS/dx_0(n) = beta (sin x_P(n) - sin x_P(n - e1))`` and
    ``dS/dx_1(n) = beta (sin x_P(n - e0) - sin x_P(n))``: every link sits in
    two plaquettes, with opposite orientation.
    """
    if _tracks_grad(x):
        # Differentiable (L2HMC trains through the force), out of place.
        s = torch.sin(plaquette_angles(x)) * beta
        return torch.stack((s - s.roll(1, 2), s.roll(1, 1) - s), dim=1)
    s = plaquette_angles(x).sin_().mul_(beta)
    f = s.new_empty(x.shape)
    # Each difference is written straight into f: one pass over memory each.
    torch.sub(s[:, :, 1:], s[:, :, :-1], out=f[:, 0, :, 1:])
    torch.sub(s[:, :, 0], s[:, :, -1], out=f[:, 0, :, 0])
    torch.sub(s[:, :-1], s[:, 1:], out=f[:, 1, 1:])
    torch.sub(s[:, -1], s[:, 0], out=f[:, 1, 0])
    return f


def plaquette(x: torch.Tensor) -> torch.Tensor:
    """Average plaquette ``<cos x_P>`` over the lattice, per chain."""
    return plaquette_angles(x).cos_().mean(dim=(1, 2))


def _charge_from_angles(xp: torch.Tensor) -> torch.Tensor:
    return torch.round(wrap_(xp.clone()).sum(dim=(1, 2)) / TWO_PI)


def _charge_real_from_angles(xp: torch.Tensor) -> torch.Tensor:
    return torch.sin(xp).sum(dim=(1, 2)) / TWO_PI


def charge(x: torch.Tensor) -> torch.Tensor:
    """Integer topological charge ``Q_Z = (1/2pi) sum_P [x_P]``, ``[phi]`` wrapped to ``[-pi, pi)``.

    On a torus the unwrapped plaquette angles sum to zero, so the wrapped sum
    counts the ``2 pi`` windings: an integer up to summation rounding, which is
    removed (returned as an integer-valued float).
    """
    return _charge_from_angles(plaquette_angles(x))


def charge_real(x: torch.Tensor) -> torch.Tensor:
    """``Q_R = (1/2pi) sum_P sin x_P``: smooth in the links, hence usable in a training loss."""
    return _charge_real_from_angles(plaquette_angles(x))


class U1Theory:
    """2D U(1) Wilson gauge theory on an ``Nt x Nx`` torus; a ``GaugeTheory``."""

    name = "U1"

    def __init__(
        self,
        lattice: tuple[int, ...],
        beta: float,
        precision: str = "double",
        device: torch.device | str = "cpu",
    ):
        self.check_lattice(tuple(lattice))
        if precision not in DTYPES:
            known = ", ".join(DTYPES)
            raise ValueError(f"unknown precision {precision!r} (expected one of {known})")
        self.lattice = tuple(int(n) for n in lattice)
        self.beta = float(beta)
        self.precision = precision
        self.dtype = DTYPES[precision]
        self.device = torch.device(device)

    @classmethod
    def exact_plaquette(cls, lattice: tuple[int, ...], beta: float) -> ExactValue | None:
        """The finite-volume Bessel sum: exact on the torus, so its error is round-off only.

        Beyond the sum's bounded cost (huge beta) the large-beta expansion of the same torus,
        with the bound on its omitted terms as the error; ``None`` if neither applies.
        """
        from dlhmc.lattice import u1_exact

        volume = math.prod(lattice)
        value = u1_exact.exact_plaquette(beta, volume)
        if value is None:
            return None
        if u1_exact.uses_bessel_sum(beta, volume):
            return ExactValue(value, 0.0, "finite-volume Bessel sum")
        return ExactValue(value, u1_exact.large_beta_error(beta), "large-beta expansion")

    @classmethod
    def check_lattice(cls, shape: tuple[int, ...]) -> None:
        """Raise ``ValueError`` unless ``shape`` is two extents ``Nt Nx``, each at least 2.

        Extent 1 would make a link its own neighbour: the plaquette degenerates.
        """
        if len(shape) != 2:
            raise ValueError(
                f"U1 needs a 2D lattice (Nt Nx), got {len(shape)} extents {tuple(shape)}"
            )
        if any(int(n) < 2 for n in shape):
            raise ValueError(f"U1 lattice extents must be >= 2, got {tuple(shape)}")

    def __repr__(self) -> str:
        return f"U1Theory(lattice={self.lattice}, beta={self.beta}, precision={self.precision!r})"

    def with_beta(self, beta: float) -> U1Theory:
        return U1Theory(self.lattice, beta, precision=self.precision, device=self.device)

    def momentum_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, 2, *self.lattice)

    def hot_start(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Independent uniform angles: the Haar measure of U(1)."""
        u = torch.rand(
            self.momentum_shape(batch), generator=generator, dtype=self.dtype, device=self.device
        )
        return wrap_(u.mul_(TWO_PI).sub_(math.pi))

    def cold_start(self, batch: int) -> torch.Tensor:
        return torch.zeros(self.momentum_shape(batch), dtype=self.dtype, device=self.device)

    def action(self, x: torch.Tensor) -> torch.Tensor:
        return action(x, self.beta)

    def force(self, x: torch.Tensor) -> torch.Tensor:
        return force(x, self.beta)

    def sample_momentum(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(
            self.momentum_shape(batch), generator=generator, dtype=self.dtype, device=self.device
        )

    def kinetic_energy(self, p: torch.Tensor) -> torch.Tensor:
        """``sum p^2 / 2`` as a batched dot product (no squared temporary)."""
        q = p.flatten(1)
        return 0.5 * torch.einsum("bi,bi->b", q, q)

    def evolve_links(
        self, x: torch.Tensor, p: torch.Tensor, eps: float | torch.Tensor
    ) -> torch.Tensor:
        """``x + eps p`` wrapped: ``exp(i eps p) exp(i x)`` for an abelian group."""
        if isinstance(eps, torch.Tensor):
            return wrap_(x + eps * p)
        return wrap_(torch.add(x, p, alpha=eps))

    def plaquette_angles(self, x: torch.Tensor) -> torch.Tensor:
        return plaquette_angles(x)

    def plaquette(self, x: torch.Tensor) -> torch.Tensor:
        return plaquette(x)

    def charge(self, x: torch.Tensor) -> torch.Tensor:
        return charge(x)

    def charge_real(self, x: torch.Tensor) -> torch.Tensor:
        return charge_real(x)

    def observables(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``plaq``, ``charge`` (``Q_Z``) and ``charge_real`` (``Q_R``) from one plaquette pass."""
        xp = plaquette_angles(x)
        return {
            "plaq": torch.cos(xp).mean(dim=(1, 2)),
            "charge": _charge_from_angles(xp),
            "charge_real": _charge_real_from_angles(xp),
        }
