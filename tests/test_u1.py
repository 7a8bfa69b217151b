"""2D U(1): plaquettes, action, analytic force, charges, gauge invariance, exact plaquette."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.special import i0, i1

from dlhmc.group.u1 import wrap
from dlhmc.lattice import make_theory
from dlhmc.lattice.u1 import U1Theory, charge_real, plaquette_angles
from dlhmc.lattice.u1_exact import (
    exact_plaquette,
    infinite_volume_plaquette,
    log_partition_function,
    sector_distribution,
)

TWO_PI = 2 * math.pi


def hot(theory: U1Theory, batch: int, seed: int = 0) -> torch.Tensor:
    return theory.hot_start(batch, torch.Generator().manual_seed(seed))


def loop_plaquettes(x: torch.Tensor) -> torch.Tensor:
    """physics.md's x_P(n) = x_0(n) + x_1(n + e0) - x_0(n + e1) - x_1(n), site by site."""
    _, _, nt, nx = x.shape
    out = torch.empty(x.shape[0], nt, nx, dtype=x.dtype)
    for t in range(nt):
        for s in range(nx):
            out[:, t, s] = (
                x[:, 0, t, s] + x[:, 1, (t + 1) % nt, s] - x[:, 0, t, (s + 1) % nx] - x[:, 1, t, s]
            )
    return out


def instanton(nt: int, nx: int, q: int) -> torch.Tensor:
    """Links whose wrapped plaquette angles all equal 2 pi q / V: charge q, uniform field."""
    volume = nt * nx
    x = torch.zeros(1, 2, nt, nx, dtype=torch.float64)
    x[0, 1] = (TWO_PI * q / volume * torch.arange(nt, dtype=torch.float64))[:, None]
    x[0, 0, nt - 1] = -TWO_PI * q / nx * torch.arange(nx, dtype=torch.float64)
    return wrap(x)


