"""The depthwise-separable 3x3 convolutions of the U(1) ``local`` networks (``local_conv:
separable``, :class:`dlhmc.nets.local.TorusSeparableConv2d`) keep every property the full
ones have: the fast paths compute the
plain network, the networks are translation equivariant and gauge invariant, the layers are
gauge covariant, exactly reversible, and ``sum log|J|`` is the autograd log-determinant.
"""

from __future__ import annotations

import math

import pytest
import torch
from l2hmc_helpers import randomize, sumlogdet_and_autograd_logdet
from test_l2hmc_local import angle_diff, gauge_transform, local_config, random_state
from test_local_sites import plain, reference_x_update

from dlhmc.lattice.u1 import U1Theory
from dlhmc.nets.local import LocalNet, TorusSeparableConv2d
from dlhmc.samplers.l2hmc import L2HMCDynamics

TWO_PI = 2.0 * math.pi


def separable(**kw):
    return local_config(local_conv="separable", **kw)


def net(in_channels, hidden, with_s=True, seed=3):
    module = LocalNet(in_channels, hidden, "swish", with_s=with_s, conv="separable").double()
    return randomize(module, scale=0.3, seed=seed)


def test_a_separable_convolution_is_a_periodic_depthwise_then_pointwise_convolution():
    conv = TorusSeparableConv2d(5, 4).double()
    randomize(conv, scale=0.3, seed=1)
    maps = torch.randn(2, 5, 4, 6, generator=torch.Generator().manual_seed(2),
                       dtype=torch.float64)
    depthwise = torch.nn.Conv2d(5, 5, 3, padding=1, padding_mode="circular", groups=5,
                                bias=False).double()
    depthwise.load_state_dict(conv.depthwise.state_dict())
    ref = conv.pointwise(depthwise(maps))
    assert (conv(maps) - ref).abs().max() < 1e-12
    assert sum(p.numel() for p in conv.parameters()) == 5 * 9 + 5 * 4 + 4


