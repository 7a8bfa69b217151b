"""4D SU(3) Wilson theory: force, invariances, Wilson flow, clover charge and HMC exactness."""

import math

import numpy as np
import pytest
import torch

from dlhmc.group import su3
from dlhmc.lattice import make_theory
from dlhmc.lattice.su3 import SU3Theory, gauge_transform
from dlhmc.samplers.hmc import HMC
from dlhmc.samplers.integrators import integrate


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _rough(theory, batch, scale, seed):
    """Links ``exp(i scale omega T)``, Gaussian ``omega`` (rough for scale ~ 1)."""
    omega = torch.randn(theory.momentum_shape(batch), generator=_gen(seed), dtype=torch.float64)
    return su3.expi_components(scale * omega).to(theory.dtype)


def _time_reflection(x):
    """``n_t -> -n_t``: ``U'_0(n) = U_0(Tn - e0)^dagger``, ``U'_i(n) = U_i(Tn)``."""
    flipped = torch.flip(x, dims=(2,))
    spatial = torch.roll(flipped[:, 1:], 1, dims=2)
    return torch.cat((flipped[:, :1].mH, spatial), dim=1)


def _flux_links(lattice, fluxes):
    """Abelian links of uniform field strength, embedded as ``diag(e^{i theta}, e^{-i theta}, 1)``.

    ``fluxes = {(mu, nu): n}`` for two disjoint planes: plane (mu, nu) carries
    ``n`` flux quanta, ``phi = 2 pi n / (L_mu L_nu)`` per plaquette (the twist
    sits on the last slice along mu).  A classical solution whose clover charge
    is exactly ``2 eps_{mu nu rho sigma} prod_planes [L_mu L_nu sin(phi) / 2pi]``
    (-> ``2 eps n n'`` in the continuum).
    """
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in lattice], indexing="ij")
    theta = torch.zeros((4, *lattice), dtype=torch.float64)
    for (mu, nu), n in fluxes.items():
        phi = 2 * math.pi * n / (lattice[mu] * lattice[nu])
        theta[nu] = phi * grids[mu]
        theta[mu] = torch.where(grids[mu] == lattice[mu] - 1, -phi * lattice[mu] * grids[nu], 0.0)
    links = torch.zeros((1, 4, *lattice, 3, 3), dtype=torch.complex128)
    links[..., 0, 0] = torch.polar(torch.ones_like(theta), theta)
    links[..., 1, 1] = torch.polar(torch.ones_like(theta), -theta)
    links[..., 2, 2] = 1
    return links


def _single_plaquette(beta, n=96):
    """``<Re Tr U / 3>`` of one SU(3) matrix with weight ``exp(beta/3 Re Tr U)`` (Weyl integral).

    The strong-coupling plaquette is this number plus ``O(u^5)`` (closed cubes),
    ``~3e-6`` at beta = 1; the periodic trapezoid rule is exact to round-off here.
    """
    th = np.arange(n) * 2 * np.pi / n
    t1, t2 = np.meshgrid(th, th, indexing="ij")
    z1, z2, z3 = np.exp(1j * t1), np.exp(1j * t2), np.exp(-1j * (t1 + t2))
    vandermonde = np.abs((z1 - z2) * (z1 - z3) * (z2 - z3)) ** 2
    retr = (z1 + z2 + z3).real
    w = vandermonde * np.exp(beta / 3 * retr)
    return float((w * retr / 3).sum() / w.sum())


# ---- construction -------------------------------------------------------------------------------


def test_check_lattice_and_factory():
    with pytest.raises(ValueError, match="4 extents"):
        SU3Theory.check_lattice((4, 4, 4))
    with pytest.raises(ValueError, match=">= 2"):
        SU3Theory.check_lattice((4, 4, 1, 4))
    with pytest.raises(ValueError, match="4 extents"):
        make_theory("SU3", (4, 4), 6.0)
    th = make_theory("SU3", (2, 2, 2, 4), 6.0, precision="single")
    assert th.dtype == torch.complex64 and th.name == "SU3"
    assert th.sample_momentum(3, _gen()).dtype == torch.float32
    assert th.sample_momentum(3, _gen()).shape == (3, 4, 2, 2, 2, 4, 8)
    assert th.with_beta(5.0).beta == 5.0 and th.beta == 6.0


