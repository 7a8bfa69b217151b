"""The Gaussian-mixture toy: its physics, and L2HMC mixing where HMC with a small step cannot."""

from __future__ import annotations

import json

import pytest
import torch

from dlhmc.cli import main
from dlhmc.samplers.hmc import HMC
from dlhmc.toy.gmm import GaussianMixture


def test_force_is_gradient_of_action_and_action_is_minus_log_density():
    theory = GaussianMixture(((-1.0, 0.5), (2.0, -0.3), (0.0, 1.0)), sigma=0.7, beta=0.8)
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(theory.action(x).sum(), x)
    torch.testing.assert_close(theory.force(x), grad)
    # exp(-S / beta) is the unnormalized mixture density
    d2 = (x[:, None] - theory.centers[None]).square().sum(-1)
    density = torch.exp(-0.5 * d2 / 0.7**2).sum(1)
    torch.testing.assert_close(torch.exp(-theory.action(x) / 0.8), density)


def test_hmc_samples_one_wide_mode_correctly():
    """With a single mode the toy is a Gaussian: HMC must give mean and variance sigma^2."""
    theory = GaussianMixture(((0.5, -1.0),), sigma=0.6)
    gen = torch.Generator().manual_seed(1)
    kernel = HMC(theory, 5, 0.3)
    state = kernel.init(theory.hot_start(256, gen))
    xs = []
    for step in range(120):
        state, _ = kernel.step(state, gen)
        if step >= 20:
            xs.append(state.x)
    xs = torch.stack(xs)
    chain_means = xs.mean(0)
    err = chain_means.std(0) / 256**0.5
    assert ((chain_means.mean(0) - theory.centers[0]).abs() < 4 * err).all()
    var = xs.var(dim=(0, 1))
    assert ((var - 0.36).abs() < 0.03).all()


def _run(tmp_path, *extra):
    out = tmp_path / "gmm"
    assert main(["toy-gmm", "--out", str(out), *extra]) == 0
    assert (out / "gmm_samples.png").stat().st_size > 1000
    assert not list(out.glob("*.tmp-*"))
    return json.loads((out / "mode_fractions.json").read_text())


def test_toy_gmm_l2hmc_visits_both_modes_where_small_step_hmc_does_not(tmp_path):
    """A short training run (fast version of the slow test below)."""
    summary = _run(tmp_path, "--steps", "150", "--batch", "64", "--chains", "32",
                   "--trajectories", "100", "--seed", "0")
    l2hmc = summary["samplers"]["L2HMC"]
    hmc = summary["samplers"]["HMC eps=0.25"]
    assert min(l2hmc["fractions"]) > 0.25
    assert l2hmc["switch_rate"] > 0.02
    assert hmc["fractions"] == [1.0, 0.0]
    assert hmc["accept_rate"] > 0.9  # HMC is not failing for lack of acceptance


@pytest.mark.slow
def test_toy_gmm_default_run_has_the_exact_mode_fractions(tmp_path):
    summary = _run(tmp_path, "--seed", "2")
    l2hmc = summary["samplers"]["L2HMC"]
    for fraction, err in zip(l2hmc["fractions"], l2hmc["fraction_errors"], strict=True):
        assert abs(fraction - 0.5) < 4 * err
    assert l2hmc["switch_rate"] > 0.3
    for name in ("HMC eps=0.25", "HMC eps=0.5"):
        assert summary["samplers"][name]["fractions"] == [1.0, 0.0]


def test_toy_gmm_rejects_bad_options(tmp_path, capsys):
    assert main(["toy-gmm", "--out", str(tmp_path), "--beta-init", "2"]) == 2
    assert "--beta-init" in capsys.readouterr().err


def test_toy_gmm_out_file_is_a_one_line_error_before_training(tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("keep me\n")
    assert main(["toy-gmm", "--out", str(out), "--steps", "1", "--trajectories", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err
    assert out.read_text() == "keep me\n"
