"""The group SU(3) and its algebra, batched over any leading dimensions.

Matrices are complex tensors ``[..., 3, 3]``; algebra elements are carried as the
8 real components ``omega^a`` of the Hermitian matrix ``H = omega^a T^a`` with
``T^a = lambda^a / 2`` (Gell-Mann), so ``Tr(T^a T^b) = delta^ab / 2`` and
``Tr H^2 = |omega|^2 / 2``.  These are the coordinates networks see and the
samplers integrate in (``physics.md``).

Products of 3x3 matrices go through ``torch.matmul`` on ``[..., 3, 3]``: one
batched kernel call, measured (1 thread, complex128) at about 35 ns per
product, as fast as ``einsum`` and faster than hand-unrolled elementwise
products in a colour-major layout (per-op overhead) or broadcast-and-sum
(memory traffic).  Daggers are the lazy views ``A.mH``, no slower than
contiguous copies.

The exponential is exact (Cayley-Hamilton, Morningstar & Peardon,
hep-lat/0311018): ``exp(iH) = f0 + f1 H + f2 H^2`` with ``f_j`` closed-form
functions of the two invariants of ``H``.  Links built from it stay in SU(3) to
round-off, which a truncated series would not guarantee.
"""

from __future__ import annotations

import functools
import math

import torch

SQRT3 = math.sqrt(3.0)


def _gell_mann() -> torch.Tensor:
    lam = torch.zeros(8, 3, 3, dtype=torch.complex128)
    lam[0, 0, 1] = lam[0, 1, 0] = 1
    lam[1, 0, 1], lam[1, 1, 0] = -1j, 1j
    lam[2, 0, 0], lam[2, 1, 1] = 1, -1
    lam[3, 0, 2] = lam[3, 2, 0] = 1
    lam[4, 0, 2], lam[4, 2, 0] = -1j, 1j
    lam[5, 1, 2] = lam[5, 2, 1] = 1
    lam[6, 1, 2], lam[6, 2, 1] = -1j, 1j
    lam[7, 0, 0] = lam[7, 1, 1] = 1 / SQRT3
    lam[7, 2, 2] = -2 / SQRT3
    return lam


_T = _gell_mann() / 2


def generators(dtype: torch.dtype = torch.complex128, device=None) -> torch.Tensor:
    """``T^a = lambda^a / 2`` as a ``[8, 3, 3]`` tensor."""
    return _T.to(dtype=dtype, device=device)


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype == torch.complex64 else torch.float64


def _linear_maps() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real matrices of the maps ``omega -> omega^a T^a`` and ``M -> Re/Im Tr(T^a M)``.

    They act on the real view of a complex 3x3 matrix (18 numbers, ``(i, j, re/im)``
    row-major), so each map is one small real matmul: a complex matmul with
    inner dimension 8 or 9 is several times slower on CPU.
    """
    t = _T.reshape(8, 9)
    to_matrix = torch.view_as_real(t).reshape(8, 18)
    # Tr(T^a M) = sum_ij T^a_ij M_ji: pair T^a_ij with M_ji.
    tt = torch.view_as_real(_T.transpose(-1, -2).reshape(8, 9))
    tr_re = torch.stack((tt[..., 0], -tt[..., 1]), dim=-1).reshape(8, 18)
    tr_im = torch.stack((tt[..., 1], tt[..., 0]), dim=-1).reshape(8, 18)
    return to_matrix, tr_re, tr_im


@functools.cache
def _maps_on(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The linear maps in a real ``dtype`` on ``device``, converted once (no copy per GPU call).

    Made outside inference mode whatever mode the first call runs in: a cached tensor outlives
    the chains that ``torch.inference_mode`` sampled (:func:`dlhmc.samplers.base.sampling_mode`)
    and must still enter autograd afterwards (a force by autograd, training)."""
    with torch.inference_mode(False):
        return tuple(m.to(dtype=dtype, device=device) for m in _linear_maps())


def hermitian(omega: torch.Tensor) -> torch.Tensor:
    """``H = omega^a T^a`` for real ``omega [..., 8]``: a traceless Hermitian ``[..., 3, 3]``."""
    m = _maps_on(omega.dtype, omega.device)[0]
    return torch.view_as_complex((omega @ m).reshape(omega.shape[:-1] + (3, 3, 2)))


def antihermitian(omega: torch.Tensor) -> torch.Tensor:
    """``i omega^a T^a``: the traceless anti-Hermitian matrix of the same components."""
    return 1j * hermitian(omega)


