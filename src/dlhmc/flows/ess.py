"""The effective sample size of importance weights, one definition for every flow and bridge.

A flow trained by the reverse KL divergence, its independence sampler and a bridge between two
couplings all measure how far their map is from the target by the spread of the weights
``w = p / q``: ``ESS = (sum w)^2 / (N sum w^2)`` is 1 for a perfect map and ``1/N`` when one draw
carries all the weight. The weights are exponentials of differences of actions summed over the
volume, so they are handled as logarithms in float64 (two log-sum-exps: the unknown ``log Z``
cancels and no single weight is exponentiated), and a non-finite log weight (a diverged flow, a
link map that produced no valid links) counts as zero weight rather than poisoning the sum.
"""

from __future__ import annotations

import math

import torch


def effective_sample_size(log_w) -> torch.Tensor:
    """``(sum w)^2 / (N sum w^2)`` in ``(0, 1]`` of the weights whose logarithms are ``log_w``
    (any shape, tensor or array), a float64 scalar tensor on ``log_w``'s device; NaN where no
    log weight is finite."""
    log_w = torch.as_tensor(log_w).to(torch.float64).flatten()
    finite = torch.isfinite(log_w)
    if not bool(finite.any()):
        return torch.tensor(math.nan, dtype=torch.float64, device=log_w.device)
    kept = torch.where(finite, log_w, torch.full_like(log_w, -math.inf))
    return torch.exp(2 * torch.logsumexp(kept, 0) - torch.logsumexp(2 * kept, 0)) / len(log_w)
