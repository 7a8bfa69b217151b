"""The one effective-sample-size function of flows, their samplers and the bridges."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlhmc.flows.ess import effective_sample_size


def test_equal_weights_give_one_and_a_dominant_weight_one_over_n():
    assert float(effective_sample_size(torch.full((10,), -3.0))) == pytest.approx(1.0)
    one = torch.tensor([0.0] + [-1000.0] * 9)
    assert float(effective_sample_size(one)) == pytest.approx(0.1)


def test_log_weights_far_beyond_the_float_range_do_not_overflow():
    # w = (1, 3): 16 / (2 * 10), from float32 logs near 1e4 (exp would overflow even in float64)
    huge = torch.tensor([1e4, 1e4 + math.log(3.0)], dtype=torch.float32)
    ess = effective_sample_size(huge)
    assert ess.dtype == torch.float64
    assert float(ess) == pytest.approx(16 / 20, rel=1e-3)
    # arrays too: w = (1, 2): 9 / (2 * 5)
    assert float(effective_sample_size(np.log([1.0, 2.0]) + 700.0)) == pytest.approx(0.9)


def test_non_finite_log_weights_count_as_zero_weight():
    assert float(effective_sample_size(torch.tensor([0.0, float("nan")]))) == pytest.approx(0.5)
    assert float(effective_sample_size(torch.tensor([0.0, -math.inf, math.inf]))) == pytest.approx(
        1 / 3
    )
    assert math.isnan(effective_sample_size(torch.tensor([float("nan")])))
