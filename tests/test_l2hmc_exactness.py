"""Exactness of the L2HMC leapfrog layers: invertibility, Jacobians, the HMC limit, the target.

These properties must hold for any network weights, so the networks are randomized
(trained weights would hide nothing and prove nothing more).
"""

from __future__ import annotations

import math

import pytest
import torch
from l2hmc_helpers import randomize, sumlogdet_and_autograd_logdet

from dlhmc.families.dense import build_masks
from dlhmc.lattice.u1 import U1Theory
from dlhmc.samplers.integrators import integrate
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics, momentum_update
from dlhmc.toy.gmm import GaussianMixture


def su3_theory(lattice=(2, 2, 2, 2), beta=5.5):
    su3 = pytest.importorskip("dlhmc.lattice.su3")
    return su3.SU3Theory(lattice, beta)


def zero_networks(dyn: L2HMCDynamics, eps: float) -> L2HMCDynamics:
    with torch.no_grad():
        for name, p in dyn.named_parameters():
            p.fill_(math.log(eps) if name.startswith("log_eps") else 0.0)
    return dyn


def angle_diff(a, b):
    return torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi


def link_diff(theory, a, b):
    if isinstance(theory, U1Theory):
        return angle_diff(a, b).abs().max().item()
    return (a - b).abs().max().item()


def theories():
    return {
        "u1": lambda: U1Theory((4, 4), 2.0),
        "gmm": lambda: GaussianMixture(),
        "su3": su3_theory,
    }


@pytest.mark.parametrize("name", ["u1", "gmm", "su3"])
@pytest.mark.parametrize("mask", ["checkerboard", "random"])
@pytest.mark.parametrize("direction", [1, -1])
def test_forward_then_backward_is_identity(name, mask, direction):
    theory = theories()[name]()
    dyn = randomize(L2HMCDynamics(theory, L2HMCConfig(nlf=3, hidden=(8, 8), mask=mask)))
    gen = torch.Generator().manual_seed(3)
    x = theory.hot_start(3, gen)
    v = theory.sample_momentum(3, gen)
    with torch.no_grad():
        x1, v1, logdet, _ = dyn.trajectory(x, v, direction)
        x0, v0, logdet_back, _ = dyn.trajectory(x1, v1, -direction)
    assert link_diff(theory, x1, x) > 1e-2  # the map does something
    assert link_diff(theory, x0, x) < 1e-12
    assert (v0 - v).abs().max().item() < 1e-12
    assert (logdet + logdet_back).abs().max().item() < 1e-12


def test_conv_front_end_is_invertible():
    theory = U1Theory((4, 6), 1.5)
    config = L2HMCConfig(nlf=2, hidden=(8,), conv_channels=(4, 3), activation="tanh")
    dyn = randomize(L2HMCDynamics(theory, config))
    gen = torch.Generator().manual_seed(4)
    x, v = theory.hot_start(2, gen), theory.sample_momentum(2, gen)
    with torch.no_grad():
        x1, v1, logdet, _ = dyn.trajectory(x, v, 1)
        x0, v0, logdet_back, _ = dyn.trajectory(x1, v1, -1)
    assert angle_diff(x0, x).abs().max() < 1e-12
    assert (v0 - v).abs().max() < 1e-12
    assert (logdet + logdet_back).abs().max() < 1e-12


@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize("mask", ["checkerboard", "random"])
def test_sumlogdet_is_log_det_of_autograd_jacobian_u1(direction, mask):
    """The whole trajectory ``(x, v) -> (x', v')`` on 4x4 U(1); the angle wrap has derivative 1."""
    theory = U1Theory((4, 4), 1.0)
    dyn = randomize(L2HMCDynamics(theory, L2HMCConfig(nlf=2, hidden=(8,), mask=mask)), seed=5)
    sumlogdet, logabsdet = sumlogdet_and_autograd_logdet(dyn, direction)
    assert abs(sumlogdet) > 1e-2
    assert sumlogdet == pytest.approx(logabsdet, abs=1e-10)


