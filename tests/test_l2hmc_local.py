"""The ``local`` L2HMC family on U(1): gauge covariance, exactness, the HMC limit, any volume.

Every property must hold for any weights, so the networks are randomized (float64).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from l2hmc_helpers import randomize, sumlogdet_and_autograd_logdet

from dlhmc import checkpoint as ckpt
from dlhmc.analysis.autocorr import gamma_method
from dlhmc.lattice.u1 import U1Theory
from dlhmc.lattice.u1_exact import exact_plaquette
from dlhmc.nets.local import LocalNet
from dlhmc.samplers.integrators import integrate
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics
from dlhmc.toy.gmm import GaussianMixture

TWO_PI = 2.0 * math.pi


def local_config(**kw) -> L2HMCConfig:
    return L2HMCConfig(network="local", **{"nlf": 3, "hidden": (6, 5), **kw})


def angle_diff(a, b):
    return torch.remainder(a - b + math.pi, TWO_PI) - math.pi


def randomize_module(module, scale=0.3, seed=15):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def gauge_transform(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x_mu(n) + a(n) - a(n + mu)`` for links ``[B, 2, Nt, Nx]`` and ``a`` ``[B, Nt, Nx]``."""
    return torch.stack((x[:, 0] + a - a.roll(-1, 1), x[:, 1] + a - a.roll(-1, 2)), dim=1)


def random_state(theory, batch, seed):
    gen = torch.Generator().manual_seed(seed)
    x, v = theory.hot_start(batch, gen), theory.sample_momentum(batch, gen)
    a = TWO_PI * torch.rand((batch, *theory.lattice), generator=gen, dtype=theory.dtype)
    return x, v, a


PERIODS = [2, 4]
LATTICES = [((4, 4), 4), ((6, 4), 4), ((3, 6), 4), ((4, 4), 2), ((6, 4), 2)]


@pytest.mark.parametrize(("lattice", "period"), LATTICES)
@pytest.mark.parametrize("winding", [0, 1])
@pytest.mark.parametrize("inverse", [False, True])
def test_layers_are_gauge_covariant(lattice, period, winding, inverse):
    """``layer(g x) = g layer(x)`` for every layer, forward and backward; ``v``, the force,
    the loop features and ``log|J|`` are unchanged by ``g``."""
    theory = U1Theory(lattice, 2.0)
    config = local_config(winding=winding, local_period=period)
    dyn = randomize(L2HMCDynamics(theory, config), scale=0.3, seed=1)
    x, v, a = random_state(theory, 3, seed=2)
    gx = gauge_transform(x, a)
    assert angle_diff(gx, x).abs().max() > 1.0  # g is not the identity on links
    with torch.no_grad():
        for k in range(dyn.config.nlf):
            out = dyn.layer(theory, k, x, v, theory.force(x), dyn.layers.features(x), inverse)
            out_g = dyn.layer(theory, k, gx, v, theory.force(gx), dyn.layers.features(gx), inverse)
            assert angle_diff(out[0], x).abs().max() > 1e-2  # the layer moves the links
            assert angle_diff(out_g[0], gauge_transform(out[0], a)).abs().max() < 1e-12
            for mine, theirs in zip(out[1:], out_g[1:], strict=True):
                assert (mine - theirs).abs().max() < 1e-12


@pytest.mark.parametrize("period", PERIODS)
def test_network_outputs_are_gauge_invariant(period):
    theory = U1Theory((4, 6), 1.5)
    dyn = randomize(L2HMCDynamics(theory, local_config(local_period=period)), scale=0.3, seed=3)
    local = dyn.layers
    x, v, a = random_state(theory, 2, seed=4)
    gx = gauge_transform(x, a)
    with torch.no_grad():
        for k in range(dyn.config.nlf):
            for j in range(len(local.subs)):
                outs = local.xnets[k](local.x_inputs(j, x, v)[1])
                outs_g = local.xnets[k](local.x_inputs(j, gx, v)[1])
                assert outs[1].abs().max() > 1e-2  # t, a non-trivial output
                assert all((o - og).abs().max() < 1e-12 for o, og in zip(outs, outs_g, strict=True))
            maps = torch.cat((local.features(x), theory.force(x)), dim=1)
            maps_g = torch.cat((local.features(gx), theory.force(gx)), dim=1)
            outs, outs_g = local.vnets[k](maps), local.vnets[k](maps_g)
            assert outs[1].abs().max() > 1e-2
            assert all((o - og).abs().max() < 1e-12 for o, og in zip(outs, outs_g, strict=True))