def test_cold_start():
    th = SU3Theory((2, 2, 2, 4), 6.0)
    x = th.cold_start(2)
    assert x.shape == (2, 4, 2, 2, 2, 4, 3, 3)
    assert torch.allclose(th.plaquette(x), torch.ones(2, dtype=torch.float64))
    assert th.action(x).abs().max() < 1e-12
    assert th.force(x).abs().max() < 1e-14
    assert th.clover_charge(x).abs().max() < 1e-14


def test_hot_start_unitary_and_disordered():
    th = SU3Theory((4, 4, 4, 4), 6.0)
    x = th.hot_start(2, _gen(1))
    assert su3.unitarity_violation(x) < 1e-13
    # Haar links: <Re Tr U_P / 3> = 0 with per-plaquette variance 1/18.
    assert th.plaquette(x).abs().max() < 4 * math.sqrt(1 / 18 / (6 * 256))


# ---- force --------------------------------------------------------------------------------------


@pytest.mark.parametrize("lattice", [(2, 2, 2, 2), (2, 3, 2, 4)])
@pytest.mark.parametrize("start", ["hot", "rough"])
def test_force_is_derivative_along_generators(lattice, start):
    """``F^a(link) = d/dt S(exp(i t T^a) U)|_0``: autograd through ``torch.linalg.matrix_exp``."""
    th = SU3Theory(lattice, 5.5)
    x = th.hot_start(2, _gen(2)) if start == "hot" else _rough(th, 2, 0.4, 3)
    t = torch.zeros(th.momentum_shape(2), dtype=torch.float64, requires_grad=True)
    moved = torch.linalg.matrix_exp(1j * su3.hermitian(t)) @ x
    (grad,) = torch.autograd.grad(th.action(moved).sum(), t)
    force = th.force(x)
    assert force.abs().max() > 0.1
    assert (force - grad).abs().max() < 1e-12


def test_force_finite_difference_single_link():
    th = SU3Theory((2, 2, 2, 2), 6.0)
    x = _rough(th, 1, 0.7, 4)
    force = th.force(x)
    h = 1e-5
    for mu, site, a in [(0, (0, 0, 0, 0), 0), (2, (1, 0, 1, 0), 4), (3, (1, 1, 1, 1), 7)]:
        omega = torch.zeros(8, dtype=torch.float64)
        omega[a] = h
        rot = su3.expi_components(omega)
        xp, xm = x.clone(), x.clone()
        xp[(0, mu, *site)] = rot @ x[(0, mu, *site)]
        xm[(0, mu, *site)] = rot.mH @ x[(0, mu, *site)]
        fd = (th.action(xp) - th.action(xm)) / (2 * h)
        assert abs(fd.item() - force[(0, mu, *site, a)].item()) < 1e-7


def test_force_differentiable():
    """L2HMC backpropagates through the force: autograd agrees with finite differences."""
    th = SU3Theory((2, 2, 2, 2), 6.0)
    base = _rough(th, 1, 0.5, 22)
    direction = torch.randn(th.momentum_shape(1), generator=_gen(23), dtype=torch.float64)
    weights = torch.randn(th.momentum_shape(1), generator=_gen(24), dtype=torch.float64)

    def objective(t):
        return (th.force(th.evolve_links(base, direction, t)) * weights).sum()

    t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(objective(t), t)
    h = 1e-5
    fd = (objective(torch.tensor(h)) - objective(torch.tensor(-h))) / (2 * h)
    assert abs(grad.item() - fd.item()) < 1e-6 * max(1.0, abs(fd.item()))


