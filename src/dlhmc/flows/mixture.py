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

The inverse has no closed form: ``h`` is increasing on ``[-pi, pi]``, so Newton's method kept
inside a shrinking bracket finds ``y`` to the last bit for every plaquette at once (:func:`_solve`),
and one Newton step taken under autograd gives the inverse its exact first derivatives
(implicit-function theorem) for callers that differentiate it.
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
# Safeguarded Newton steps of the inverse before the bisection that finishes what they leave
# (_solve): near the identity 3-5 suffice, a random map with |s| near the bound needs ~10.
NEWTON_STEPS = 16


def split(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Network outputs ``[B, N_PARAMETERS, ...]`` as ``(s, log w, t)``: bounded log-scales and
    normalized log mixture weights ``[B, N_COMPONENTS, ...]``, and the rotation ``[B, ...]``."""
    s = LOG_SCALE_BOUND * torch.tanh(params[:, :N_COMPONENTS] / LOG_SCALE_BOUND)
    log_w = torch.log_softmax(params[:, N_COMPONENTS:2 * N_COMPONENTS], dim=1)
    return s, log_w, params[:, 2 * N_COMPONENTS]


def _halves(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``cos^2(y/2)``, ``sin^2(y/2)`` and ``sin(y/2) cos(y/2)``."""
    half = 0.5 * y
    cos_half, sin_half = torch.cos(half), torch.sin(half)
    return cos_half.square(), sin_half.square(), sin_half * cos_half


def _moved(log_scale: torch.Tensor, cos2: torch.Tensor, sin2: torch.Tensor,
           cross: torch.Tensor) -> torch.Tensor:
    """``h_s(y) - y`` from :func:`_halves` of ``y``."""
    return 2.0 * torch.atan2(torch.expm1(log_scale) * cross, cos2 + torch.exp(log_scale) * sin2)


def _log_den(log_scale: torch.Tensor, cos2: torch.Tensor, sin2: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``log D`` with ``D = cos^2(y/2) + e^{2s} sin^2(y/2)`` (``h_s' = e^s / D``), from its
    excess over 1; also ``D`` and ``e^{2s} - 1``."""
    e2m1 = torch.expm1(2.0 * log_scale)
    full = cos2 + torch.exp(2.0 * log_scale) * sin2
    return _log_of_one_plus(e2m1 * sin2, lambda: torch.log(full)), full, e2m1


def displacement(y: torch.Tensor, log_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``h_s(y) - y`` and ``log h_s'(y)`` of the non-compact projection
    ``h_s(y) = 2 atan(e^s tan(y/2))`` (:func:`dlhmc.group.u1.circle_map`), both exactly 0 at
    ``s = 0``.  ``(h_s(y) - y) / 2`` lies in ``(-pi/2, pi/2)`` and the denominator below is
    positive, so ``atan2`` takes the right branch; ``h_s' = e^s / (1 + (e^{2s} - 1) sin^2(y/2))``.
    """
    cos2, sin2, cross = _halves(y)
    return _moved(log_scale, cos2, sin2, cross), log_scale - _log_den(log_scale, cos2, sin2)[0]


def _log_of_one_plus(excess: torch.Tensor, direct) -> torch.Tensor:
    """``log(1 + excess)`` from ``excess`` (``> -1``) where ``1 + excess >= 1/2`` (exactly 0 at
    ``excess = 0``, full relative precision), else ``direct()``: close to ``-1``, ``excess`` has
    lost the digits that the logarithm of a small number needs."""
    return torch.where(excess > -0.5, torch.log1p(excess), direct())


def _log_slope(w: torch.Tensor, log_d: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``log h'`` of the mixture from the ``log h_i'`` (``log_d``), with ``h' - 1`` and the
    terms ``w_i h_i'``: ``log1p(sum_i w_i (h_i' - 1))`` (exactly 0 at the identity) where
    ``h' >= 1/2``, else the logarithm of the sum of the positive ``w_i h_i'`` (``|s| <= 6``
    keeps every ``h_i'`` within ``e^-12 .. e^12``: nothing under- or overflows)."""
    terms = w * log_d.exp()
    excess = (w * torch.expm1(log_d)).sum(1)
    return _log_of_one_plus(excess, lambda: torch.log(terms.sum(1))), excess, terms


def mixture(y: torch.Tensor, s: torch.Tensor, log_w: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``h(y) - y = sum_i w_i (h_{s_i}(y) - y)`` and ``log h'(y)`` for ``y`` in ``[-pi, pi)``
    (:func:`_log_slope`), differentiable by autograd (what :class:`_CircleMap` computes)."""
    moved, log_d = displacement(y.unsqueeze(1), s)
    w = log_w.exp()
    return (w * moved).sum(1), _log_slope(w, log_d)[0]


class _CircleMap(torch.autograd.Function):
    """:func:`forward`'s values with a hand-written backward.

    Why: a coupling layer's map is ~35 elementwise operations on small tensors, and the step of
    training is bound by the number of operations, not by arithmetic; recorded by autograd each
    of them adds a node (and its saved tensors) to the graph, here the backward is ~20 fused
    tensor expressions.  The derivatives, per component ``i`` (``c, n = cos(y/2), sin(y/2)``,
    ``D_i = c^2 + e^{2 s_i} n^2``, ``h_i' = e^{s_i} / D_i``, ``H' = sum_i w_i h_i'``,
    responsibilities ``r_i = w_i h_i' / H'``):

    - ``d(h_i - y)/dy = h_i' - 1``, ``dh_i/ds_i = h_i' sin y``, ``d h/d logit_j = w_j (d_j - d)``
      (``d_j = h_j - y``, ``d = sum_i w_i d_i``: the softmax);
    - ``d log h_i'/dy = -(e^{2 s_i} - 1) c n / D_i``, ``d log h_i'/ds_i = 2 c^2 / D_i - 1``,
      ``d log H'/d logit_j = r_j - w_j``;
    - through the bound ``s = b tanh(p / b)``: ``ds/dp = 1 - (s / b)^2``.

    First derivatives only (``once_differentiable``); tests compare them with autograd of the
    plain expressions (:func:`mixture`) in double precision.
    """

    @staticmethod
    def forward(ctx, y: torch.Tensor, params: torch.Tensor, slope: bool = False):
        s, log_w, t = split(params)
        w = log_w.exp()
        cos2, sin2, cross = _halves(y.unsqueeze(1))
        moved = _moved(s, cos2, sin2, cross)
        log_den, full, e2m1 = _log_den(s, cos2, sin2)
        log_d = s - log_den
        log_dh, excess, wh = _log_slope(w, log_d)  # excess = h' - 1 = d(h(y) - y)/dy
        shift = (w * moved).sum(1)
        ctx.save_for_backward(s, w, wh, moved, shift, excess, log_dh, full, cos2, cross, e2m1)
        ctx.y_shape = y.shape
        if not slope:
            return shift + t, log_dh
        # d log h'/dy = -sum_i r_i (e^{2 s_i} - 1) c n / D_i, a value only (see backward).
        r = wh * torch.exp(-log_dh).unsqueeze(1)
        d_log_dh = -(r * e2m1 * cross / full).sum(1)
        ctx.mark_non_differentiable(d_log_dh)
        return shift + t, log_dh, d_log_dh

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_move: torch.Tensor, g_log: torch.Tensor, *_):
        s, w, wh, moved, shift, excess, log_dh, full, cos2, cross, e2m1 = ctx.saved_tensors
        g_m, g_l = g_move.unsqueeze(1), g_log.unsqueeze(1)
        inv_full = full.reciprocal()
        r = wh * torch.exp(-log_dh).unsqueeze(1)
        g_y = None
        if ctx.needs_input_grad[0]:
            g_y = g_move * excess - g_log * (r * e2m1 * cross * inv_full).sum(1)
            g_y = g_y.sum_to_size(ctx.y_shape)
        g_params = None
        if ctx.needs_input_grad[1]:
            g_s = 2.0 * g_m * wh * cross + g_l * r * (2.0 * cos2 * inv_full - 1.0)
            g_s = g_s * (1.0 - (s / LOG_SCALE_BOUND).square())
            g_logit = g_m * w * (moved - shift.unsqueeze(1)) + g_l * (r - w)
            g_params = torch.cat((g_s, g_logit, g_move.unsqueeze(1)), 1)
        return g_y, g_params, None


def forward(y: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How far the map moves the plaquette angle ``y`` in ``[-pi, pi)``, ``h(y) + t - y``, and
    ``log h'(y)``; ``params`` ``[B, N_PARAMETERS, ...]``, ``y`` ``[B, ...]``."""
    return _CircleMap.apply(y, params)


def forward_with_slope(y: torch.Tensor, params: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`forward`'s two outputs and ``d log h'(y) / dy``, the last one not differentiable
    (what the path gradient of :mod:`dlhmc.flows.path` needs of each active plaquette)."""
    return _CircleMap.apply(y, params, True)


def inverse(y_new: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For a mapped angle ``y_new``: how far the forward map moved it, ``h(y) + t - y`` with the
    ``y`` in ``[-pi, pi)`` such that ``h(y) + t = y_new`` (mod ``2 pi``), and ``log h'(y)``."""
    s, log_w, t = split(params)
    target = wrap(y_new - t)
    with torch.no_grad():
        y0 = _solve(target, s, log_w.exp())
    moved, log_d = mixture(y0, s, log_w)
    y = y0 - (y0 + moved - target) * torch.exp(-log_d)  # y0 up to rounding, exact derivatives
    return target + t - y, mixture(y, s, log_w)[1]


def _solve(target: torch.Tensor, s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The ``y`` in ``[-pi, pi]`` with ``h(y) = target``, to the last bit of the precision.

    Newton's method kept inside a bracket: ``h`` is increasing with ``h(-pi) = -pi``, ``h(pi) =
    pi``, so every evaluation's sign moves one end of ``[lo, hi]`` onto ``y``, and a Newton step
    that leaves the bracket is replaced by its midpoint (never worse than bisection).  It starts
    at ``y = target``, the root of the identity: a bridge between nearby couplings, or a flow
    layer close to the identity, is solved in a few steps, where plain bisection needs one
    halving per bit (52 in double precision), and the inverse of a T-REX swap was that much
    dearer than the forward map (docs/results.md, 2026-12-07).  An element stops once its
    residual is within a few rounding units of ``pi``; after ``NEWTON_STEPS`` every element left
    is finished by bisection of its bracket, so the cost stays bounded whatever the map."""
    finfo = torch.finfo(target.dtype)
    digits = 3 - round(math.log2(finfo.eps))
    tolerance = 4 * finfo.eps * math.pi
    lo = torch.full_like(target, -math.pi)
    hi = torch.full_like(target, math.pi)
    # The slope's scale factors, the same at every step: h' = sum_i w_i e^s_i / D_i with
    # D_i = cos^2(y/2) + e^(2 s_i) sin^2(y/2), always > 0.
    e_s, e_2s = torch.exp(s), torch.exp(2.0 * s)
    y = target.clone()
    for _ in range(NEWTON_STEPS):
        cos2, sin2, cross = _halves(y.unsqueeze(1))
        residual = y + (w * _moved(s, cos2, sin2, cross)).sum(1) - target
        done = residual.abs() <= tolerance
        if bool(done.all()):
            return y
        above = residual > 0
        hi = torch.where(above, y, hi)
        lo = torch.where(above, lo, y)
        slope = (w * e_s / (cos2 + e_2s * sin2)).sum(1)
        step = y - residual / slope
        step = torch.where((step > lo) & (step < hi), step, 0.5 * (lo + hi))
        y = torch.where(done, y, step)  # a solved element stays: its bracket may be empty
    for _ in range(digits):
        mid = 0.5 * (lo + hi)
        below = mid + (w * _moved(s, *_halves(mid.unsqueeze(1)))).sum(1) < target
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return 0.5 * (lo + hi)
