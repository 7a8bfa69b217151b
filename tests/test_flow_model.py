"""The flow's coupling layers: gauge equivariance, exact inverse, log|J| against autograd, the
identity at zero layers, and the same weights on another lattice (dlhmc.flows)."""

from __future__ import annotations

import math

import pytest
import torch
from flow_helpers import autograd_log_jacobian

from dlhmc.flows import mixture
from dlhmc.flows.model import FlowConfig, GaugeFlow, check_lattice
from dlhmc.lattice import make_theory

TWO_PI = 2 * math.pi


def angle_gap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Largest distance of two link configurations on the circle."""
    return torch.remainder(a - b + math.pi, TWO_PI).sub(math.pi).abs().max()


def random_flow(lattice, period=4, layers=8, hidden=(4,), seed=0, scale=0.5) -> GaugeFlow:
    """A flow whose maps are far from the identity (the trained heads start near zero)."""
    theory = make_theory("U1", lattice, 2.0, "double")
    torch.manual_seed(seed)
    flow = GaugeFlow(theory, FlowConfig(layers=layers, hidden=hidden, local_period=period))
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))
    return flow


def links(flow: GaugeFlow, batch: int = 3, seed: int = 1) -> torch.Tensor:
    return flow.theory.hot_start(batch, torch.Generator().manual_seed(seed))


def gauge_transform(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x_mu(n) -> x_mu(n) + a(n) - a(n + mu)`` (``mu = 0`` along t, dim 1 of ``a``)."""
    return torch.stack((x[:, 0] + a - a.roll(-1, 1), x[:, 1] + a - a.roll(-1, 2)), dim=1)


@pytest.mark.parametrize("period", [2, 4])
def test_coupling_layers_commute_with_random_gauge_transformations(period):
    flow = random_flow((8, 8), period)
    z = links(flow)
    a = torch.rand(z.shape[0], 8, 8, dtype=z.dtype, generator=torch.Generator().manual_seed(2))
    a = TWO_PI * a - math.pi
    with torch.no_grad():
        x, logdet = flow(z)
        x_g, logdet_g = flow(gauge_transform(z, a))
    assert angle_gap(x_g, gauge_transform(x, a)) < 1e-10
    assert torch.allclose(logdet_g, logdet, atol=1e-10)
    assert angle_gap(x, z) > 0.5  # the flow moved the links: the check above is not void


@pytest.mark.parametrize("period", [2, 4])
def test_inverse_undoes_the_flow_and_negates_its_log_jacobian(period):
    flow = random_flow((8, 8), period)
    z = links(flow)
    with torch.no_grad():
        x, logdet = flow(z)
        z_back, logdet_inv = flow.inverse(x)
    assert angle_gap(z_back, z) < 1e-9
    assert torch.allclose(logdet_inv, -logdet, atol=1e-9)


@pytest.mark.parametrize("period", [2, 4])
def test_log_jacobian_equals_autograd_determinant(period):
    flow = random_flow((4, 4), period)
    z = links(flow, batch=1)
    assert autograd_log_jacobian(flow, z[0]) == pytest.approx(flow(z)[1].item(), abs=1e-9)


def test_zero_layers_is_the_identity_with_the_haar_density():
    theory = make_theory("U1", (6, 4), 1.0, "double")
    flow = GaugeFlow(theory, FlowConfig(layers=0))
    z = theory.hot_start(4, torch.Generator().manual_seed(0))
    x, logdet = flow(z)
    assert torch.equal(x, z) and torch.equal(logdet, torch.zeros(4, dtype=z.dtype))
    x, log_q = flow.sample(4, torch.Generator().manual_seed(0))
    assert torch.equal(x, z)
    assert torch.allclose(log_q, torch.full((4,), -48 * math.log(TWO_PI), dtype=z.dtype))


def test_sample_returns_the_density_of_its_proposals():
    flow = random_flow((4, 8))
    with torch.no_grad():
        x, log_q = flow.sample(3, torch.Generator().manual_seed(5))
        z, logdet_inv = flow.inverse(x)
    assert torch.allclose(log_q, flow.prior_log_prob(z) + logdet_inv, atol=1e-9)


def test_the_weights_run_on_another_lattice():
    """Only the masks depend on the volume: a flow built for 8x8 loads into one on 12x6."""
    small = random_flow((8, 8), period=2)
    other = GaugeFlow(make_theory("U1", (12, 6), 2.0, "double"),
                      FlowConfig(layers=8, hidden=(4,), local_period=2))
    assert not any(name.endswith("keep") for name in small.state_dict())
    other.load_state_dict(small.state_dict())
    z = links(other)
    with torch.no_grad():
        x, logdet = other(z)
        z_back, logdet_inv = other.inverse(x)
    assert x.shape == (3, 2, 12, 6) and angle_gap(x, z) > 0.5
    assert angle_gap(z_back, z) < 1e-9 and torch.allclose(logdet_inv, -logdet, atol=1e-9)