def _traces(m: torch.Tensor, which: int) -> torch.Tensor:
    r = torch.view_as_real(m.resolve_conj()).reshape(-1, 18)
    # [8, 18] @ [18, N] runs several times faster than [N, 18] @ [18, 8] in MKL.
    out = _maps_on(r.dtype, r.device)[which] @ r.T
    return out.T.reshape(m.shape[:-2] + (8,))


def trace_re(m: torch.Tensor) -> torch.Tensor:
    """``Re Tr(T^a M)`` for every ``a``, real ``[..., 8]``."""
    return _traces(m, 1)


def trace_im(m: torch.Tensor) -> torch.Tensor:
    """``Im Tr(T^a M)`` for every ``a``, real ``[..., 8]``."""
    return _traces(m, 2)


def components(h: torch.Tensor) -> torch.Tensor:
    """The 8 real components of the traceless Hermitian part of ``h``: ``2 Re Tr(T^a h)``."""
    return 2 * trace_re(h)


def antihermitian_components(a: torch.Tensor) -> torch.Tensor:
    """Components ``omega`` with ``i omega^a T^a`` the traceless anti-Hermitian part of ``a``."""
    return 2 * trace_im(a)


def project_antihermitian(m: torch.Tensor) -> torch.Tensor:
    """su(3) projection: traceless anti-Hermitian part ``(M - M^dagger)/2 - Tr(M - M^dagger)/6``."""
    a = 0.5 * (m - m.mH)
    tr = torch.diagonal(a, dim1=-2, dim2=-1).sum(-1) / 3
    return a - tr[..., None, None] * torch.eye(3, dtype=m.dtype, device=m.device)


def _xi0(w: torch.Tensor) -> torch.Tensor:
    """``sin(w)/w``, by its series where the quotient would lose digits."""
    small = w.abs() < 0.05
    ws = torch.where(small, torch.ones_like(w), w)
    w2 = w * w
    series = 1 - w2 / 6 * (1 - w2 / 20 * (1 - w2 / 42))
    return torch.where(small, series, torch.sin(ws) / ws)


