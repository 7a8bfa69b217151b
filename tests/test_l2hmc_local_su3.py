"""The ``local`` L2HMC family on 4D SU(3): gauge covariance, exactness, the HMC limit, any volume.

Every property must hold for any weights, so the networks are randomized (complex128 links,
float64 momenta and weights).
"""

from __future__ import annotations

import math
from unittest import mock

import pytest
import torch
from l2hmc_helpers import randomize

from dlhmc.analysis.autocorr import gamma_method
from dlhmc.group import su3
from dlhmc.lattice.su3 import SU3Theory, gauge_transform, link_loops, link_staples
from dlhmc.samplers import l2hmc
from dlhmc.samplers.integrators import integrate
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics, momentum_update

LATTICES = [(2, 2, 2, 2), (2, 2, 2, 4)]


def local_config(**kw) -> L2HMCConfig:
    return L2HMCConfig(network="local", **{"nlf": 2, "hidden": (6, 5), **kw})


def random_state(theory, batch, seed):
    """Links, momenta and a Haar-random gauge transformation ``G(n)`` per chain."""
    gen = torch.Generator().manual_seed(seed)
    x, v = theory.hot_start(batch, gen), theory.sample_momentum(batch, gen)
    return x, v, su3.haar((batch, *theory.lattice), gen)


