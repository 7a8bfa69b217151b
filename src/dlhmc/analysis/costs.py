"""Cost of one independent sample, in leapfrog steps and in wall-clock seconds.

Two configurations are statistically independent about ``2 tau_int`` trajectories apart, but the
project (like the L2HMC paper, figure 3) quotes ``N_LF * tau_int`` leapfrog steps: the variance of
a mean over N trajectories equals that of ``N / (2 tau_int)`` independent samples, and the common
factor 2 cancels in every comparison. Seconds use the per-chain throughput of the chain file
(``traj_per_second``), so they compare samplers run on the same hardware. A trained sampler also
paid for its training; amortizing ``training_seconds`` over a stated number of independent
samples shows when the training pays off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SampleCost:
    """Costs of one independent sample; lower bounds whenever ``tau_int`` is one."""

    cost_lf: float
    cost_lf_err: float
    seconds_per_indep: float
    seconds_per_indep_err: float
    seconds_per_indep_amortized: float


def sample_cost(
    tau_int: float,
    tau_int_err: float,
    nlf: int,
    traj_per_second: float,
    training_seconds: float = 0.0,
    amortize_samples: int | None = None,
) -> SampleCost:
    """``N_LF * tau_int``, ``tau_int / traj_per_second`` and the amortized seconds.

    ``seconds_per_indep_amortized = seconds_per_indep + training_seconds / amortize_samples``
    (``training_seconds = 0`` for HMC); NaN when no ``amortize_samples`` is given. The wall-clock
    error propagates only the error of tau_int (the throughput is a measured rate with negligible
    error by comparison).
    """
    if not traj_per_second > 0:
        raise ValueError(f"traj_per_second must be > 0, got {traj_per_second}")
    seconds = tau_int / traj_per_second
    if amortize_samples is None:
        amortized = math.nan
    else:
        if amortize_samples <= 0:
            raise ValueError(f"amortize_samples must be > 0, got {amortize_samples}")
        amortized = seconds + training_seconds / amortize_samples
    return SampleCost(
        cost_lf=nlf * tau_int,
        cost_lf_err=nlf * tau_int_err,
        seconds_per_indep=seconds,
        seconds_per_indep_err=tau_int_err / traj_per_second,
        seconds_per_indep_amortized=amortized,
    )


def ratio_with_error(num: float, num_err: float, den: float, den_err: float) -> tuple[float, float]:
    """``num / den`` with independent relative errors added in quadrature (NaN if undefined)."""
    if not (den > 0 and num > 0):
        return math.nan, math.nan
    ratio = num / den
    return ratio, ratio * math.hypot(num_err / num, den_err / den)