def test_single_precision_matches_double():
    th64 = SU3Theory((2, 2, 2, 4), 6.0)
    th32 = SU3Theory((2, 2, 2, 4), 6.0, precision="single")
    x = th64.hot_start(2, _gen(5))
    f32 = th32.force(x.to(torch.complex64))
    assert f32.dtype == torch.float32
    assert (f32.double() - th64.force(x)).abs().max() < 1e-4
    assert (th32.action(x.to(torch.complex64)).double() - th64.action(x)).abs().max() < 1e-3


def test_single_precision_dh_is_not_rounded_away():
    """``dH`` is a difference of energies ~ 1e4 - 1e5: rounded to float32 (ulp ~ 4e-3 at 6^4)
    it would carry errors as large as the ``dH`` of a fine trajectory.  The energies of
    complex64 links and float32 momenta must come out in double precision, so ``dH``
    agrees with its float64 evaluation on the very same (float32) states."""
    th32 = SU3Theory((6, 6, 6, 6), 6.0, precision="single")
    gen = _gen(27)
    x, p = th32.hot_start(4, gen), th32.sample_momentum(4, gen)
    x1, p1, _ = integrate(th32, x, p, th32.force(x), 1, 0.01)
    dh32 = th32.action(x1) + th32.kinetic_energy(p1) - th32.action(x) - th32.kinetic_energy(p)
    th64 = SU3Theory((6, 6, 6, 6), 6.0)
    exact = th64.action(x1.to(torch.complex128)) - th64.action(x.to(torch.complex128))
    exact = exact + 0.5 * (p1.double().square() - p.double().square()).flatten(1).sum(1)
    assert (dh32.double() - exact).abs().max() < 2e-4


# ---- invariances --------------------------------------------------------------------------------


def test_gauge_invariance():
    th = SU3Theory((2, 2, 4, 4), 6.0, flow_time=0.2, flow_step=0.05)
    x = _rough(th, 2, 0.6, 6)
    g = su3.haar((2, *th.lattice), _gen(7))
    y = gauge_transform(x, g)
    assert (y - x).abs().max() > 0.1
    assert torch.allclose(th.action(y), th.action(x), rtol=1e-13)
    assert torch.allclose(th.plaquette(y), th.plaquette(x), rtol=1e-13)
    assert torch.allclose(th.charge_real(y), th.charge_real(x), atol=1e-13)
    obs_x, obs_y = th.observables(x), th.observables(y)
    assert torch.allclose(obs_y["charge"], obs_x["charge"], atol=1e-11)
    assert th.charge_real(x).abs().min() > 1e-4
    # The force is covariant (adjoint rotation per link): its per-link norm is invariant.
    norm = lambda f: f.square().sum(-1)  # noqa: E731
    assert torch.allclose(norm(th.force(y)), norm(th.force(x)), rtol=1e-10, atol=1e-12)


def test_time_reflection_flips_charge():
    th = SU3Theory((4, 2, 2, 4), 6.0, flow_time=0.3, flow_step=0.05)
    x = _rough(th, 2, 0.5, 8)
    y = _time_reflection(x)
    assert torch.allclose(th.action(y), th.action(x), rtol=1e-13)
    q = th.charge_real(x)
    assert q.abs().min() > 1e-4
    assert torch.allclose(th.charge_real(y), -q, atol=1e-13)
    assert torch.allclose(th.observables(y)["charge"], -th.observables(x)["charge"], atol=1e-11)


# ---- clover charge and Wilson flow --------------------------------------------------------------


@pytest.mark.parametrize(
    "lattice,fluxes,eps",
    [
        ((4, 4, 4, 4), {(0, 1): 1, (2, 3): 1}, 1),
        ((4, 6, 4, 6), {(0, 1): 1, (2, 3): -2}, 1),
        ((4, 4, 6, 4), {(0, 2): 1, (1, 3): 1}, -1),
        ((6, 4, 4, 4), {(0, 3): -1, (1, 2): 1}, 1),
    ],
)
def test_clover_charge_of_constant_flux(lattice, fluxes, eps):
    x = _flux_links(lattice, fluxes)
    th = SU3Theory(lattice, 6.0, flow_time=0.5, flow_step=0.05)
    exact, continuum = 2.0 * eps, 2.0 * eps
    for (mu, nu), n in fluxes.items():
        area = lattice[mu] * lattice[nu]
        exact *= area * math.sin(2 * math.pi * n / area) / (2 * math.pi)
        continuum *= n
    assert abs(exact - continuum) < 0.15 * abs(continuum)
    assert abs(th.clover_charge(x).item() - exact) < 1e-12
    # A classical solution: the force vanishes and the flow leaves it (and Q) alone.
    assert th.force(x).abs().max() < 1e-12
    assert abs(th.observables(x)["charge"].item() - exact) < 1e-9


