"""Cost of one independent sample, in leapfrog steps and in wall-clock seconds.

Two configurations are statistically independent about ``2 tau_int`` trajectories apart, but the
project (like the L2HMC paper, figure 3) quotes ``N_LF * tau_int`` leapfrog steps: the variance of
a mean over N trajectories equals that of ``N / (2 tau_int)`` independent samples, and the common
factor 2 cancels in every comparison. Seconds are machine seconds per independent sample: the
chain file's throughput (``traj_per_second``, trajectories of the whole batch of chains per
second) times its number of chains is the trajectories per second the run delivers, so samplers
run with different batches on the same hardware compare like with like (per chain alone, a
sampler run with twice the chains would look twice as slow). A trained sampler also
paid for its training: :func:`break_even` says after how many independent samples it has paid
for itself, and amortizing ``training_seconds`` over a stated number of samples shows the cost
per sample at that point. A trajectory of winding HMC also pays for its instanton hits, counted
in leapfrog-step equivalents (``lf_per_traj``, see ``ChainSet.lf_per_traj``).
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
    nlf: float,
    traj_per_second: float,
    training_seconds: float = 0.0,
    amortize_samples: int | None = None,
    chains: int = 1,
) -> SampleCost:
    """``N_LF * tau_int``, ``tau_int / (chains * traj_per_second)`` and the amortized seconds.

    ``nlf`` is the leapfrog-step equivalent of one trajectory (``N_LF``, plus the instanton hits
    of winding HMC at their measured cost).

    ``seconds_per_indep_amortized = seconds_per_indep + training_seconds / amortize_samples``
    (``training_seconds = 0`` for HMC); NaN when no ``amortize_samples`` is given. The wall-clock
    error propagates only the error of tau_int (the throughput is a measured rate with negligible
    error by comparison).
    """
    if not traj_per_second > 0:
        raise ValueError(f"traj_per_second must be > 0, got {traj_per_second}")
    if chains < 1:
        raise ValueError(f"chains must be >= 1, got {chains}")
    rate = traj_per_second * chains
    seconds = tau_int / rate
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
        seconds_per_indep_err=tau_int_err / rate,
        seconds_per_indep_amortized=amortized,
    )


def ratio_with_error(num: float, num_err: float, den: float, den_err: float) -> tuple[float, float]:
    """``num / den`` with independent relative errors added in quadrature (NaN if undefined)."""
    if not (den > 0 and num > 0):
        return math.nan, math.nan
    ratio = num / den
    return ratio, ratio * math.hypot(num_err / num, den_err / den)


@dataclass(frozen=True)
class BreakEven:
    """Independent samples after which training has paid for itself against a baseline.

    ``samples`` is ``inf`` when the learned sampler is not faster per sample (it never pays off);
    ``kind`` is ``value``, ``upper bound`` (the baseline's seconds are a lower bound, so the true
    saving per sample can only be larger), ``lower bound`` (the learned seconds are a lower
    bound), ``never`` or ``undetermined``; NaN when the training time is unknown.
    """

    samples: float
    error: float
    kind: str


def break_even(
    training_seconds: float,
    baseline_seconds: float,
    baseline_err: float,
    baseline_frozen: bool,
    learned_seconds: float,
    learned_err: float,
    learned_frozen: bool,
) -> BreakEven:
    """``training_seconds / (baseline - learned)`` seconds per independent sample.

    The saving per sample must be positive for training ever to pay off. Frozen sides are lower
    bounds on their seconds: a frozen baseline can only widen the saving (the break-even is then
    an upper bound, and a non-positive saving says nothing), a frozen learned sampler can only
    narrow it (a lower bound, and a non-positive saving means never). Both frozen: undetermined.
    """
    if any(math.isnan(v) for v in (training_seconds, baseline_seconds, learned_seconds)):
        return BreakEven(math.nan, math.nan, "")
    if baseline_frozen and learned_frozen:
        return BreakEven(math.nan, math.nan, "undetermined")
    saving = baseline_seconds - learned_seconds
    if not saving > 0:
        if baseline_frozen:
            return BreakEven(math.nan, math.nan, "undetermined")
        return BreakEven(math.inf, math.nan, "never")
    samples = training_seconds / saving
    error = samples * math.hypot(baseline_err, learned_err) / saving
    kind = "upper bound" if baseline_frozen else "lower bound" if learned_frozen else "value"
    return BreakEven(samples, error, kind)
