"""The topological translation of the U(1) L2HMC layers (``L2HMCConfig.winding``).

A constant shift of the links by ``winding`` lattice instantons must keep every
exactness property of the layers (invertibility, Jacobian, the target distribution)
and must change the integer charge of a smooth configuration by exactly ``winding``.
"""

from __future__ import annotations

import math

import pytest
import torch
from l2hmc_helpers import randomize, sumlogdet_and_autograd_logdet

from dlhmc.lattice.u1 import U1Theory
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics
from dlhmc.toy.gmm import GaussianMixture

TWO_PI = 2.0 * math.pi


def angle_diff(a, b):
    return torch.remainder(a - b + math.pi, TWO_PI) - math.pi


@pytest.mark.parametrize("lattice", [(4, 4), (3, 5), (6, 4)])
@pytest.mark.parametrize("winding", [1, -2])
def test_winding_field_shifts_every_plaquette_alike(lattice, winding):
    theory = U1Theory(lattice, 1.0)
    dyn = L2HMCDynamics(theory, L2HMCConfig(nlf=1, hidden=(4,), winding=winding))
    volume = lattice[0] * lattice[1]
    gen = torch.Generator().manual_seed(1)
    x = theory.hot_start(2, gen)
    shifted = theory.plaquette_angles(x + dyn.translation)
    expected = theory.plaquette_angles(x) + winding * TWO_PI / volume
    assert angle_diff(shifted, expected).abs().max() < 1e-12


@pytest.mark.parametrize("mask", ["checkerboard", "random"])
@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize("winding", [1, -2])
def test_forward_then_backward_is_identity_with_winding(mask, direction, winding):
    theory = U1Theory((4, 4), 2.0)
    config = L2HMCConfig(nlf=3, hidden=(8, 8), mask=mask, winding=winding)
    dyn = randomize(L2HMCDynamics(theory, config), scale=0.3, seed=0)
    gen = torch.Generator().manual_seed(3)
    x, v = theory.hot_start(3, gen), theory.sample_momentum(3, gen)
    with torch.no_grad():
        x1, v1, logdet, _ = dyn.trajectory(x, v, direction)
        x0, v0, logdet_back, _ = dyn.trajectory(x1, v1, -direction)
    assert angle_diff(x1, x).abs().max() > 1e-2
    assert angle_diff(x0, x).abs().max() < 1e-12
    assert (v0 - v).abs().max() < 1e-12
    assert (logdet + logdet_back).abs().max() < 1e-12


@pytest.mark.parametrize("direction", [1, -1])
def test_sumlogdet_is_log_det_of_autograd_jacobian_with_winding(direction):
    theory = U1Theory((4, 4), 1.0)
    dyn = randomize(L2HMCDynamics(theory, L2HMCConfig(nlf=2, hidden=(8,), winding=1)), 0.3, 5)
    sumlogdet, logabsdet = sumlogdet_and_autograd_logdet(dyn, direction)
    assert abs(sumlogdet) > 1e-2
    assert sumlogdet == pytest.approx(logabsdet, abs=1e-10)


@pytest.mark.parametrize("winding", [1, -1, 2])
def test_smooth_configuration_changes_charge_by_the_winding(winding):
    """Near-zero plaquettes, untrained (near-identity) networks, small steps: the only
    large change of a trajectory is the translation, so ``Q_Z`` moves by ``d * winding``."""
    theory = U1Theory((8, 8), 4.0)
    dyn = L2HMCDynamics(theory, L2HMCConfig(nlf=4, hidden=(8,), eps_init=0.02, winding=winding))
    gen = torch.Generator().manual_seed(7)
    x = 0.05 * torch.randn(theory.momentum_shape(6), generator=gen, dtype=theory.dtype)
    v = theory.sample_momentum(6, gen)
    assert (theory.charge(x) == 0).all()
    with torch.no_grad():
        for direction in (1, -1):
            x1, _, _, _ = dyn.trajectory(x, v, direction)
            assert (theory.charge(x1) == direction * winding).all()
    zero = L2HMCDynamics(theory, L2HMCConfig(nlf=4, hidden=(8,), eps_init=0.02))
    with torch.no_grad():
        assert (theory.charge(zero.trajectory(x, v, 1)[0]) == 0).all()


def test_winding_is_refused_without_a_topological_translation():
    with pytest.raises(ValueError, match="winding"):
        L2HMCDynamics(GaussianMixture(), L2HMCConfig(nlf=1, hidden=(4,), winding=1))
    with pytest.raises(ValueError, match="winding"):
        L2HMCConfig(winding=0.5)
    config = L2HMCConfig(nlf=2, winding=-1)
    assert L2HMCConfig.from_dict(config.to_dict()) == config


def test_winding_sampler_reproduces_exact_plaquette_and_charge_distribution():
    """With the winding the charge moves every few trajectories, so short chains sample
    the sectors in proportion: plaquette and ``<Q_Z^2>`` both match the
    exact finite-volume values.  The ``s`` heads get a bias, so ``tan(x/2)`` is rescaled
    systematically and the Jacobian enters the accept probability.  Chains are
    independent; errors from the spread of per-chain means (autocorrelation included).
    """
    from dlhmc.lattice.u1_exact import exact_plaquette, sector_distribution

    beta, lattice, chains = 3.0, (6, 6), 256
    volume = lattice[0] * lattice[1]
    theory = U1Theory(lattice, beta)
    config = L2HMCConfig(nlf=3, hidden=(16,), eps_init=0.15, winding=1)
    dyn = L2HMCDynamics(theory, config)
    with torch.no_grad():
        for name, p in dyn.named_parameters():
            if name.endswith("head.s.bias"):
                p.fill_(0.2)
    gen = torch.Generator().manual_seed(14)
    state = dyn.init(theory.hot_start(chains, gen))
    plaq, q2, accept, logdet = [], [], [], []
    with torch.no_grad():
        for step in range(200):
            state, info = dyn.step(state, gen)
            if step >= 100:
                plaq.append(theory.plaquette(state.x))
                q2.append(theory.charge(state.x).square())
                accept.append(info.accept_prob.mean())
                logdet.append(info.extras["sumlogdet"].abs().mean())
    assert 0.1 < torch.stack(accept).mean().item() < 0.99
    assert torch.stack(logdet).mean().item() > 1.0
    charges, probs, _ = sector_distribution(beta, volume, 4)
    exact_q2 = float((charges**2 * probs).sum())
    for series, exact in ((plaq, exact_plaquette(beta, volume)), (q2, exact_q2)):
        chain_means = torch.stack(series).mean(0)
        err = chain_means.std().item() / math.sqrt(chains)
        assert abs(chain_means.mean().item() - exact) < 4 * err
