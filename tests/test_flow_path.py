"""The path gradient of the reverse KL (``--flow-gradient path``, :mod:`dlhmc.flows.path`): the
score it carries along the flow is ``grad_x log q`` through the inverse flow, the gradient is
the one at frozen weights, its expectation is the reparametrized gradient's, and training with
it runs, resumes bit-identically and is refused for bridges."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
from test_flow_model import links, random_flow
from test_flow_train import FLOW, exit_code

from dlhmc.cli import main
from dlhmc.flows import path


@pytest.mark.parametrize("period", [2, 4])
def test_the_carried_score_is_the_gradient_of_log_q_through_the_inverse(period):
    flow = random_flow((8, 8), period, layers=6)
    z = links(flow)
    x, logdet, score, _ = path.forward(flow, z)
    x_ref, logdet_ref = flow(z)
    assert torch.equal(x, x_ref.detach()) and torch.equal(logdet, logdet_ref.detach())
    x = x.clone().requires_grad_(True)
    _, log_j_inverse = flow.inverse(x)  # log q(x) = log r + log|dz/dx|, r constant
    (expected,) = torch.autograd.grad(log_j_inverse.sum(), x)
    assert expected.abs().max() > 1.0  # the flow is far from the identity: not a void check
    # Up to the rounding of the inverse (scores reach 1e5 where a plaquette nears a pole).
    assert torch.allclose(score, expected, rtol=0, atol=1e-10 * expected.abs().max())


def _grads(flow) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in flow.parameters()])


def reparametrized(flow, z) -> torch.Tensor:
    """The gradient of ``mean(S(f(z)) + log q(f(z)))`` by autograd through the flow."""
    flow.zero_grad(set_to_none=True)
    x, logdet = flow(z)
    (flow.theory.action(x) + flow.prior_log_prob(z) - logdet).mean().backward()
    return _grads(flow)


def path_gradient(flow, z) -> torch.Tensor:
    flow.zero_grad(set_to_none=True)
    path.reverse_kl(flow, z, flow.theory.force)
    return _grads(flow)


def test_the_path_gradient_is_the_gradient_with_log_q_at_frozen_weights():
    """``d/dtheta mean(S(x) + log q_phi(x))`` at ``x = f_theta(z)``, ``phi = theta`` held fixed:
    ``log q_phi`` evaluated by the (bisection) inverse of a frozen copy of the flow."""
    flow = random_flow((8, 8), 4, layers=6)
    z = links(flow, batch=4)
    frozen = copy.deepcopy(flow).requires_grad_(False)
    x, _ = flow(z)
    z_back, log_j_inverse = frozen.inverse(x)
    loss = (flow.theory.action(x) + frozen.prior_log_prob(z_back) + log_j_inverse).mean()
    expected = torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(flow.parameters()))])
    got = path_gradient(flow, z)
    assert torch.allclose(got, expected, rtol=0, atol=1e-9 * expected.abs().max())
    # ... and not the reparametrized gradient: the score term is not zero on one batch.
    assert (reparametrized(flow, z) - got).abs().max() > 1e-3 * got.abs().max()


def test_path_and_reparametrized_gradients_have_the_same_expectation():
    """Their difference, the score term ``d log q_theta(x) / d theta`` at fixed ``x``, has mean
    zero over ``x ~ q``: over 240 batches every component of the mean difference lies within
    5 standard errors of 0 (z-scores of the ~400 weights, deterministic seeds), while the
    gradient itself is more than 10 errors away from zero (the check has power)."""
    flow = random_flow((4, 4), 2, layers=4, hidden=(4,), scale=0.5)
    generator = torch.Generator().manual_seed(5)
    diffs, grads = [], []
    for _ in range(240):
        z = flow.theory.hot_start(8, generator)
        g_path = path_gradient(flow, z)
        diffs.append(reparametrized(flow, z) - g_path)
        grads.append(g_path)

    def z_scores(samples):
        samples = torch.stack(samples)
        error = samples.std(0) / len(samples) ** 0.5
        keep = error > 1e-12  # weights that move nothing (heads of empty parameters) out
        return samples.mean(0)[keep] / error[keep]

    assert z_scores(diffs).abs().max() < 5.0
    assert z_scores(grads).abs().max() > 10.0


PATH = [*FLOW, "--flow-gradient", "path"]


def test_the_path_gradient_draws_what_the_default_draws_and_steps_elsewhere(tmp_path):
    """The same prior draws as the default estimator: the same first loss, other weights after
    the first update (bit-identical resume is tested with both estimators in test_flow_train)."""
    path, default = tmp_path / "path", tmp_path / "default"
    assert main(["train", *PATH, "--steps", "3", "--out", str(path)]) == 0
    assert main(["train", *FLOW, "--steps", "3", "--out", str(default)]) == 0
    a, c = pd.read_csv(path / "metrics.csv"), pd.read_csv(default / "metrics.csv")
    assert c["loss"].iloc[0] == pytest.approx(a["loss"].iloc[0], rel=1e-6)
    assert c["loss"].iloc[1] != a["loss"].iloc[1]


def test_the_path_gradient_is_a_setting_of_the_flow_only(tmp_path, capsys):
    run = tmp_path / "run"
    args = [
        "--group",
        "U1",
        "--lattice",
        "4",
        "4",
        "--beta",
        "1",
        "--steps",
        "3",
        "--flow-gradient",
        "path",
    ]
    assert exit_code(["train", *args, "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "--flow-gradient: a setting of sampler flow, not of sampler l2hmc; leave it at reparam"
    ), err
    assert not run.exists()