def test_charge_near_cold_is_small_and_differentiable():
    th = SU3Theory((2, 2, 2, 4), 6.0)
    x = _rough(th, 1, 0.05, 9)
    assert th.charge_real(x).abs().item() < 1e-4
    t = torch.zeros(th.momentum_shape(1), dtype=torch.float64, requires_grad=True)
    y = su3.expi_components(t) @ _rough(th, 1, 0.5, 10)
    (grad,) = torch.autograd.grad(th.charge_real(y).sum(), t)
    direction = torch.randn(t.shape, generator=_gen(11), dtype=torch.float64)
    h = 1e-6
    base = _rough(th, 1, 0.5, 10)
    qp = th.charge_real(su3.expi_components(h * direction) @ base)
    qm = th.charge_real(su3.expi_components(-h * direction) @ base)
    assert abs(((qp - qm) / (2 * h)).item() - (grad * direction).sum().item()) < 1e-7


def test_flow_decays_plane_wave_like_heat_equation():
    """Small abelian wave ``U_1 = exp(i alpha cos(k t) T^3)`` decays as ``exp(-4 sin^2(k/2) tau)``.

    The linearized Wilson flow is ``d alpha / d tau = Laplacian alpha``; this
    fixes the normalization of the flow time (``g0^2 = 6/beta``) and the RK3 steps.
    """
    nt, alpha0, tau = 8, 1e-5, 0.8
    th = SU3Theory((nt, 2, 2, 2), 6.0, flow_step=0.04)
    k = 2 * math.pi / nt
    omega = torch.zeros(th.momentum_shape(1), dtype=torch.float64)
    wave = alpha0 * torch.cos(k * torch.arange(nt, dtype=torch.float64))
    omega[0, 1, ..., 2] = wave[:, None, None, None]
    x = su3.expi_components(omega)
    flowed = th.flow(x, tau)
    alpha = 2 * torch.angle(flowed[0, 1, :, 0, 0, 0, 0, 0])
    expected = wave * math.exp(-4 * math.sin(k / 2) ** 2 * tau)
    assert (alpha - expected).abs().max() < 1e-6 * alpha0
    assert (flowed[0, 0] - torch.eye(3, dtype=x.dtype)).abs().max() < 1e-12


def test_flow_reduces_action_monotonically_and_stays_unitary():
    th = SU3Theory((4, 4, 4, 4), 6.0)
    x = th.hot_start(1, _gen(12))
    actions = [th.action(x).item()]
    for _ in range(8):
        x = th.flow(x, 0.1)
        actions.append(th.action(x).item())
    assert all(b < a for a, b in zip(actions[:-1], actions[1:], strict=True))
    assert actions[-1] < 0.5 * actions[0]
    assert su3.unitarity_violation(x) < 1e-13


def test_flow_step_converged():
    """The default RK3 step is converged for the charge, even on very rough links."""
    th = SU3Theory((4, 4, 4, 4), 6.0, flow_time=1.0)
    x = _rough(th, 1, 1.0, 13)
    coarse = th.clover_charge(th.flow(x))
    fine = th.clover_charge(SU3Theory((4, 4, 4, 4), 6.0, flow_step=0.025).flow(x))
    assert abs(fine).item() > 0.1
    assert abs(coarse - fine).item() < 1e-3


# ---- HMC exactness ------------------------------------------------------------------------------