def test_su3_v_update_logdet_is_log_det_of_autograd_jacobian():
    """Jacobian of one SU(3) momentum update w.r.t. the 8 components on every link of 2^4."""
    theory = su3_theory()
    dyn = randomize(L2HMCDynamics(theory, L2HMCConfig(nlf=1, hidden=(8,))), seed=7)
    gen = torch.Generator().manual_seed(8)
    x, v = theory.hot_start(1, gen), theory.sample_momentum(1, gen)
    force = theory.force(x)
    features = dyn.layers.features(x)
    for inverse in (False, True):
        def update(w, inverse=inverse):
            w = w.view(v.shape)
            return momentum_update(w, force, dyn.layers.v_terms(0, force, features), dyn.eps_v[0],
                                   inverse)[0].flatten()

        jac = torch.autograd.functional.jacobian(update, v.flatten())
        _, logabsdet = torch.linalg.slogdet(jac)
        logdet = momentum_update(v, force, dyn.layers.v_terms(0, force, features), dyn.eps_v[0],
                                 inverse)[1]
        assert abs(logdet.item()) > 1e-2
        assert logdet.item() == pytest.approx(logabsdet.item(), abs=1e-10)


@pytest.mark.parametrize("name", ["u1", "gmm", "su3"])
def test_zero_networks_reduce_to_one_hmc_leapfrog_step(name):
    theory = theories()[name]()
    eps = 0.13
    dyn = zero_networks(L2HMCDynamics(theory, L2HMCConfig(nlf=1, hidden=(8,))), eps)
    gen = torch.Generator().manual_seed(9)
    x, v = theory.hot_start(4, gen), theory.sample_momentum(4, gen)
    with torch.no_grad():
        x1, v1, logdet, _ = dyn.trajectory(x, v, 1)
    x_hmc, v_hmc, _ = integrate(theory, x, v, theory.force(x), 1, eps)
    assert link_diff(theory, x1, x_hmc) < 1e-12
    assert (v1 - v_hmc).abs().max().item() < 1e-12
    assert logdet.abs().max().item() < 1e-12


def test_propose_is_differentiable_in_networks_and_step_sizes():
    theory = U1Theory((4, 4), 2.0)
    dyn = randomize(L2HMCDynamics(theory, L2HMCConfig(nlf=2, hidden=(8,))), scale=0.1)
    gen = torch.Generator().manual_seed(10)
    x = theory.hot_start(8, gen)
    prop = dyn.propose(x, gen)
    dq = theory.charge_real(prop.x) - theory.charge_real(x)
    (-(prop.accept_prob * dq**2).mean()).backward()
    assert set(prop.direction.tolist()) == {-1, 1}
    for name, p in dyn.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert dyn.log_eps_x.grad.abs().min() > 0 and dyn.log_eps_v.grad.abs().min() > 0


@pytest.mark.parametrize("name", ["u1", "su3"])
def test_layer_records_start_at_input_and_end_at_proposal(name):
    theory = theories()[name]()
    dyn = randomize(L2HMCDynamics(theory, L2HMCConfig(nlf=3, hidden=(8,))), scale=0.1)
    gen = torch.Generator().manual_seed(11)
    x = theory.hot_start(6, gen)
    with torch.no_grad():
        prop = dyn.propose(x, gen, record_layers=True)
    layers = prop.layers
    assert set(layers) == {"plaq", "energy", "charge_real"}
    assert all(t.shape == (4, 6) for t in layers.values())
    torch.testing.assert_close(layers["plaq"][0], theory.plaquette(x))
    torch.testing.assert_close(layers["plaq"][-1], theory.plaquette(prop.x))
    torch.testing.assert_close(layers["charge_real"][-1], theory.charge_real(prop.x))
    # energy(N_LF) - energy(0) = dH - sumlogdet
    torch.testing.assert_close(layers["energy"][-1] - layers["energy"][0], prop.dH - prop.sumlogdet)