def exp_coefficients(
    h: torch.Tensor, h2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``f0, f1, f2`` (complex ``[...]``) with ``exp(iH) = f0 + f1 H + f2 H^2``.

    Morningstar-Peardon: with ``c0 = det H = Re Tr H^3 / 3``, ``c1 = Tr H^2 / 2``
    the eigenvalues are ``2u, -u + w, -u - w``.  For ``c0 >= 0`` the angle
    ``theta/3`` stays in ``[0, pi/6]``, so the denominator ``9u^2 - w^2 >= 2 c1``
    never vanishes except at ``H = 0``; negative ``c0`` uses
    ``f_j(-c0) = (-1)^j conj(f_j(c0))``.  Below ``c1 ~ eps_machine^2`` the series
    ``1 + iH - H^2/2`` is exact to round-off.  Guarded values are substituted
    before the branches so autograd never sees ``0/0`` (L2HMC trains through this).
    """
    c1 = 0.5 * torch.diagonal(h2, dim1=-2, dim2=-1).real.sum(-1)
    # Re Tr(H H^2) with H^2 Hermitian is the real dot product of the two matrices.
    c0 = (torch.view_as_real(h) * torch.view_as_real(h2)).sum((-1, -2, -3)) / 3
    tiny = c1 < torch.finfo(c1.dtype).eps ** 2
    c1s = torch.where(tiny, torch.ones_like(c1), c1)
    c0a = torch.where(tiny, torch.zeros_like(c0), c0.abs())
    theta = torch.arccos(torch.clamp(c0a / (2 * (c1s / 3) ** 1.5), max=1.0))
    u = torch.sqrt(c1s / 3) * torch.cos(theta / 3)
    w = torch.sqrt(c1s) * torch.sin(theta / 3)
    u2, w2 = u * u, w * w
    cw, xi = torch.cos(w), _xi0(w)
    cu, su, c2, s2 = torch.cos(u), torch.sin(u), torch.cos(2 * u), torch.sin(2 * u)

    def times_em(re: torch.Tensor, im: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # exp(-iu) (re + i im), in real arithmetic (cheaper than complex ops on CPU).
        return cu * re + su * im, cu * im - su * re

    a0, b0 = times_em(8 * u2 * cw, 2 * u * (3 * u2 + w2) * xi)
    a1, b1 = times_em(2 * u * cw, -(3 * u2 - w2) * xi)
    a2, b2 = times_em(cw, 3 * u * xi)
    r = 1 / (9 * u2 - w2)
    # c0 < 0: f_j(c0) = (-1)^j conj(f_j(-c0)), i.e. flip Im f0, Re f1, Im f2.
    sign = torch.where(c0 < 0, -r, r)
    f0 = torch.complex(((u2 - w2) * c2 + a0) * r, ((u2 - w2) * s2 + b0) * sign)
    f1 = torch.complex((2 * u * c2 - a1) * sign, (2 * u * s2 - b1) * r)
    f2 = torch.complex((c2 - a2) * r, (s2 - b2) * sign)
    one = torch.ones_like(f0)
    f0 = torch.where(tiny, one, f0)
    f1 = torch.where(tiny, 1j * one, f1)
    f2 = torch.where(tiny, -0.5 * one, f2)
    return f0, f1, f2


def expi(h: torch.Tensor) -> torch.Tensor:
    """Exact ``exp(iH)`` of traceless Hermitian ``h [..., 3, 3]``; an SU(3) matrix to round-off."""
    h2 = h @ h
    f0, f1, f2 = exp_coefficients(h, h2)
    e = f1[..., None, None] * h + f2[..., None, None] * h2
    e.diagonal(dim1=-2, dim2=-1).add_(f0[..., None])
    return e


def expi_components(omega: torch.Tensor) -> torch.Tensor:
    """``exp(i omega^a T^a)`` from real components ``[..., 8]``."""
    return expi(hermitian(omega))


def _row_norm(r: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of complex rows ``[..., 3]`` as ``[..., 1]``, summed over the real and
    imaginary parts: ``torch.linalg.vector_norm`` of a complex tensor is ~8x slower on CPU, and
    reunitarizing every link after each update is on the hot path of SU(3) HMC."""
    return torch.view_as_real(r).square().sum((-2, -1)).sqrt().unsqueeze(-1)


def reunitarize(u: torch.Tensor) -> torch.Tensor:
    """Nearest-by-Gram-Schmidt SU(3) matrix: orthonormalize rows 0, 1; row 2 = conj(row0 x row1).

    The third row built as the conjugate cross product makes ``det = 1`` exactly,
    so the result is in SU(3), not just U(3).
    """
    r0 = u[..., 0, :]
    r0 = r0 / _row_norm(r0)
    r1 = u[..., 1, :]
    r1 = r1 - (r0.conj() * r1).sum(-1, keepdim=True) * r0
    r1 = r1 / _row_norm(r1)
    r2 = torch.linalg.cross(r0, r1).conj()
    return torch.stack((r0, r1, r2), dim=-2)


def haar(
    shape: tuple[int, ...],
    generator: torch.Generator,
    dtype: torch.dtype = torch.complex128,
    device=None,
) -> torch.Tensor:
    """Haar-distributed SU(3) matrices ``[*shape, 3, 3]``.

    QR of a complex Gaussian matrix gives a U(3) Haar matrix once the phases of
    ``diag(R)`` are moved into ``Q`` (Mezzadri, math-ph/0609050).  Dividing by a
    cube root of the determinant commutes with left multiplication by SU(3), so
    it pushes U(3) Haar measure forward to SU(3) Haar measure.  Sampled in
    complex128 whatever ``dtype`` is, so single and double precision runs start
    from the same links.
    """
    g = torch.randn((*shape, 3, 3, 2), generator=generator, dtype=torch.float64, device=device)
    z = torch.view_as_complex(g)
    q, r = torch.linalg.qr(z)
    d = torch.diagonal(r, dim1=-2, dim2=-1)
    q = q * (d / d.abs())[..., None, :]
    det = torch.linalg.det(q)
    q = q * torch.polar(torch.ones_like(det.real), -det.angle() / 3)[..., None, None]
    return q.to(dtype)


def unitarity_violation(u: torch.Tensor) -> torch.Tensor:
    """Largest entry of ``|U^dagger U - 1|`` or ``|det U - 1|`` over all matrices (0-dim tensor)."""
    eye = torch.eye(3, dtype=u.dtype, device=u.device)
    dev = (u.mH @ u - eye).abs().amax()
    return torch.maximum(dev, (torch.linalg.det(u) - 1).abs().amax())
