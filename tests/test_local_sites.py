"""The fast paths of the U(1) ``local`` layers compute what their plain definitions do.

A link sub-update evaluates its network only at the moving links, without the input
channels that are zero, in channels-last layout with the hidden layer padded once
(:meth:`dlhmc.nets.local.LocalNet.at_sites`); the momentum networks pad once too.  Each is
compared, in float64 with random weights, with the plain network (``TorusConv2d`` layers,
the 1x1 head convolution) on the whole lattice.
"""

from __future__ import annotations

import math

import pytest
import torch

from dlhmc.group.u1 import circle_map, wrap
from dlhmc.lattice.u1 import U1Theory
from dlhmc.nets.local import LocalNet
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics

TWO_PI = 2.0 * math.pi


def randomize(module, seed=3, scale=0.3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def plain(net: LocalNet, maps: torch.Tensor):
    """The network by its modules: periodic 3x3 convolutions, then the 1x1 head."""
    out = net.head.conv(net.body(maps))
    if not net.head.with_s:
        t, q = out.split(2, dim=1)
        return None, t, net.head.lambda_q * torch.tanh(q)
    s, t, q = out.split(2, dim=1)
    return net.head.lambda_s * torch.tanh(s), t, net.head.lambda_q * torch.tanh(q)


@pytest.mark.parametrize("hidden", [(5,), (6, 5), (4, 6, 5)])
@pytest.mark.parametrize("with_s", [True, False])
def test_forward_is_the_plain_network(hidden, with_s):
    net = randomize(LocalNet(7, hidden, "swish", with_s=with_s).double())
    maps = torch.randn(3, 7, 6, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        for mine, ref in zip(net(maps), plain(net, maps), strict=True):
            if ref is None:
                assert mine is None
            else:
                assert (mine - ref).abs().max() < 1e-12


@pytest.mark.parametrize("hidden", [(5,), (6, 5), (4, 6, 5)])
@pytest.mark.parametrize(("dim", "offset", "step"),
                         [(-1, 0, 2), (-1, 1, 2), (-2, 0, 2), (-2, 1, 2), (-1, 3, 4), (-2, 2, 4)])
def test_at_sites_is_the_plain_network_at_those_sites(hidden, dim, offset, step):
    net = randomize(LocalNet(9, hidden, "swish").double())
    gen = torch.Generator().manual_seed(2)
    channels = (1, 4, 6, 7, 8)
    maps = torch.randn(3, len(channels), 8, 6, generator=gen, dtype=torch.float64)
    full = torch.zeros(3, 9, 8, 6, dtype=torch.float64)
    full[:, list(channels)] = maps
    with torch.no_grad():
        mine = net.at_sites(maps, channels, (dim, offset, step), mu=1)
        ref = plain(net, full)
    for m, r in zip(mine, ref, strict=True):
        r = r[:, 1]
        r = r[..., offset::step, :] if dim == -2 else r[..., offset::step]
        assert m.shape == r.shape
        assert (m - r).abs().max() < 1e-12


def reference_x_update(layers, k, j, x, v, eps, inverse, translation):
    """The sub-update on the whole lattice, from :meth:`x_inputs` and the plain network."""
    mu = layers.subs[j][0]
    sign = 1.0 if mu == 0 else -1.0
    moving = layers.moving[j]
    plaq, maps = layers.x_inputs(j, x, v)
    s, t, q = plain(layers.xnets[k], maps)
    es = eps * s[:, mu]
    shift = eps * (v[:, mu] * torch.exp(eps * q[:, mu]) + t[:, mu])
    if translation is not None:
        shift = shift + translation[mu]
    if inverse:
        y, es = wrap(plaq - sign * shift), -es
    else:
        y = wrap(plaq)
    mapped, log_jac = circle_map(y, es)
    if inverse:
        link = x[:, mu] - shift + sign * (mapped - y)
    else:
        link = x[:, mu] + sign * (mapped - y) + shift
    link = torch.where(moving[mu], wrap(link), x[:, mu])
    links = (link, x[:, 1]) if mu == 0 else (x[:, 0], link)
    logdet = torch.where(moving[mu], log_jac, 0.0).sum((1, 2))
    return torch.stack(links, dim=1), logdet


@pytest.mark.parametrize(("lattice", "period"), [((4, 4), 2), ((6, 4), 2), ((8, 6), 4),
                                                 ((3, 6), 4)])
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("winding", [0, 1])
def test_x_update_is_the_plain_sub_update(lattice, period, inverse, winding):
    theory = U1Theory(lattice, 2.0)
    config = L2HMCConfig(network="local", nlf=2, hidden=(6, 5), local_period=period,
                         winding=winding)
    dyn = L2HMCDynamics(theory, config)
    randomize(dyn.layers)
    gen = torch.Generator().manual_seed(4)
    x, v = theory.hot_start(3, gen), theory.sample_momentum(3, gen)
    eps = torch.tensor(0.3, dtype=torch.float64)
    translation = dyn.translation
    with torch.no_grad():
        for j in range(dyn.layers.n_sub_updates):
            x1, logdet, _ = dyn.layers.x_update(theory, 1, j, x, v, eps, inverse, translation,
                                                None)
            x_ref, logdet_ref = reference_x_update(dyn.layers, 1, j, x, v, eps, inverse,
                                                   translation)
            diff = torch.remainder(x1 - x_ref + math.pi, TWO_PI) - math.pi
            assert diff.abs().max() < 1e-12
            assert (logdet - logdet_ref).abs().max() < 1e-12
            assert (x1 != x).sum() > 0
            x = x1


def test_fast_paths_are_differentiable():
    """Training back-propagates through the channels-last padding and strided convolution:
    the gradients agree with those of the plain network."""
    net = randomize(LocalNet(5, (4, 3), "swish").double())
    maps = torch.randn(2, 5, 4, 6, generator=torch.Generator().manual_seed(5),
                       dtype=torch.float64)
    fast = sum(o.square().sum() for o in net.at_sites(maps, tuple(range(5)), (-1, 1, 2), 0))
    grads = torch.autograd.grad(fast, list(net.parameters()), allow_unused=True)
    ref = sum(o[:, 0, :, 1::2].square().sum() for o in plain(net, maps))
    ref_grads = torch.autograd.grad(ref, list(net.parameters()), allow_unused=True)
    for g, r in zip(grads, ref_grads, strict=True):
        if r is None:
            assert g is None or g.abs().max() == 0
        else:
            assert (g - r).abs().max() < 1e-12
    full = sum(o.square().sum() for o in net(maps))
    ref_full = sum(o.square().sum() for o in plain(net, maps))
    for g, r in zip(torch.autograd.grad(full, list(net.parameters())),
                    torch.autograd.grad(ref_full, list(net.parameters())), strict=True):
        assert (g - r).abs().max() < 1e-12