def test_a_lattice_too_small_for_every_offset_keeps_the_other_layers():
    """Extent 2 with period 4: no column of offset 2 or 3, those layers are the identity."""
    flow = random_flow((2, 6), period=4)
    z = links(flow)
    with torch.no_grad():
        x, logdet = flow(z)
        z_back, _ = flow.inverse(x)
    assert angle_gap(z_back, z) < 1e-9 and angle_gap(x, z) > 0.1


@pytest.mark.parametrize(("lattice", "period"), [((5, 8), 4), ((6, 7), 2)])
def test_lattices_the_masks_do_not_fit_are_refused_naming_the_lattice(lattice, period):
    with pytest.raises(ValueError, match=r"^lattice: the local link masks"):
        check_lattice(lattice, period)
    with pytest.raises(ValueError, match=r"^lattice: "):
        GaugeFlow(make_theory("U1", lattice, 1.0), FlowConfig(local_period=period))


def test_the_circle_map_is_inverted_to_rounding_on_the_whole_circle():
    y = torch.linspace(-math.pi, math.pi, 401, dtype=torch.float64)[:-1].expand(2, -1)
    params = torch.randn(2, mixture.N_PARAMETERS, 400, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(3)) * 3
    delta, log_d = mixture.forward(y, params)
    back, log_d_back = mixture.inverse(y + delta, params)
    assert torch.allclose(back, delta, atol=1e-12)
    assert torch.allclose(log_d_back, log_d, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [0.01, 3.0, 30.0])