def adjoint(g: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """Components of ``G(n) P G(n)^dagger`` for momenta ``[B, 4, *lattice, ..., 8]``."""
    g = g.unsqueeze(1)
    while g.dim() < omega.dim() + 1:
        g = g.unsqueeze(-3)
    return su3.components(g @ su3.hermitian(omega) @ g.mH)


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


def test_staples_and_loops_match_the_force():
    """The geometry of the local layers against the theory's force (itself checked against
    autograd of the action): ``F = beta/6 sum_a TA(U S_a)``; ``link_loops`` is ``U S_a``;
    staples at chosen sites are those of the whole lattice there."""
    theory = SU3Theory((2, 4, 2, 6), 1.7)
    x, _, _ = random_state(theory, 2, seed=20)
    loops = link_loops(x)
    force = theory.beta / 6 * su3.antihermitian_components(loops).sum(-2)
    assert max_diff(force, theory.force(x)) < 1e-12
    sites = torch.tensor([0, 5, 17, 30, 95])
    for mu in range(4):
        staples = link_staples(x, mu)
        assert max_diff(x[:, mu].unsqueeze(-3) @ staples, loops[:, mu]) < 1e-12
        assert max_diff(link_staples(x, mu, sites), staples.flatten(1, 4)[:, sites]) < 1e-12


@pytest.mark.parametrize("lattice", LATTICES)
@pytest.mark.parametrize("inverse", [False, True])
def test_layers_are_gauge_covariant(lattice, inverse):
    """``layer(G U, G P G^dagger) = G layer(U, P)`` for every layer, forward and backward:
    links, momenta and forces transform, the invariant maps and ``log|J|`` do not."""
    theory = SU3Theory(lattice, 1.5)
    dyn = randomize(L2HMCDynamics(theory, local_config()), scale=0.1, seed=1)
    x, v, g = random_state(theory, 2, seed=2)
    gx, gv = gauge_transform(x, g), adjoint(g, v)
    assert max_diff(gx, x) > 0.5 and max_diff(gv, v) > 0.5
    with torch.no_grad():
        for k in range(dyn.config.nlf):
            out = dyn.layer(theory, k, x, v, theory.force(x), dyn.layers.features(x), inverse)
            out_g = dyn.layer(theory, k, gx, gv, theory.force(gx), dyn.layers.features(gx), inverse)
            assert max_diff(out[0], x) > 1e-2  # the layer moves the links
            assert out[4].abs().min() > 1e-3  # and has a Jacobian
            assert max_diff(out_g[0], gauge_transform(out[0], g)) < 1e-12
            assert max_diff(out_g[1], adjoint(g, out[1])) < 1e-12
            assert max_diff(out_g[2], adjoint(g, out[2])) < 1e-12
            assert max_diff(out_g[3][0], out[3][0]) < 1e-12  # plaquette traces
            assert max_diff(out_g[3][1], adjoint(g, out[3][1])) < 1e-12
            assert max_diff(out_g[4], out[4]) < 1e-12


def test_network_outputs_are_gauge_invariant():
    theory = SU3Theory((2, 2, 2, 4), 1.0)
    dyn = randomize(L2HMCDynamics(theory, local_config()), scale=0.1, seed=3)
    local = dyn.layers
    x, v, g = random_state(theory, 2, seed=4)
    gx, gv = gauge_transform(x, g), adjoint(g, v)
    with torch.no_grad():
        for k in range(dyn.config.nlf):
            for j in range(len(local.subs)):
                outs = local.xnets[k](local.x_inputs(j, x, v)[1])[1:]
                outs_g = local.xnets[k](local.x_inputs(j, gx, gv)[1])[1:]
                assert outs[0].abs().max() > 1e-2  # the loop coefficients are non-trivial
                assert all(max_diff(o, og) < 1e-12 for o, og in zip(outs, outs_g, strict=True))
            maps = local.v_inputs(theory.force(x), local.features(x))
            maps_g = local.v_inputs(theory.force(gx), local.features(gx))
            outs, outs_g = local.vnets[k](maps), local.vnets[k](maps_g)
            assert outs[1].abs().max() > 1e-2
            assert all(max_diff(o, og) < 1e-12 for o, og in zip(outs, outs_g, strict=True))


def test_each_link_moves_once_per_layer_and_only_frozen_loops_are_read():
    """The eight masks partition the links; every loop a sub-update reads (network input
    and the loops its shift is built from) is made of frozen links, checked by rotating the
    moving links at random and comparing."""
    theory = SU3Theory((2, 2, 4, 2), 1.0)
    local = L2HMCDynamics(theory, local_config()).layers
    assert len(local.subs) == 8
    per_link = torch.zeros(4, *theory.lattice)
    for (mu, _), mask in zip(local.subs, local.moving, strict=True):
        per_link[mu] += mask
    assert (per_link == 1).all()
    x, v, g = random_state(theory, 2, seed=5)
    for j, (mu, _) in enumerate(local.subs):
        kicked = x.clone()
        kicked[:, mu] = torch.where(local.moving[j][..., None, None], g @ x[:, mu], x[:, mu])
        assert max_diff(kicked, x) > 0.5
        vectors, maps = local.x_inputs(j, x, v)
        vectors_k, maps_k = local.x_inputs(j, kicked, v)
        assert max_diff(maps_k, maps) < 1e-12
        assert max_diff(vectors_k, vectors) < 1e-12  # at the moving sites


@pytest.mark.parametrize("lattice", LATTICES)
@pytest.mark.parametrize("direction", [1, -1])
def test_forward_then_backward_is_identity_and_links_stay_unitary(lattice, direction):
    theory = SU3Theory(lattice, 2.0)
    dyn = randomize(L2HMCDynamics(theory, local_config()), scale=0.1, seed=6)
    x, v, _ = random_state(theory, 3, seed=7)
    with torch.no_grad():
        x1, v1, logdet, _ = dyn.trajectory(x, v, direction)
        x0, v0, logdet_back, _ = dyn.trajectory(x1, v1, -direction)
    assert max_diff(x1, x) > 1e-2
    assert logdet.abs().max() > 1e-2
    assert su3.unitarity_violation(x1) < 1e-12
    assert max_diff(x0, x) < 1e-12
    assert max_diff(v0, v) < 1e-12
    assert (logdet + logdet_back).abs().max() < 1e-12


def layer_in_coordinates(dyn, x, v, inverse):
    """One layer as a map of ``(omega, v)``, links ``exp(i omega.T) U``, onto ``(omega', v')``
    with ``omega'`` the left-invariant coordinates of the image around ``U' = layer(U)``:
    at ``omega = 0`` its Jacobian is the density w.r.t. Haar x Lebesgue."""
    theory = dyn.theory
    n = v.numel()

    def run(links, momenta):
        return dyn.layer(theory, 0, links, momenta, theory.force(links), dyn.layers.features(links),
                          inverse)

    with torch.no_grad():
        x1, _, _, _, logdet = run(x, v)

    def layer(z):
        links = su3.expi_components(z[:n].view(v.shape)) @ x
        x2, v2, *_ = run(links, z[n:].view(v.shape))
        return torch.cat((2 * su3.trace_im(x2 @ x1.mH).flatten(), v2.flatten()))

    return layer, torch.cat((torch.zeros_like(v).flatten(), v.flatten())), logdet.item()


@pytest.mark.parametrize("inverse", [False, True])
def test_log_jacobian_is_log_det_of_autograd_jacobian(inverse):
    """On 2^4: the momentum update's Jacobian equals ``exp(8 eps/2 sum s_v)``, each link
    sub-update has unit Jacobian in the 8 left-invariant coordinates of every link, and the
    whole layer ``(U, v) -> (U', v')`` has ``log|det| = log|J|`` of the layer."""
    theory = SU3Theory((2, 2, 2, 2), 1.0)
    dyn = randomize(L2HMCDynamics(theory, local_config(nlf=1, hidden=(4,))), scale=0.1, seed=8)
    local = dyn.layers
    x, v, _ = random_state(theory, 1, seed=9)
    force, features = theory.force(x), local.features(x)
    eps_v, eps_x = dyn.eps_v[0].detach(), dyn.eps_x[0].detach()

    def v_update(w):
        return momentum_update(w, force, local.v_terms(0, force, features), eps_v, inverse)

    jac = torch.autograd.functional.jacobian(
        lambda w: v_update(w.view(v.shape))[0].flatten(),
        v.flatten(), vectorize=True,
    )
    logdet = v_update(v)[1].item()
    assert abs(logdet) > 1e-2
    assert logdet == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-10)

    for j in (0, 5):
        with torch.no_grad():
            x1 = local.x_update(theory, 0, j, x, v, eps_x, inverse, None, None)[0]

        def sub_update(omega, j=j, x1=x1):
            links = su3.expi_components(omega.view(v.shape)) @ x
            moved = local.x_update(theory, 0, j, links, v, eps_x, inverse, None, None)[0]
            return 2 * su3.trace_im(moved @ x1.mH).flatten()

        jac = torch.autograd.functional.jacobian(sub_update, torch.zeros_like(v).flatten(),
                                                 vectorize=True)
        assert max_diff(jac, torch.eye(v.numel(), dtype=v.dtype)) > 1e-3  # loops couple links
        assert torch.linalg.slogdet(jac)[1].abs().item() < 1e-10

    layer, z0, logdet = layer_in_coordinates(dyn, x, v, inverse)
    jac = torch.autograd.functional.jacobian(layer, z0, vectorize=True)
    assert abs(logdet) > 1e-2
    assert logdet == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-10)