def test_evolve_links_per_chain_eps():
    th = SU3Theory((2, 2, 2, 2), 6.0)
    x = th.hot_start(2, _gen(14))
    p = th.sample_momentum(2, _gen(15))
    both = th.evolve_links(x, p, torch.tensor([0.1, 0.3], dtype=torch.float64))
    assert torch.allclose(both[0], th.evolve_links(x[:1], p[:1], 0.1)[0])
    assert torch.allclose(both[1], th.evolve_links(x[1:], p[1:], 0.3)[0])


def test_leapfrog_reversible():
    th = SU3Theory((2, 2, 2, 4), 6.0)
    x0 = _rough(th, 2, 0.5, 16)
    p0 = th.sample_momentum(2, _gen(17))
    x1, p1, f1 = integrate(th, x0, p0, th.force(x0), 20, 0.05)
    assert (x1 - x0).abs().max() > 0.1
    x2, p2, _ = integrate(th, x1, -p1, f1, 20, 0.05)
    assert (x2 - x0).abs().max() < 1e-12
    assert (p2 + p0).abs().max() < 1e-10


def test_energy_error_scales_as_eps_squared():
    th = SU3Theory((4, 4, 4, 4), 6.0)
    x = _rough(th, 2, 0.3, 18)
    p = th.sample_momentum(2, _gen(19))
    h0 = th.action(x) + th.kinetic_energy(p)
    dh = []
    for nlf in (10, 20, 40):
        x1, p1, _ = integrate(th, x, p, th.force(x), nlf, 0.5 / nlf)
        dh.append(th.action(x1) + th.kinetic_energy(p1) - h0)
    for coarse, fine in zip(dh[:-1], dh[1:], strict=True):
        ratio = coarse / fine
        assert ((ratio > 3.7) & (ratio < 4.3)).all(), ratio


def test_unitarity_over_many_trajectories():
    th = SU3Theory((2, 2, 2, 2), 6.0)
    gen = _gen(20)
    kernel = HMC(th, 10, 0.1)
    state = kernel.init(th.hot_start(2, gen))
    accepted = 0
    for _ in range(150):
        state, info = kernel.step(state, gen)
        accepted += int(info.accepted.sum())
    assert accepted > 100
    assert su3.unitarity_violation(state.x) < 1e-13


def test_same_seed_same_chain():
    th = SU3Theory((2, 2, 2, 4), 6.0)

    def run():
        gen = _gen(26)
        kernel = HMC(th, 5, 0.1)
        state = kernel.init(th.hot_start(2, gen))
        for _ in range(3):
            state, info = kernel.step(state, gen)
        return state.x, info.dH

    (x1, dh1), (x2, dh2) = run(), run()
    assert torch.equal(x1, x2) and torch.equal(dh1, dh2)


def test_single_precision_stays_unitary():
    """complex64 links drift off SU(3) by ~3e-8 per update unless reunitarized."""
    th = SU3Theory((2, 2, 2, 2), 6.0, precision="single")
    gen = _gen(25)
    kernel = HMC(th, 10, 0.1)
    state = kernel.init(th.hot_start(2, gen))
    for _ in range(200):
        state, _ = kernel.step(state, gen)
    assert state.x.dtype == torch.complex64
    assert su3.unitarity_violation(state.x) < 2e-6


