"""The group U(1) as angles: wrapping onto the circle and ``(cos x, sin x)`` features.

A U(1) element ``exp(i x)`` is carried as its angle ``x`` in ``[-pi, pi)``.  Every update
of an angle is followed by a wrap back into that interval, so two wraps exist, one per
need:

- :func:`wrap_` works in place, for the hot path of HMC, where every update already made
  a fresh tensor and one more pass over memory is the whole cost;
- :func:`wrap` returns a new tensor and counts the subtracted turns outside autograd, for
  the L2HMC updates that training differentiates: the backward then sees one subtraction.

Both are differentiable with derivative 1 (the subtracted multiple of ``2 pi`` is locally
constant).  They decide angles within one rounding of the boundary differently (``0.5 +
x / 2 pi`` against ``(x + pi) / 2 pi``); each caller keeps the one it always used, so
chains stay bit-identical.
"""

from __future__ import annotations

import math

import torch

TWO_PI = 2.0 * math.pi


def wrap_(x: torch.Tensor) -> torch.Tensor:
    """Map angles into ``[-pi, pi)`` in place, ``x - 2 pi floor((x + pi) / 2 pi)``.

    In place because it always follows an update that made a fresh tensor.
    Boundary values are decided up to one rounding of ``x / 2 pi``.
    """
    # 0.5 + x / 2 pi in one pass (the sum with a 0-d tensor): wrapping runs after every
    # link update, on memory-bound tensors.
    half = torch.full((), 0.5, dtype=x.dtype, device=x.device)
    return x.sub_(torch.add(half, x, alpha=1.0 / TWO_PI).floor_(), alpha=TWO_PI)


def wrap(x: torch.Tensor) -> torch.Tensor:
    """Angles mapped into ``[-pi, pi)``, a new tensor.

    The subtracted multiple of ``2 pi`` is counted without gradient, so autograd records one
    subtraction (L2HMC trains through every x update).
    """
    with torch.no_grad():
        turns = torch.floor((x + math.pi) / TWO_PI)
    return torch.sub(x, turns, alpha=TWO_PI)


class _CosSin(torch.autograd.Function):
    """``cos x`` and ``sin x`` stacked along ``dim``, with a backward that reuses them.

    Autograd of ``torch.cos`` and ``torch.sin`` evaluates ``sin`` and ``cos`` again in
    the backward pass; here ``d cos = -sin dx`` and ``d sin = cos dx`` come from the
    saved outputs, which are written straight into the stacked tensor (no copy by
    ``torch.stack``).  First derivatives only (training needs no more).
    """

    @staticmethod
    def forward(ctx, x, dim):
        out = x.new_empty((2, *x.shape) if dim == 0 else (*x.shape, 2))
        torch.cos(x, out=out.select(dim, 0))
        torch.sin(x, out=out.select(dim, 1))
        ctx.dim = dim
        ctx.save_for_backward(out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        dim = ctx.dim
        cos, sin = out.select(dim, 0), out.select(dim, 1)
        return grad.select(dim, 1) * cos - grad.select(dim, 0) * sin, None


def cos_sin(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``torch.stack((cos x, sin x), dim)`` for ``dim`` 0 or -1, with a cheaper backward.

    ``dim=0`` keeps ``cos x`` and ``sin x`` contiguous (for further arithmetic),
    ``dim=-1`` interleaves them per element (the U(1) network features): the embedding of
    the circle in the plane, smooth where the angle itself jumps.
    """
    if dim not in (0, -1):
        raise ValueError(f"cos_sin: dim must be 0 or -1, got {dim}")
    return _CosSin.apply(x, dim)


def circle_map(y: torch.Tensor, log_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The non-compact projection ``h(y) = 2 atan(exp(log_scale) tan(y / 2))`` and ``log h'(y)``.

    Scaling an angle by ``exp(s)`` would not respect the circle; scaling ``tan(y/2)`` maps
    ``(-pi, pi)`` onto itself smoothly and fixes ``pi``, so ``h`` is a diffeomorphism of the
    circle (its inverse is ``h`` with ``-log_scale``) with the analytic derivative
    ``h'(y) = exp(s) / (cos^2(y/2) + exp(2 s) sin^2(y/2))``.  Computed through ``atan2`` of the
    scaled half-angle sine and cosine: ``cos(y/2) > 0`` on ``[-pi, pi)``, so this is the branch
    of ``atan`` and cheaper.  Both L2HMC families and the flows move U(1) variables with it.
    """
    cos_half = torch.cos(0.5 * y)
    sin_half = torch.exp(log_scale) * torch.sin(0.5 * y)
    mapped = 2.0 * torch.atan2(sin_half, cos_half)
    return mapped, log_scale - torch.log(cos_half.square() + sin_half.square())