@pytest.mark.parametrize("lattice", LATTICES)
@pytest.mark.parametrize("nlf", [1, 3])
def test_zero_networks_are_hmc_leapfrog(lattice, nlf):
    theory = SU3Theory(lattice, 2.0)
    eps = 0.13
    dyn = L2HMCDynamics(theory, local_config(nlf=nlf))
    with torch.no_grad():
        for name, p in dyn.named_parameters():
            p.fill_(math.log(eps) if name.startswith("log_eps") else 0.0)
    x, v, _ = random_state(theory, 2, seed=10)
    with torch.no_grad():
        x1, v1, logdet, _ = dyn.trajectory(x, v, 1)
    x_hmc, v_hmc, _ = integrate(theory, x, v, theory.force(x), nlf, eps)
    assert max_diff(x1, x_hmc) < 1e-12
    assert max_diff(v1, v_hmc) < 1e-12
    assert logdet.abs().max() < 1e-12


def test_parameter_count_and_weights_do_not_depend_on_the_volume():
    """The widths of the report (``nlf 4, hidden (16, 16)``) stay below 1e5 parameters."""
    config = local_config(nlf=4, hidden=(16, 16))
    models = {lat: L2HMCDynamics(SU3Theory(lat, 1.0), config)
              for lat in [(2, 2, 2, 2), (4, 4, 4, 4), (8, 8, 8, 8), (4, 2, 6, 2)]}
    counts = {lat: sum(p.numel() for p in m.parameters()) for lat, m in models.items()}
    assert len(set(counts.values())) == 1, counts
    assert counts[(8, 8, 8, 8)] < 100_000
    state = models[(2, 2, 2, 2)].state_dict()
    for model in models.values():
        model.load_state_dict(state)  # strict: the same keys and shapes everywhere