@pytest.mark.parametrize("hidden", [(5,), (6, 5), (4, 6, 5)])
@pytest.mark.parametrize("with_s", [True, False])
def test_forward_is_the_plain_network(hidden, with_s):
    module = net(7, hidden, with_s)
    maps = torch.randn(3, 7, 6, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        for mine, ref in zip(module(maps), plain(module, maps), strict=True):
            assert (mine is None) if ref is None else (mine - ref).abs().max() < 1e-12


@pytest.mark.parametrize("hidden", [(5,), (6, 5)])
@pytest.mark.parametrize(("dim", "offset", "step"), [(-1, 1, 2), (-2, 0, 2), (-2, 2, 4)])
def test_at_sites_is_the_plain_network_at_those_sites(hidden, dim, offset, step):
    module = net(9, hidden)
    channels = (1, 4, 6, 7, 8)
    maps = torch.randn(3, len(channels), 8, 6, generator=torch.Generator().manual_seed(2),
                       dtype=torch.float64)
    full = torch.zeros(3, 9, 8, 6, dtype=torch.float64)
    full[:, list(channels)] = maps
    with torch.no_grad():
        mine = module.at_sites(maps, channels, (dim, offset, step), mu=1)
        ref = plain(module, full)
    for m, r in zip(mine, ref, strict=True):
        r = r[:, 1]
        r = r[..., offset::step, :] if dim == -2 else r[..., offset::step]
        assert m.shape == r.shape and (m - r).abs().max() < 1e-12


def test_fast_paths_are_differentiable():
    module = net(5, (4, 3))
    maps = torch.randn(2, 5, 4, 6, generator=torch.Generator().manual_seed(5),
                       dtype=torch.float64)
    fast = sum(o.square().sum() for o in module.at_sites(maps, tuple(range(5)), (-1, 1, 2), 0))
    ref = sum(o[:, 0, :, 1::2].square().sum() for o in plain(module, maps))
    params = list(module.parameters())
    grads = torch.autograd.grad(fast, params, allow_unused=True)
    for g, r in zip(grads, torch.autograd.grad(ref, params, allow_unused=True), strict=True):
        assert (g is None or g.abs().max() == 0) if r is None else (g - r).abs().max() < 1e-12


@pytest.mark.parametrize("lattice", [(4, 4), (3, 5)])
def test_networks_are_translation_equivariant_on_the_torus(lattice):
    module = net(5, (4, 3))
    maps = torch.randn((2, 5, *lattice), generator=torch.Generator().manual_seed(16),
                       dtype=torch.float64)
    with torch.no_grad():
        outs, shifted = module(maps), module(maps.roll((1, 2), (2, 3)))
    for o, so in zip(outs, shifted, strict=True):
        assert (o.roll((1, 2), (2, 3)) - so).abs().max() < 1e-12


@pytest.mark.parametrize(("lattice", "period"), [((4, 4), 2), ((6, 4), 4)])
@pytest.mark.parametrize("inverse", [False, True])
def test_layers_are_gauge_covariant(lattice, period, inverse):
    theory = U1Theory(lattice, 2.0)
    dyn = randomize(L2HMCDynamics(theory, separable(local_period=period, winding=1)),
                    scale=0.3, seed=1)
    assert isinstance(dyn.layers.xnets[0].body[0], TorusSeparableConv2d)
    x, v, a = random_state(theory, 3, seed=2)
    gx = gauge_transform(x, a)
    with torch.no_grad():
        for k in range(dyn.config.nlf):
            out = dyn.layer(theory, k, x, v, theory.force(x), dyn.layers.features(x), inverse)
            out_g = dyn.layer(theory, k, gx, v, theory.force(gx), dyn.layers.features(gx),
                              inverse)
            assert angle_diff(out[0], x).abs().max() > 1e-2
            assert angle_diff(out_g[0], gauge_transform(out[0], a)).abs().max() < 1e-12
            for mine, theirs in zip(out[1:], out_g[1:], strict=True):
                assert (mine - theirs).abs().max() < 1e-12


@pytest.mark.parametrize(("lattice", "period"), [((4, 4), 2), ((6, 4), 2), ((3, 6), 4)])
@pytest.mark.parametrize("inverse", [False, True])
def test_x_update_is_the_plain_sub_update(lattice, period, inverse):
    theory = U1Theory(lattice, 2.0)
    dyn = L2HMCDynamics(theory, separable(nlf=2, local_period=period, winding=1))
    randomize(dyn.layers)
    gen = torch.Generator().manual_seed(4)
    x, v = theory.hot_start(3, gen), theory.sample_momentum(3, gen)
    eps = torch.tensor(0.3, dtype=torch.float64)
    with torch.no_grad():
        for j in range(dyn.layers.n_sub_updates):
            x1, logdet, _ = dyn.layers.x_update(theory, 1, j, x, v, eps, inverse,
                                                dyn.translation, None)
            x_ref, logdet_ref = reference_x_update(dyn.layers, 1, j, x, v, eps, inverse,
                                                   dyn.translation)
            assert angle_diff(x1, x_ref).abs().max() < 1e-12
            assert (logdet - logdet_ref).abs().max() < 1e-12
            x = x1


@pytest.mark.parametrize(("lattice", "period"), [((4, 4), 2), ((6, 4), 2), ((4, 4), 4)])
@pytest.mark.parametrize("direction", [1, -1])
def test_forward_then_backward_is_identity(lattice, period, direction):
    theory = U1Theory(lattice, 2.0)
    dyn = randomize(L2HMCDynamics(theory, separable(local_period=period, winding=-1)),
                    scale=0.5, seed=6)
    x, v, _ = random_state(theory, 3, seed=7)
    with torch.no_grad():
        x1, v1, logdet, _ = dyn.trajectory(x, v, direction)
        x0, v0, logdet_back, _ = dyn.trajectory(x1, v1, -direction)
    assert angle_diff(x1, x).abs().max() > 1e-2 and logdet.abs().max() > 1e-2
    assert angle_diff(x0, x).abs().max() < 1e-12
    assert (v0 - v).abs().max() < 1e-12
    assert (logdet + logdet_back).abs().max() < 1e-12


@pytest.mark.parametrize("period", [2, 4])
@pytest.mark.parametrize("direction", [1, -1])
def test_sumlogdet_is_log_det_of_autograd_jacobian(period, direction):
    theory = U1Theory((4, 4), 1.0)
    config = separable(nlf=2, hidden=(6,), winding=1, local_period=period)
    dyn = randomize(L2HMCDynamics(theory, config), scale=0.5, seed=8)
    sumlogdet, logabsdet = sumlogdet_and_autograd_logdet(dyn, direction)
    assert abs(sumlogdet) > 1e-2
    assert sumlogdet == pytest.approx(logabsdet, abs=1e-10)


def test_separable_networks_have_fewer_weights():
    theory = U1Theory((8, 8), 1.0)
    kw = dict(nlf=8, hidden=(16, 16), local_period=2)
    full = sum(p.numel() for p in L2HMCDynamics(theory, local_config(**kw)).parameters())
    fewer = sum(p.numel() for p in L2HMCDynamics(theory, separable(**kw)).parameters())
    assert fewer < full / 4