def test_masks_split_the_units_in_halves_that_alternate():
    parity = torch.tensor([0, 1, 1, 0, 0, 1, 1, 0])
    board = build_masks(8, parity, L2HMCConfig(nlf=3, mask="checkerboard"))
    assert (board[0] == (parity == 0)).all() and (board[1] == ~board[0]).all()
    assert (board[2] == board[0]).all()
    rand = build_masks(8, parity, L2HMCConfig(nlf=3, mask="random", mask_seed=5))
    assert (rand.sum(1) == 4).all()
    assert (rand == build_masks(8, parity, L2HMCConfig(nlf=3, mask="random", mask_seed=5))).all()


def test_su3_links_stay_unitary():
    theory = su3_theory()
    dyn = randomize(L2HMCDynamics(theory, L2HMCConfig(nlf=2, hidden=(8,))), scale=0.2)
    gen = torch.Generator().manual_seed(15)
    x = theory.hot_start(2, gen)
    prop = dyn.propose(x, gen)
    eye = torch.eye(3, dtype=x.dtype)
    assert (prop.x.mH @ prop.x - eye).abs().max() < 1e-12
    torch.testing.assert_close(torch.linalg.det(prop.x), torch.ones_like(torch.linalg.det(x)))


def test_config_round_trip_and_beta_replacement():
    config = L2HMCConfig(nlf=2, hidden=(4, 5), activation="relu", mask="random", mask_seed=3)
    assert L2HMCConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="activation"):
        L2HMCConfig(activation="gelu")
    theory = U1Theory((4, 4), 1.0)
    dyn = L2HMCDynamics(theory, config)
    dyn.theory = theory.with_beta(3.0)
    gen = torch.Generator().manual_seed(12)
    state, info = dyn.step(dyn.init(theory.hot_start(4, gen)), gen)
    assert state.x.shape == (4, 2, 4, 4) and info.accept_prob.shape == (4,)


def test_random_network_sampler_reproduces_exact_u1_plaquette():
    """Exactness does not depend on training: an untrained, randomized sampler hits the
    exact finite-volume plaquette.  The ``s`` heads get a large bias, so every update
    rescales ``tan(x/2)`` systematically and the Jacobian matters: leaving ``sumlogdet``
    out of the accept probability shifts this plaquette by about 6 standard errors.
    Chains are independent, so the error of the mean from the spread of per-chain
    means includes the autocorrelation.
    """
    from dlhmc.lattice.u1_exact import exact_plaquette

    beta, lattice, chains = 2.0, (4, 4), 512
    theory = U1Theory(lattice, beta)
    dyn = randomize(L2HMCDynamics(theory, L2HMCConfig(nlf=3, hidden=(16,))), scale=0.05, seed=13)
    with torch.no_grad():
        for name, p in dyn.named_parameters():
            if name.endswith("head.s.bias"):
                p.fill_(3.0)
    gen = torch.Generator().manual_seed(14)
    state = dyn.init(theory.hot_start(chains, gen))
    plaq, accept, logdet = [], [], []
    for step in range(130):
        state, info = dyn.step(state, gen)
        if step >= 30:
            plaq.append(theory.plaquette(state.x))
            accept.append(info.accept_prob.mean())
            logdet.append(info.extras["sumlogdet"].abs().mean())
    chain_means = torch.stack(plaq).mean(0)
    mean = chain_means.mean().item()
    err = chain_means.std().item() / math.sqrt(chains)
    assert 0.2 < torch.stack(accept).mean().item() < 0.99  # the networks do change the dynamics
    assert torch.stack(logdet).mean().item() > 0.1
    assert abs(mean - exact_plaquette(beta, lattice[0] * lattice[1])) < 4 * err