@pytest.mark.parametrize("period", PERIODS)
def test_each_link_moves_once_per_layer_and_only_frozen_loops_are_read(period):
    """The masks partition the links; every loop a link network reads is made of frozen
    links, checked by moving the moving links at random and comparing the inputs."""
    theory = U1Theory((6, 4), 1.0)
    local = L2HMCDynamics(theory, local_config(local_period=period)).layers
    assert len(local.subs) == 2 * period
    assert (local.moving.sum(0) == 1).all()
    x, v, a = random_state(theory, 2, seed=5)
    for j in range(len(local.subs)):
        kick = torch.where(local.moving[j], a.unsqueeze(1), 0.0)
        assert (local.x_inputs(j, x + kick, v)[1] - local.x_inputs(j, x, v)[1]).abs().max() < 1e-12


@pytest.mark.parametrize(("lattice", "period"), LATTICES)
@pytest.mark.parametrize("winding", [0, -1])
@pytest.mark.parametrize("direction", [1, -1])
def test_forward_then_backward_is_identity(lattice, period, winding, direction):
    theory = U1Theory(lattice, 2.0)
    config = local_config(winding=winding, local_period=period)
    dyn = randomize(L2HMCDynamics(theory, config), scale=0.3, seed=6)
    x, v, _ = random_state(theory, 3, seed=7)
    with torch.no_grad():
        x1, v1, logdet, _ = dyn.trajectory(x, v, direction)
        x0, v0, logdet_back, _ = dyn.trajectory(x1, v1, -direction)
    assert angle_diff(x1, x).abs().max() > 1e-2
    assert logdet.abs().min() > 1e-2
    assert angle_diff(x0, x).abs().max() < 1e-12
    assert (v0 - v).abs().max() < 1e-12
    assert (logdet + logdet_back).abs().max() < 1e-12


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("winding", [0, 1])
@pytest.mark.parametrize("direction", [1, -1])
def test_sumlogdet_is_log_det_of_autograd_jacobian(period, winding, direction):
    """The whole trajectory ``(x, v) -> (x', v')`` on 4x4; the angle wrap has derivative 1."""
    theory = U1Theory((4, 4), 1.0)
    config = local_config(nlf=2, hidden=(6,), winding=winding, local_period=period)
    dyn = randomize(L2HMCDynamics(theory, config), scale=0.3, seed=8)
    sumlogdet, logabsdet = sumlogdet_and_autograd_logdet(dyn, direction)
    assert abs(sumlogdet) > 1e-2
    assert sumlogdet == pytest.approx(logabsdet, abs=1e-10)


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("nlf", [1, 3])
def test_zero_networks_are_hmc_leapfrog(period, nlf):
    theory = U1Theory((4, 6), 2.0)
    eps = 0.13
    dyn = L2HMCDynamics(theory, local_config(nlf=nlf, local_period=period))
    with torch.no_grad():
        for name, p in dyn.named_parameters():
            p.fill_(math.log(eps) if name.startswith("log_eps") else 0.0)
    x, v, _ = random_state(theory, 4, seed=9)
    with torch.no_grad():
        x1, v1, logdet, _ = dyn.trajectory(x, v, 1)
    x_hmc, v_hmc, _ = integrate(theory, x, v, theory.force(x), nlf, eps)
    assert angle_diff(x1, x_hmc).abs().max() < 1e-12
    assert (v1 - v_hmc).abs().max() < 1e-12
    assert logdet.abs().max() < 1e-12