def gauge_transform(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """x_mu(n) -> x_mu(n) + a(n) - a(n + mu)."""
    y = x.clone()
    y[:, 0] += a - a.roll(-1, dims=-2)
    y[:, 1] += a - a.roll(-1, dims=-1)
    return wrap(y)


# ---------------------------------------------------------------- lattice checks and set-up


@pytest.mark.parametrize("shape", [(4,), (4, 4, 4), (1, 8), (8, 0)])
def test_check_lattice_rejects(shape):
    with pytest.raises(ValueError, match="U1"):
        U1Theory.check_lattice(shape)


def test_make_theory_precisions():
    double = make_theory("U1", (4, 6), 2.0)
    single = make_theory("U1", (4, 6), 2.0, precision="single")
    assert double.dtype == torch.float64 and single.dtype == torch.float32
    g = torch.Generator().manual_seed(0)
    assert single.hot_start(3, g).dtype == torch.float32
    assert double.momentum_shape(3) == (3, 2, 4, 6)
    assert double.with_beta(3.0).beta == 3.0 and double.with_beta(3.0).lattice == (4, 6)


def test_hot_and_cold_start():
    theory = U1Theory((6, 10), 2.0)
    x = hot(theory, 64)
    assert x.shape == (64, 2, 6, 10)
    assert bool(((x >= -math.pi) & (x < math.pi)).all())
    # Uniform on the circle: mean of cos and sin vanish within 5 standard errors.
    n = x.numel()
    assert abs(torch.cos(x).mean().item()) < 5 / math.sqrt(2 * n)
    assert abs(torch.sin(x).mean().item()) < 5 / math.sqrt(2 * n)
    cold = theory.cold_start(3)
    assert torch.equal(theory.action(cold), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(theory.plaquette(cold), torch.ones(3, dtype=torch.float64))
    assert torch.equal(theory.force(cold), torch.zeros_like(cold))


def test_evolve_links_wraps():
    theory = U1Theory((4, 6), 1.0)
    g = torch.Generator().manual_seed(1)
    x = hot(theory, 8)
    p = 10 * theory.sample_momentum(8, g)
    for eps in (0.7, torch.tensor(0.7, dtype=torch.float64)):
        y = theory.evolve_links(x, p, eps)
        assert bool(((y >= -math.pi) & (y < math.pi)).all())
        # Same point on the circle as x + eps p.
        torch.testing.assert_close(torch.cos(y), torch.cos(x + 0.7 * p), rtol=0, atol=1e-12)
        torch.testing.assert_close(torch.sin(y), torch.sin(x + 0.7 * p), rtol=0, atol=1e-12)


def test_evolve_links_is_differentiable_in_eps_and_p():
    """L2HMC trains its step sizes: d(x + eps p)/d eps = p through the wrapping."""
    theory = U1Theory((4, 6), 1.0)
    g = torch.Generator().manual_seed(9)
    x = hot(theory, 3)
    p = theory.sample_momentum(3, g).requires_grad_()
    eps = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(x.shape, generator=g, dtype=x.dtype)
    d_eps, d_p = torch.autograd.grad((theory.evolve_links(x, p, eps) * w).sum(), (eps, p))
    torch.testing.assert_close(d_eps, (w * p).sum().detach())
    torch.testing.assert_close(d_p, 0.3 * w)


def test_kinetic_energy():
    theory = U1Theory((4, 6), 1.0)
    p = theory.sample_momentum(5, torch.Generator().manual_seed(2))
    torch.testing.assert_close(theory.kinetic_energy(p), 0.5 * (p**2).sum(dim=(1, 2, 3)))


# ---------------------------------------------------------------- plaquettes, action, force


def test_plaquette_angles_match_site_loop():
    x = hot(U1Theory((3, 5), 1.0), 4)
    torch.testing.assert_close(plaquette_angles(x), loop_plaquettes(x), rtol=0, atol=1e-14)


def test_action_and_plaquette_definitions():
    theory = U1Theory((3, 5), 2.5)
    x = hot(theory, 4)
    cos = torch.cos(loop_plaquettes(x))
    torch.testing.assert_close(theory.action(x), 2.5 * (1 - cos).sum(dim=(1, 2)))
    torch.testing.assert_close(theory.plaquette(x), cos.mean(dim=(1, 2)))
    torch.testing.assert_close(theory.observables(x)["plaq"], cos.mean(dim=(1, 2)))


@pytest.mark.parametrize("shape,beta", [((6, 10), 1.0), ((8, 8), 4.0), ((2, 3), 0.7)])
def test_force_equals_autograd(shape, beta):
    theory = U1Theory(shape, beta)
    x = hot(theory, 16, seed=3).requires_grad_()
    (grad,) = torch.autograd.grad(theory.action(x).sum(), x)
    with torch.no_grad():
        force = theory.force(x)
    torch.testing.assert_close(force, grad, rtol=0, atol=1e-12)


def test_force_is_differentiable():
    """L2HMC trains through the force: its autograd derivative must be the action's Hessian."""
    theory = U1Theory((4, 6), 3.0)
    x = hot(theory, 4, seed=4).requires_grad_()
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    (hw_force,) = torch.autograd.grad((theory.force(x) * w).sum(), x)
    (grad,) = torch.autograd.grad(theory.action(x).sum(), x, create_graph=True)
    (hw_action,) = torch.autograd.grad((grad * w).sum(), x)
    torch.testing.assert_close(hw_force, hw_action, rtol=0, atol=1e-12)


def test_single_precision_force_close_to_double():
    double = U1Theory((8, 8), 2.0)
    single = U1Theory((8, 8), 2.0, precision="single")
    x = hot(double, 4)
    torch.testing.assert_close(single.force(x.float()).double(), double.force(x), atol=1e-5, rtol=0)


# ---------------------------------------------------------------- charges


def test_charge_is_integer_on_random_configurations():
    theory = U1Theory((8, 8), 1.0)
    x = hot(theory, 256)
    raw = wrap(plaquette_angles(x)).sum(dim=(1, 2)) / TWO_PI
    assert (raw - raw.round()).abs().max().item() < 1e-10
    torch.testing.assert_close(theory.charge(x), raw.round(), rtol=0, atol=0)
    assert raw.abs().max().item() >= 1  # random configurations sit in many sectors


@pytest.mark.parametrize("q", [-2, -1, 0, 1, 3])
def test_charge_of_uniform_field(q):
    nt, nx = 6, 8
    volume = nt * nx
    theory = U1Theory((nt, nx), 2.0)
    x = instanton(nt, nx, q)
    phi = TWO_PI * q / volume
    obs = theory.observables(x)
    assert obs["charge"].item() == q
    assert theory.charge(x).item() == q
    assert obs["charge_real"].item() == pytest.approx(volume * math.sin(phi) / TWO_PI, abs=1e-12)
    assert obs["plaq"].item() == pytest.approx(math.cos(phi), abs=1e-12)
    assert theory.action(x).item() == pytest.approx(2.0 * volume * (1 - math.cos(phi)), abs=1e-10)


def test_charge_real_definition_and_gradient():
    x = hot(U1Theory((4, 6), 1.0), 3, seed=6).requires_grad_()
    q = charge_real(x)
    torch.testing.assert_close(q, torch.sin(loop_plaquettes(x)).sum(dim=(1, 2)) / TWO_PI)
    # Differentiable (the L2HMC loss): same gradient as the site-loop definition.
    (grad,) = torch.autograd.grad(q.sum(), x)
    (expected,) = torch.autograd.grad(torch.sin(loop_plaquettes(x)).sum() / TWO_PI, x)
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-13)


def test_charges_agree_for_smooth_fields():
    """Q_R -> Q_Z when the field strength per plaquette is small (large volume)."""
    x = instanton(32, 32, 1)
    assert charge_real(x).item() == pytest.approx(1.0, abs=2e-3)


def test_gauge_invariance():
    theory = U1Theory((6, 10), 3.0)
    x = hot(theory, 32, seed=7)
    a = TWO_PI * torch.rand(32, 6, 10, generator=torch.Generator().manual_seed(8), dtype=x.dtype)
    y = gauge_transform(x, a)
    assert (torch.cos(y) - torch.cos(x)).abs().max() > 0.1  # the links did change
    torch.testing.assert_close(theory.action(y), theory.action(x), rtol=1e-12, atol=1e-10)
    ox, oy = theory.observables(x), theory.observables(y)
    for name in ("plaq", "charge_real"):
        torch.testing.assert_close(oy[name], ox[name], rtol=0, atol=1e-11)
    torch.testing.assert_close(oy["charge"], ox["charge"], rtol=0, atol=0)


# ---------------------------------------------------------------- exact plaquette


def test_two_plaquettes_are_one_at_double_beta():
    """With V = 2 the constraint makes x_P2 = -x_P1: a single angle at coupling 2 beta."""
    for beta in (0.3, 1.0, 4.0, 9.0):
        assert exact_plaquette(beta, 2) == pytest.approx(i1(2 * beta) / i0(2 * beta), rel=1e-12)


@pytest.mark.parametrize("beta", [0.5, 1.0, 4.0, 8.0])
def test_large_volume_limit(beta):
    assert infinite_volume_plaquette(beta) == pytest.approx(i1(beta) / i0(beta), rel=1e-13)
    assert exact_plaquette(beta, 200 * 200) == pytest.approx(i1(beta) / i0(beta), rel=1e-12)
    # Finite volume lies above the infinite-volume value (the constraint orders plaquettes).
    assert exact_plaquette(beta, 4) > i1(beta) / i0(beta) + 1e-3


def test_strong_coupling_series():
    """<cos x_P> = beta/2 - beta^3/16 + O(beta^5) (finite-volume terms are O(beta^(V-1)))."""
    for beta in (1e-3, 1e-2):
        assert exact_plaquette(beta, 64) == pytest.approx(beta / 2 - beta**3 / 16, abs=beta**5)
    assert exact_plaquette(0.0, 64) == 0.0


@pytest.mark.parametrize("volume", [4, 64, 256])
def test_plaquette_is_derivative_of_log_z(volume):
    h = 1e-5
    for beta in (0.5, 2.0, 6.0):
        derivative = (
            log_partition_function(beta + h, volume) - log_partition_function(beta - h, volume)
        ) / (2 * h * volume)
        assert exact_plaquette(beta, volume) == pytest.approx(derivative, abs=1e-8)


@pytest.mark.parametrize("beta", [0.5, 1.0, 1.5])
def test_two_by_two_lattice_by_quadrature_over_links(beta):
    """Integrate the 2x2 lattice over its link angles directly, with the code's action.

    A maximal tree of 3 links is gauge fixed to 0 (exact: the integrand is
    gauge invariant), the other 5 angles run over a periodic grid of M points:
    the trapezoidal rule on a smooth periodic integrand is exact up to
    terms of order I_M(4 beta), far below the tolerance.
    """
    m = 16
    theory = U1Theory((2, 2), beta)
    grid = TWO_PI * torch.arange(m, dtype=torch.float64) / m - math.pi
    free = torch.cartesian_prod(*([grid] * 5))
    x = torch.zeros(free.shape[0], 2, 2, 2, dtype=torch.float64)
    # Tree: x_0(0,0), x_1(0,0), x_1(1,0) stay 0.
    x[:, 0, 0, 1], x[:, 0, 1, 0], x[:, 0, 1, 1] = free[:, 0], free[:, 1], free[:, 2]
    x[:, 1, 0, 1], x[:, 1, 1, 1] = free[:, 3], free[:, 4]
    action = theory.action(x)
    weight = torch.exp(-(action - action.min()))
    plaq = (weight * theory.plaquette(x)).sum() / weight.sum()
    assert plaq.item() == pytest.approx(exact_plaquette(beta, 4), abs=1e-10)
    assert abs(plaq.item() - infinite_volume_plaquette(beta)) > 1e-3  # finite volume matters


def test_sector_distribution_is_consistent():
    for beta, volume in ((1.0, 16), (4.0, 64), (6.0, 64)):
        charges, prob, plaq = sector_distribution(beta, volume, max_charge=12)
        assert prob.sum() == pytest.approx(1.0, abs=1e-10)
        np.testing.assert_allclose(prob, prob[::-1], atol=1e-13)  # Q -> -Q symmetry
        ok = prob > 1e-12
        total = (prob[ok] * plaq[ok]).sum()
        assert total == pytest.approx(exact_plaquette(beta, volume), abs=1e-10)
        # Sectors away from Q = 0 cost action: lower plaquette.
        assert np.all(np.diff(plaq[charges >= 0][: 3]) < 0)


def test_sector_distribution_large_volume_susceptibility():
    """For large V the plaquettes decouple: <Q^2>/V = <([phi]/2pi)^2> of one plaquette."""
    beta, volume = 1.0, 40 * 40
    charges, prob, _ = sector_distribution(beta, volume, max_charge=60)

    def moment(k):
        return quad(lambda p: p**k * math.exp(beta * math.cos(p)), -math.pi, math.pi)[0]

    chi = moment(2) / moment(0) / TWO_PI**2
    assert (prob * charges**2).sum() / volume == pytest.approx(chi, rel=1e-3)