def test_the_inverse_solves_maps_near_and_far_from_the_identity(dtype, size):
    """Newton's steps in their bracket (mixture._solve) on maps from nearly the identity to
    log-scales at their bound (steep and flat stretches where Newton alone overshoots): the
    forward map of the inverse gives back every angle to a few rounding units of the angle and
    of ``y`` times the slope (on a steep stretch the last bit of ``y`` moves ``h(y)`` by
    ``h'(y)`` units)."""
    gen = torch.Generator().manual_seed(7)
    y_new = (torch.rand(2, 4000, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
    params = torch.randn(2, mixture.N_PARAMETERS, 4000, generator=gen, dtype=torch.float64)
    y_new, params = y_new.to(dtype), (params * size).to(dtype)
    back, _ = mixture.inverse(y_new, params)
    y = y_new - back
    delta, log_d = mixture.forward(torch.remainder(y + math.pi, TWO_PI) - math.pi, params)
    gap = torch.remainder(y + delta - y_new + math.pi, TWO_PI) - math.pi
    bound = 64 * torch.finfo(dtype).eps * math.pi * (1 + log_d.exp())
    assert (gap.abs() <= bound).all()


def test_zero_parameters_are_exactly_the_identity_and_small_moves_keep_their_digits():
    """The map is computed as a move from the identity (what a bridge between nearby couplings
    starts from): zero parameters move nothing and have ``log h' = 0`` bit for bit, in single
    precision too, and a tiny log-scale moves the angle by what the double-precision projection
    says to full relative precision (``h(y) - y`` is never a difference of close numbers)."""
    for dtype in (torch.float32, torch.float64):
        y = (torch.rand(1, 5000, dtype=dtype, generator=torch.Generator().manual_seed(4))
             * 2 - 1) * math.pi
        zero = torch.zeros(1, mixture.N_PARAMETERS, 5000, dtype=dtype)
        for delta, log_d in (mixture.forward(y, zero), mixture.inverse(y, zero)):
            assert torch.equal(delta, torch.zeros_like(y)) and torch.equal(log_d, delta)
    y = torch.linspace(-3.0, 3.0, 61, dtype=torch.float32)
    s = torch.full_like(y, 1e-4)
    exact = 2 * torch.atan(math.exp(1e-4) * torch.tan(y.double() / 2)) - y.double()
    moved, _ = mixture.displacement(y, s)
    assert torch.allclose(moved.double(), exact, rtol=1e-5, atol=0)


@pytest.mark.parametrize(
    ("change", "words"),
    [({"layers": -1}, "layers: expected an integer >= 0"),
     ({"hidden": ()}, "hidden: expected one or more"),
     ({"local_period": 3}, "local_period: expected one of (2, 4)"),
     ({"output_scale": 0.0}, "output_scale: expected a finite number > 0"),
     ({"output_scale": float("inf")}, "output_scale: expected a finite number > 0"),
     ({"output_scale": True}, "output_scale: expected a finite number > 0")],
)
def test_bad_architectures_name_the_setting(change, words):
    with pytest.raises(ValueError) as err:
        FlowConfig(**change)
    assert str(err.value).startswith(words)


def test_a_stored_architecture_must_state_every_setting():
    stored = FlowConfig(layers=2).to_dict()
    assert FlowConfig.from_dict(stored) == FlowConfig(layers=2)
    del stored["local_period"]
    with pytest.raises(ValueError, match="^local_period: missing"):
        FlowConfig.from_dict(stored)


def test_a_checkpoint_from_before_the_output_scale_has_scale_one():
    stored = FlowConfig(layers=2, output_scale=0.25).to_dict()
    assert FlowConfig.from_dict(stored).output_scale == 0.25
    del stored["output_scale"]
    assert FlowConfig.from_dict(stored) == FlowConfig(layers=2)


def test_the_output_scale_multiplies_every_networks_output():
    """A flow with ``output_scale`` c is the flow whose heads are c times larger: forward,
    inverse and log|J| (against autograd) on the scaled flow."""
    theory = make_theory("U1", (8, 8), 2.0, "double")
    scaled = GaugeFlow(theory, FlowConfig(layers=4, hidden=(4,), local_period=2,
                                          output_scale=0.3))
    torch.manual_seed(4)
    with torch.no_grad():
        for p in scaled.parameters():
            p.add_(0.5 * torch.randn_like(p))
    plain = GaugeFlow(theory, FlowConfig(layers=4, hidden=(4,), local_period=2))
    plain.load_state_dict(scaled.state_dict())
    with torch.no_grad():
        for layer in plain.layers:
            layer.net.head.weight.mul_(0.3)
            layer.net.head.bias.mul_(0.3)
    x = links(scaled)
    with torch.no_grad():
        (y, log_j), (y_ref, log_j_ref) = scaled(x), plain(x)
        assert angle_gap(y, y_ref) < 1e-12 and torch.allclose(log_j, log_j_ref, atol=1e-12)
        assert angle_gap(scaled.inverse(y)[0], x) < 1e-10
        assert angle_gap(y, x) > 0.1  # the scale did not make the check void
    assert log_j[0].item() == pytest.approx(autograd_log_jacobian(scaled, x[0]), abs=1e-9)


def test_flows_are_u1_only():
    with pytest.raises(ValueError, match="^group: flows are implemented for U1 only"):
        GaugeFlow(make_theory("SU3", (2, 2, 2, 2), 5.0), FlowConfig(layers=1))


@pytest.mark.parametrize(("lattice", "period", "hidden"),
                         [((8, 8), 4, (3, 5)), ((6, 10), 4, (3, 5)), ((6, 10), 2, (3, 5)),
                          ((8, 8), 4, (4,)), ((12, 8), 4, (2, 3, 4))])
def test_the_networks_read_at_the_active_plaquettes_are_the_full_maps_there(lattice, period,
                                                                            hidden):
    """The network evaluated at the active plaquettes only (gathered neighbourhoods, each
    convolution where the next one reads it) equals the full periodic convolutions there."""
    flow = random_flow(lattice, period, layers=2 * period, hidden=hidden)
    for layer in flow.layers:
        maps = torch.randn(2, 2 * len(layer.loops), *lattice, dtype=torch.float64)
        gathers = [getattr(layer, f"gather{k}") for k in range(len(hidden))]
        at_sites = layer.net.at_sites(maps.flatten(2).permute(1, 2, 0), gathers)
        full = layer.at_moving(layer.net(maps).permute(2, 3, 1, 0))  # [Nt, Nx, params, B]
        assert torch.allclose(at_sites, full.flatten(0, 1).transpose(0, 1), atol=1e-12)


def test_the_circle_map_has_the_derivatives_of_its_plain_expressions():
    """The hand-written backward of the mixture map equals autograd through the plain
    expressions (double precision), for mild and for extreme parameters (``|s|`` at its
    bound, strongly compressing maps where ``log h'`` takes its direct branch)."""
    gen = torch.Generator().manual_seed(5)
    for scale in (0.3, 3.0, 30.0):
        y = ((torch.rand(3, 40, dtype=torch.float64, generator=gen) * 2 - 1) * math.pi)
        params = torch.randn(3, mixture.N_PARAMETERS, 40, dtype=torch.float64,
                             generator=gen) * scale
        y.requires_grad_()
        params.requires_grad_()
        assert torch.autograd.gradcheck(mixture.forward, (y, params))
        s, log_w, t = mixture.split(params)
        plain_move, plain_log = mixture.mixture(y, s, log_w)
        move, log_d = mixture.forward(y, params)
        assert torch.equal(move, plain_move + t) and torch.equal(log_d, plain_log)
        g_move, g_log = torch.randn_like(move), torch.randn_like(log_d)
        ours = torch.autograd.grad((g_move * move + g_log * log_d).sum(), (y, params))
        plain = torch.autograd.grad((g_move * (plain_move + t) + g_log * plain_log).sum(),
                                    (y, params))
        for a, b in zip(ours, plain, strict=True):
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