def test_untrained_model_is_close_to_leapfrog():
    """The heads start near zero, so a fresh model is a leapfrog integrator up to small terms."""
    theory = U1Theory((4, 4), 2.0)
    dyn = L2HMCDynamics(theory, local_config(nlf=2, eps_init=0.1))
    x, v, _ = random_state(theory, 4, seed=10)
    with torch.no_grad():
        x1, v1, logdet, _ = dyn.trajectory(x, v, 1)
    x_hmc, v_hmc, _ = integrate(theory, x, v, theory.force(x), 2, 0.1)
    assert angle_diff(x1, x_hmc).abs().max() < 1e-2
    assert (v1 - v_hmc).abs().max() < 1e-2


@pytest.mark.parametrize("lattice", [(4, 4), (6, 4), (3, 5), (2, 3)])
def test_networks_are_translation_equivariant_on_the_torus(lattice):
    """Shifting the input maps by a lattice translation shifts the outputs alike (periodic
    padding); values and input gradients match ``nn.Conv2d`` with circular padding."""
    net = LocalNet(5, (4, 3), "swish").double()
    randomize_module(net)
    gen = torch.Generator().manual_seed(16)
    maps = torch.randn((2, 5, *lattice), generator=gen, dtype=torch.float64)
    outs = net(maps)
    shifted = net(maps.roll((1, 2), (2, 3)))
    for o, so in zip(outs, shifted, strict=True):
        assert (o.roll((1, 2), (2, 3)) - so).abs().max() < 1e-12
    conv = net.body[0]
    ref = torch.nn.Conv2d(5, 4, 3, padding=1, padding_mode="circular").double()
    ref.load_state_dict(conv.state_dict())
    maps.requires_grad_()
    out, out_ref = conv(maps), ref(maps)
    assert (out - out_ref).abs().max() < 1e-12
    weights = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    grad = torch.autograd.grad((out * weights).sum(), maps)[0]
    grad_ref = torch.autograd.grad((out_ref * weights).sum(), maps)[0]
    assert (grad - grad_ref).abs().max() < 1e-12


def test_parameter_count_and_weights_do_not_depend_on_the_volume():
    config = local_config(nlf=2, hidden=(8, 8))
    models = {lat: L2HMCDynamics(U1Theory(lat, 2.0), config)
              for lat in [(4, 4), (8, 8), (6, 4), (16, 16)]}
    counts = {lat: sum(p.numel() for p in m.parameters()) for lat, m in models.items()}
    assert len(set(counts.values())) == 1, counts
    state = models[(4, 4)].state_dict()
    for model in models.values():
        model.load_state_dict(state)  # strict: the same keys and shapes everywhere
    dense = [sum(p.numel() for p in L2HMCDynamics(U1Theory(lat, 2.0),
                                                  L2HMCConfig(nlf=2, hidden=(8, 8))).parameters())
             for lat in [(4, 4), (8, 8)]]
    assert dense[0] != dense[1]  # the dense family does grow with the volume


def test_layer_records_and_beta_replacement():
    """Per-layer diagnostics work unchanged; the local layers take the theory from the
    dynamics, so ``theory.with_beta`` moves them along a beta ladder."""
    theory = U1Theory((4, 4), 2.0)
    dyn = randomize(L2HMCDynamics(theory, local_config()), scale=0.1, seed=17)
    dyn.theory = theory.with_beta(3.0)
    fresh, old_beta = (L2HMCDynamics(U1Theory((4, 4), b), local_config()) for b in (3.0, 2.0))
    fresh.load_state_dict(dyn.state_dict())
    old_beta.load_state_dict(dyn.state_dict())
    x, v, _ = random_state(theory, 6, seed=18)
    with torch.no_grad():
        moved = dyn.trajectory(x, v, 1)[0]
        assert angle_diff(moved, fresh.trajectory(x, v, 1)[0]).abs().max() < 1e-12
        assert angle_diff(moved, old_beta.trajectory(x, v, 1)[0]).abs().max() > 1e-6
        prop = dyn.propose(x, torch.Generator().manual_seed(19), record_layers=True)
    layers = prop.layers
    assert all(t.shape == (4, 6) for t in layers.values())
    torch.testing.assert_close(layers["plaq"][-1], theory.plaquette(prop.x))
    torch.testing.assert_close(layers["energy"][-1] - layers["energy"][0], prop.dH - prop.sumlogdet)


