"""The circle map of an active plaquette: a mixture of non-compact projections, then a rotation.

Why this map (Kanwar et al. arXiv:2003.06413, Albergo et al. arXiv:2101.08176): a coupling
layer must move a plaquette angle ``y`` in ``[-pi, pi)`` by a diffeomorphism of the circle whose
derivative is known in closed form.  One non-compact projection ``h_s(y) = 2 atan(e^s tan(y/2))``
(:func:`dlhmc.group.u1.circle_map`) can only squeeze the density towards ``0`` or towards ``pi``;
a convex mixture ``h(y) = sum_i w_i h_{s_i}(y)`` of several is still increasing and still fixes
``-pi`` and ``pi`` (every term does), so it is again a diffeomorphism of the circle, with the
derivative ``h'(y) = sum_i w_i h'_{s_i}(y)``, and it can shape a peak and its tails separately.
A rotation ``y -> h(y) + t`` then moves the peak where the frozen neighbourhood wants it.

The map is computed as a displacement from the identity, ``h(y) - y`` with
``tan((h_s(y) - y) / 2) = (e^s - 1) sin(y/2) cos(y/2) / (cos^2(y/2) + e^s sin^2(y/2))``, and
``log h'`` from ``h' - 1``: no cancellation of ``h(y)`` against ``y`` (a map close to the
identity, such as a bridge between nearby couplings, keeps its small moves to full relative
precision), and zero parameters (``s = 0``, uniform weights, ``t = 0``) give exactly the
identity, ``h(y) - y = 0`` and ``log h' = 0`` bit for bit: a flow whose heads are zero maps
every configuration onto itself with ``log|J| = 0`` (the start of ``--sampler bridge``).

The inverse has no closed form: ``h`` is increasing on ``[-pi, pi]``, so batched bisection finds
``y`` to the last bit (a fixed number of halvings, one tensor operation per halving for every
plaquette at once), and one Newton step taken under autograd gives the inverse its exact
first derivatives (implicit-function theorem) for callers that differentiate it.
"""

from __future__ import annotations

import math

import torch

from dlhmc.group.u1 import wrap

# Components of the mixture per active plaquette (Albergo et al. use 2; more cost little, as
# the networks dominate the time; 4 was not measured against 2).
N_COMPONENTS = 4
# Outputs of a coupling layer's network per active plaquette: log-scales, mixture logits, rotation.
N_PARAMETERS = 2 * N_COMPONENTS + 1
# |s| bound of the log-scales: exp(s) stays finite in single precision, and stacked layers
# compound scales far beyond e^6 where the target needs it.
LOG_SCALE_BOUND = 6.0


def split(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Network outputs ``[B, N_PARAMETERS, ...]`` as ``(s, log w, t)``: bounded log-scales and
    normalized log mixture weights ``[B, N_COMPONENTS, ...]``, and the rotation ``[B, ...]``."""
    s = LOG_SCALE_BOUND * torch.tanh(params[:, :N_COMPONENTS] / LOG_SCALE_BOUND)
    log_w = torch.log_softmax(params[:, N_COMPONENTS:2 * N_COMPONENTS], dim=1)
    return s, log_w, params[:, 2 * N_COMPONENTS]


def displacement(y: torch.Tensor, log_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``h_s(y) - y`` and ``log h_s'(y)`` of the non-compact projection
    ``h_s(y) = 2 atan(e^s tan(y/2))`` (:func:`dlhmc.group.u1.circle_map`), both exactly 0 at
    ``s = 0``.  ``(h_s(y) - y) / 2`` lies in ``(-pi/2, pi/2)`` and the denominator below is
    positive, so ``atan2`` takes the right branch; ``h_s' = e^s / (1 + (e^{2s} - 1) sin^2(y/2))``.
    """
    cos_half, sin_half = torch.cos(0.5 * y), torch.sin(0.5 * y)
    moved = 2.0 * torch.atan2(torch.expm1(log_scale) * sin_half * cos_half,
                              cos_half.square() + torch.exp(log_scale) * sin_half.square())
    # log(cos^2 + e^{2s} sin^2), the denominator of h_s', from its excess over 1
    excess = torch.expm1(2.0 * log_scale) * sin_half.square()
    full = cos_half.square() + torch.exp(2.0 * log_scale) * sin_half.square()
    return moved, log_scale - _log_of_one_plus(excess, lambda: torch.log(full))


def _log_of_one_plus(excess: torch.Tensor, direct) -> torch.Tensor:
    """``log(1 + excess)`` from ``excess`` (``> -1``) where ``1 + excess >= 1/2`` (exactly 0 at
    ``excess = 0``, full relative precision), else ``direct()``: close to ``-1``, ``excess`` has
    lost the digits that the logarithm of a small number needs."""
    return torch.where(excess > -0.5, torch.log1p(excess), direct())


def mixture(y: torch.Tensor, s: torch.Tensor, log_w: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``h(y) - y = sum_i w_i (h_{s_i}(y) - y)`` and ``log h'(y)`` for ``y`` in ``[-pi, pi)``.

    ``log h' = log1p(sum_i w_i (h_i' - 1))``, exactly 0 at the identity, where ``h' >= 1/2``;
    the log-sum-exp of ``log w_i + log h_i'`` where the map compresses more strongly.
    """
    moved, log_d = displacement(y.unsqueeze(1), s)
    w = log_w.exp()
    excess = (w * torch.expm1(log_d)).sum(1)  # h'(y) - 1 > -1
    log_dh = _log_of_one_plus(excess, lambda: torch.logsumexp(log_w + log_d, dim=1))
    return (w * moved).sum(1), log_dh


def forward(y: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How far the map moves the plaquette angle ``y`` in ``[-pi, pi)``, ``h(y) + t - y``, and
    ``log h'(y)``."""
    s, log_w, t = split(params)
    moved, log_d = mixture(y, s, log_w)
    return moved + t, log_d


def inverse(y_new: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For a mapped angle ``y_new``: how far the forward map moved it, ``h(y) + t - y`` with the
    ``y`` in ``[-pi, pi)`` such that ``h(y) + t = y_new`` (mod ``2 pi``), and ``log h'(y)``."""
    s, log_w, t = split(params)
    target = wrap(y_new - t)
    # Halvings of 2 pi down to the last bit of the precision (eps = 2^-mantissa bits).
    digits = 3 - round(math.log2(torch.finfo(target.dtype).eps))
    with torch.no_grad():
        lo = torch.full_like(target, -math.pi)
        hi = torch.full_like(target, math.pi)
        for _ in range(digits):
            mid = 0.5 * (lo + hi)
            below = mid + mixture(mid, s, log_w)[0] < target
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        y0 = 0.5 * (lo + hi)
    moved, log_d = mixture(y0, s, log_w)
    y = y0 - (y0 + moved - target) * torch.exp(-log_d)  # y0 up to rounding, exact derivatives
    return target + t - y, mixture(y, s, log_w)[1]