def test_refusals():
    with pytest.raises(ValueError, match="even extents.*lattice \\(2, 3, 2, 2\\)"):
        L2HMCDynamics(SU3Theory((2, 3, 2, 2), 1.0), local_config())
    with pytest.raises(ValueError, match="winding"):
        L2HMCDynamics(SU3Theory((2, 2, 2, 2), 1.0), local_config(winding=1))


def strong_coupling_run(base, lattice, chains, steps, burn_in, seed, drop_logdet=False):
    """Plaquette history ``[chains, steps - burn_in]`` of the model ``base`` run on
    ``lattice`` at the same beta, and its mean acceptance and mean ``|sum log|J||``."""
    theory = SU3Theory(lattice, base.theory.beta)
    dyn = L2HMCDynamics(theory, base.config)
    dyn.load_state_dict(base.state_dict())
    update = l2hmc.momentum_update
    dropped = (lambda *a: (update(*a)[0], 0.0)) if drop_logdet else update
    gen = torch.Generator().manual_seed(seed)
    state = dyn.init(theory.hot_start(chains, gen))
    plaq, accept, logdet = [], [], []
    # drop_logdet: only for the manual check that the test can fail
    with torch.no_grad(), mock.patch.object(l2hmc, "momentum_update", dropped):
        for step in range(steps):
            state, info = dyn.step(state, gen)
            if step >= burn_in:
                plaq.append(theory.plaquette(state.x))
                accept.append(info.accept_prob.mean().item())
                logdet.append(info.extras["sumlogdet"].abs().mean().item())
    return torch.stack(plaq).T.numpy(), sum(accept) / len(accept), sum(logdet) / len(logdet)


def strong_coupling_model(beta=1.0, eps=0.4):
    """Random weights made on 2^4.  The rows of the ``s_v`` heads are ten times larger and
    biased, so ``s_v`` (and with it ``sum log|J|``) depends on the links; ``eps_v = eps_x``,
    since a mismatch is a non-Hamiltonian flow whose energy error grows with the volume."""
    config = local_config(nlf=2, hidden=(8,), eps_init=eps)
    base = randomize(L2HMCDynamics(SU3Theory((2, 2, 2, 2), beta), config), scale=0.02, seed=12)
    with torch.no_grad():
        for net in base.layers.vnets:
            net.lambda_s.fill_(0.02)
            net.head.bias[:4].fill_(0.3)
            net.head.weight[:4].mul_(10.0)
        base.log_eps_v.fill_(math.log(eps))
        base.log_eps_x.fill_(math.log(eps))
    return base


@pytest.mark.parametrize(("lattice", "chains", "steps", "burn_in"), [
    ((2, 2, 2, 2), 48, 60, 15),
    pytest.param((4, 4, 4, 4), 8, 60, 20, marks=pytest.mark.slow),
])
def test_random_model_reproduces_strong_coupling_plaquette(lattice, chains, steps, burn_in):
    """A model with random non-zero weights, made on 2^4, is an exact sampler on 2^4 and
    4^4: the plaquette at beta 1 matches the strong-coupling series within the Gamma-method
    error (the independent chains as replicas, burn-in dropped) and the series' own
    uncertainty.  Leaving ``sum log|J|`` out of the accept probability fails this test
    (``drop_logdet=True``, checked by hand when it was written: -5.6 standard errors on
    2^4, -14 on 4^4)."""
    base = strong_coupling_model()
    plaq, accept, logdet = strong_coupling_run(base, lattice, chains, steps, burn_in, seed=13)
    assert 0.1 < accept < 0.98
    assert logdet > 1.0
    result = gamma_method(plaq)
    exact = SU3Theory.exact_plaquette(lattice, 1.0)
    tolerance = 4 * math.hypot(result.mean_err, exact.error)
    assert abs(result.mean - exact.value) < tolerance, (result.mean, result.mean_err, exact)