def test_strong_coupling_plaquette_and_exp_minus_dh():
    """beta = 1 on 3^4: <plaq> = beta/18 + beta^2/216 + ... and <exp(-dH)> = 1.

    Chains are independent replicas: errors come from the spread of per-chain
    means, which includes autocorrelation.  The reference is the single-plaquette
    integral ``u(beta)`` (exact up to ``O(u^5) ~ 3e-6``); the truncated series
    differs from it by ``6e-5``, which the series check adds to its tolerance.
    Closed surfaces wrapping a 3^4 torus need >= 9 plaquettes: negligible.
    """
    beta, chains, n_therm, n_traj = 1.0, 16, 15, 90
    th = SU3Theory((3, 3, 3, 3), beta)
    gen = _gen(21)
    kernel = HMC(th, 4, 0.25)
    state = kernel.init(th.hot_start(chains, gen))
    for _ in range(n_therm):
        state, _ = kernel.step(state, gen)
    plaq, boltz, acc = [], [], []
    for _ in range(n_traj):
        state, info = kernel.step(state, gen)
        plaq.append(th.plaquette(state.x))
        boltz.append(torch.exp(-info.dH))
        acc.append(info.accept_prob)
    plaq, boltz = torch.stack(plaq, 1), torch.stack(boltz, 1)
    assert 0.5 < torch.stack(acc).mean() < 0.95  # a real test of exp(-dH), not dH ~ 0

    def mean_err(series):
        per_chain = series.mean(1)
        return per_chain.mean().item(), per_chain.std().item() / math.sqrt(chains)

    p, dp = mean_err(plaq)
    exact = _single_plaquette(beta)
    series = beta / 18 + beta**2 / 216
    assert abs(p - exact) < 4 * dp + 1e-5, (p, dp, exact)
    assert abs(p - series) < 4 * dp + abs(exact - series) + 1e-5, (p, dp, series)
    assert dp < 1e-3
    b, db = mean_err(boltz)
    assert abs(b - 1) < 4 * db, (b, db)


@pytest.mark.slow
def test_weak_coupling_plaquette_independent_of_step_size():
    """beta = 5.5 on 4^4: HMC is exact, so the plaquette must not depend on eps.

    Thermalization runs molecular-dynamics trajectories without the accept
    step: from a cold (or hot) start ``dH`` grows like ``V eps^2`` (not the
    equilibrium ``V eps^4``), so Metropolis would reject every proposal there.

    A fine step (acceptance ~1) and a coarse one (acceptance well below 1) at
    the same trajectory length give the same plaquette within errors, and the
    coarse run satisfies ``<exp(-dH)> = 1``.  Errors from per-chain means of
    independent chains (autocorrelation included).
    """
    chains, n_therm, n_traj = 16, 30, 100
    th = SU3Theory((4, 4, 4, 4), 5.5)
    results = {}
    for eps, nlf in ((0.05, 20), (0.125, 8)):
        gen = _gen(30)
        x = th.cold_start(chains)
        for _ in range(n_therm):
            x, _, _ = integrate(th, x, th.sample_momentum(chains, gen), th.force(x), 20, 0.05)
        kernel = HMC(th, nlf, eps)
        state = kernel.init(x)
        plaq, boltz, acc = [], [], []
        for _ in range(n_traj):
            state, info = kernel.step(state, gen)
            plaq.append(th.plaquette(state.x))
            boltz.append(torch.exp(-info.dH))
            acc.append(info.accept_prob)
        per_chain = torch.stack(plaq, 1).mean(1)
        results[eps] = (per_chain.mean().item(), per_chain.std().item() / math.sqrt(chains))
        results[eps, "acc"] = torch.stack(acc).mean().item()
        b = torch.stack(boltz, 1).mean(1)
        assert abs(b.mean().item() - 1) < 4 * b.std().item() / math.sqrt(chains)
    (p1, e1), (p2, e2) = results[0.05], results[0.125]
    assert results[0.05, "acc"] > 0.9 and results[0.125, "acc"] < 0.8
    assert abs(p1 - p2) < 4 * math.hypot(e1, e2), results
    assert e1 < 4e-3 and e2 < 4e-3  # resolves a step-size bias of ~1.5e-2 (3% of 1 - plaq)


def test_force_differentiable_after_sampling_in_inference_mode():
    """The cached maps of dlhmc.group.su3 made first under inference mode (a chain of `dlhmc
    infer`) must still enter autograd afterwards in the same process."""
    from dlhmc.group import su3

    th = SU3Theory((2, 2, 2, 2), 6.0)
    x = _rough(th, 1, 0.5, 22)
    su3._maps_on.cache_clear()
    with torch.inference_mode():
        th.force(x)
    t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    direction = torch.randn(th.momentum_shape(1), generator=_gen(23), dtype=torch.float64)
    (grad,) = torch.autograd.grad(th.force(th.evolve_links(x, direction, t)).sum(), t)
    assert torch.isfinite(grad)