def test_smooth_configuration_changes_charge_by_the_winding():
    theory = U1Theory((8, 8), 4.0)
    dyn = L2HMCDynamics(theory, local_config(nlf=4, eps_init=0.02, winding=1))
    gen = torch.Generator().manual_seed(11)
    x = 0.05 * torch.randn(theory.momentum_shape(4), generator=gen, dtype=theory.dtype)
    v = theory.sample_momentum(4, gen)
    assert (theory.charge(x) == 0).all()
    with torch.no_grad():
        for direction in (1, -1):
            assert (theory.charge(dyn.trajectory(x, v, direction)[0]) == direction).all()


def test_refusals_and_config_round_trip():
    with pytest.raises(ValueError, match="4k \\+ 1"):
        L2HMCDynamics(U1Theory((5, 4), 1.0), local_config())
    with pytest.raises(ValueError, match="even extents"):
        L2HMCDynamics(U1Theory((4, 3), 1.0), local_config(local_period=2))
    with pytest.raises(ValueError, match="local_period"):
        local_config(local_period=3)
    with pytest.raises(ValueError, match="local_period"):
        L2HMCConfig(local_period=2)
    with pytest.raises(ValueError, match="not yet implemented for GMM"):
        L2HMCDynamics(GaussianMixture(), local_config())
    with pytest.raises(ValueError, match="network"):
        local_config(mask="random")
    with pytest.raises(ValueError, match="network"):
        local_config(conv_channels=(4,))
    with pytest.raises(ValueError, match="network"):
        L2HMCConfig(network="global")
    config = local_config(winding=1, local_period=2)
    assert L2HMCConfig.from_dict(config.to_dict()) == config
    old = L2HMCConfig(nlf=2).to_dict()
    del old["network"], old["local_period"]
    with pytest.raises(ValueError, match="local_period: missing"):
        L2HMCConfig.from_dict(old)  # the current format states every field
    # A format-1 checkpoint written before network existed is a dense one (the migration).
    migrated = ckpt.migrate({"format": 1, "l2hmc": old, "model": {}})
    assert L2HMCConfig.from_dict(migrated["l2hmc"]).network == "dense"


@pytest.mark.parametrize("period", PERIODS)
def test_random_model_reproduces_exact_plaquette_on_every_volume(period):
    """One set of random (non-zero) weights, made on 4x4, sampled on 4x4, 6x4 and 8x8.

    The ``s`` heads get a bias, so every active plaquette is pushed systematically away
    from ``0`` and the Jacobian matters: leaving ``sumlogdet`` out of the accept probability
    shifts the plaquette by 15 to 25 standard errors on these volumes (measured when the
    test was written).  Error of the mean from the Gamma method over the independent
    chains (replicas), burn-in dropped.
    """
    beta, nlf = 1.5, 2
    config = local_config(nlf=nlf, hidden=(8,), eps_init=0.25, local_period=period)
    base = randomize(L2HMCDynamics(U1Theory((4, 4), beta), config), scale=0.1, seed=12)
    with torch.no_grad():
        for k in range(nlf):
            base.layers.xnets[k].head.lambda_s.fill_(1.0)
            base.layers.xnets[k].head.conv.bias[:2].fill_(0.4)  # the s channels
    gen = torch.Generator().manual_seed(13)
    for lattice, chains in [((4, 4), 128), ((6, 4), 96), ((8, 8), 48)]:
        theory = U1Theory(lattice, beta)
        dyn = L2HMCDynamics(theory, config)
        dyn.load_state_dict(base.state_dict())
        state = dyn.init(theory.hot_start(chains, gen))
        plaq, accept, logdet = [], [], []
        with torch.no_grad():
            for step in range(80):
                state, info = dyn.step(state, gen)
                if step >= 20:
                    plaq.append(theory.plaquette(state.x))
                    accept.append(info.accept_prob.mean().item())
                    logdet.append(info.extras["sumlogdet"].abs().mean().item())
        assert 0.05 < np.mean(accept) < 0.99, lattice
        assert np.mean(logdet) > 1.0, lattice
        result = gamma_method(torch.stack(plaq).T.numpy())
        exact = exact_plaquette(beta, lattice[0] * lattice[1])
        assert abs(result.mean - exact) < 4 * result.mean_err, (lattice, result.mean, exact)
