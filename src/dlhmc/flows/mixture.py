"""The circle map of an active plaquette: a mixture of non-compact projections, then a rotation.

Why this map (Kanwar et al. arXiv:2003.06413, Albergo et al. arXiv:2101.08176): a coupling
layer must move a plaquette angle ``y`` in ``[-pi, pi)`` by a diffeomorphism of the circle whose
derivative is known in closed form.  One non-compact projection ``h_s(y) = 2 atan(e^s tan(y/2))``
(:func:`dlhmc.group.u1.circle_map`) can only squeeze the density towards ``0`` or towards ``pi``;
a convex mixture ``h(y) = sum_i w_i h_{s_i}(y)`` of several is still increasing and still fixes
``-pi`` and ``pi`` (every term does), so it is again a diffeomorphism of the circle, with the
derivative ``h'(y) = sum_i w_i h'_{s_i}(y)``, and it can shape a peak and its tails separately.
A rotation ``y -> h(y) + t`` then moves the peak where the frozen neighbourhood wants it.

The inverse has no closed form: ``h`` is increasing on ``[-pi, pi]``, so batched bisection finds
``y`` to the last bit (a fixed number of halvings, one tensor operation per halving for every
plaquette at once), and one Newton step taken under autograd gives the inverse its exact
first derivatives (implicit-function theorem) for callers that differentiate it.
"""

from __future__ import annotations

import math

import torch

from dlhmc.group.u1 import circle_map, wrap

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


def mixture(y: torch.Tensor, s: torch.Tensor, log_w: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``h(y) = sum_i w_i h_{s_i}(y)`` and ``log h'(y)`` for ``y`` in ``[-pi, pi)``."""
    mapped, log_d = circle_map(y.unsqueeze(1), s)
    return (log_w.exp() * mapped).sum(1), torch.logsumexp(log_w + log_d, dim=1)


def forward(y: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How far the map moves the plaquette angle ``y`` in ``[-pi, pi)``, ``h(y) + t - y``, and
    ``log h'(y)``."""
    s, log_w, t = split(params)
    mapped, log_d = mixture(y, s, log_w)
    return mapped + t - y, log_d


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
            below = mixture(mid, s, log_w)[0] < target
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        y0 = 0.5 * (lo + hi)
    mapped, log_d = mixture(y0, s, log_w)
    y = y0 - (mapped - target) * torch.exp(-log_d)  # y0 up to rounding, with exact derivatives
    return target + t - y, mixture(y, s, log_w)[1]
