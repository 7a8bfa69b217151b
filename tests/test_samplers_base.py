"""The shared sampler layer: one acceptance and Metropolis selection, integrators as
coefficient lists applied by one routine, and ``run_chains`` for every kernel.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from theory_helpers import nan_on_chains

from dlhmc.lattice.su3 import SU3Theory
from dlhmc.lattice.u1 import U1Theory
from dlhmc.samplers.base import acceptance, metropolis, run_chains, sampling_mode
from dlhmc.samplers.hmc import HMC
from dlhmc.samplers.integrators import LEAPFROG, OMELYAN, Integrator, integrate
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics

INTEGRATORS = (LEAPFROG, OMELYAN)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _thermalized(theory, batch: int, n_traj: int, seed: int):
    generator = _gen(seed)
    kernel = HMC(theory, 10, 0.1)
    state = kernel.init(theory.hot_start(batch, generator))
    with torch.no_grad():
        for _ in range(n_traj):
            state, _ = kernel.step(state, generator)
    return state.x, generator


def _energy(theory, x, p):
    return theory.action(x) + theory.kinetic_energy(p)


# --- acceptance and selection ------------------------------------------------------------------


def test_acceptance_is_capped_exponential_and_flags_non_finite():
    log_ratio = torch.tensor([0.7, 0.0, -1.3, float("nan"), float("inf"), -float("inf")],
                             dtype=torch.float64, requires_grad=True)  # fmt: skip
    prob, divergent = acceptance(log_ratio)
    expected = torch.tensor([1.0, 1.0, math.exp(-1.3), 0.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(prob.detach(), expected, rtol=0, atol=1e-15)
    assert divergent.tolist() == [False, False, False, True, True, True]
    # Differentiable for training: d prob / d log_ratio = prob below the cap, 0 above it,
    # and 0 (not NaN) on the divergent chains.
    prob.sum().backward()
    grad = torch.tensor([0.0, 1.0, math.exp(-1.3), 0.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(log_ratio.grad, grad, rtol=0, atol=1e-15)


def test_metropolis_draws_one_uniform_per_chain_and_keeps_rejected_chains():
    """Decision ``u < A`` with one uniform per chain from the generator; a divergent (NaN)
    proposal never enters; the chosen links carry no gradient while ``A`` keeps its own."""
    theory = U1Theory((4, 4), 1.0)
    gen = _gen(4)
    x, x1 = theory.hot_start(5, gen), theory.hot_start(5, gen)
    x1[2] = float("nan")
    x1.requires_grad_(True)
    log_ratio = torch.tensor([0.0, -50.0, float("nan"), 0.0, -0.7], dtype=torch.float64,
                             requires_grad=True)  # fmt: skip
    prob, divergent = acceptance(log_ratio)
    expected_u = torch.rand(5, generator=_gen(99), dtype=torch.float64)
    chosen, accepted = metropolis(prob, x1, x, _gen(99))
    assert accepted.tolist() == (expected_u < prob.detach()).tolist()
    assert accepted[[0, 3]].all() and not accepted[[1, 2]].any()
    assert torch.equal(chosen[accepted], x1.detach()[accepted])
    assert torch.equal(chosen[~accepted], x[~accepted])
    assert not chosen.requires_grad and prob.requires_grad
    assert divergent.tolist() == [False, False, True, False, False]


def test_metropolis_accepts_with_the_given_probability():
    n = 40000
    prob = torch.full((n,), 0.3, dtype=torch.float64)
    _, accepted = metropolis(prob, torch.ones(n, 1), torch.zeros(n, 1), _gen(5))
    rate = accepted.double().mean().item()
    assert abs(rate - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)


_NaNOnChainsTheory = nan_on_chains(True, False, False, True)


def test_hmc_flags_divergent_trajectories_and_rejects_them():
    theory = _NaNOnChainsTheory((4, 4), 1.0)
    kernel = HMC(theory, 3, 0.05)
    state = kernel.init(theory.hot_start(4, _gen(0)))
    new, info = kernel.step(state, _gen(1))
    assert info.divergent.tolist() == theory.broken.tolist()
    assert (info.accept_prob[theory.broken] == 0).all()
    assert not info.accepted[theory.broken].any() and info.accepted[~theory.broken].all()
    assert torch.equal(new.x[theory.broken], state.x[theory.broken])
    assert torch.equal(new.force[theory.broken], state.force[theory.broken])


# --- integrators -------------------------------------------------------------------------------


def test_integrator_coefficients_are_checked():
    with pytest.raises(ValueError, match="palindromic"):
        Integrator("skew", kicks=(0.3, 0.7), drifts=(1.0,))
    with pytest.raises(ValueError, match="sum to 1"):
        Integrator("short", kicks=(0.5, 0.5), drifts=(0.9,))
    with pytest.raises(ValueError, match="integrator"):
        HMC(U1Theory((4, 4), 1.0), 4, 0.1, integrator="euler")


@pytest.mark.parametrize("theory", [U1Theory((4, 4), 2.0), SU3Theory((2, 2, 2, 2), 6.0)],
                         ids=["U1", "SU3"])  # fmt: skip
def test_leapfrog_is_the_hand_written_kick_drift_kick_bit_for_bit(theory):
    x0, gen = theory.hot_start(3, _gen(7)), _gen(8)
    p0 = theory.sample_momentum(3, gen)
    eps = 0.13
    # Hand-written: half kick, then (drift, full kick) with the last kick a half kick.
    p = p0 - 0.5 * eps * theory.force(x0)
    x = theory.evolve_links(x0, p, eps)
    p = p - eps * theory.force(x)
    x = theory.evolve_links(x, p, eps)
    p = p - eps * theory.force(x)
    x = theory.evolve_links(x, p, eps)
    f = theory.force(x)
    p = p - 0.5 * eps * f
    x1, p1, f1 = integrate(theory, x0, p0, theory.force(x0), 3, eps, LEAPFROG)
    assert torch.equal(x1, x) and torch.equal(p1, p) and torch.equal(f1, f)


class _CountingTheory(U1Theory):
    calls = 0

    def force(self, x):
        type(self).calls += 1
        return super().force(x)


@pytest.mark.parametrize("name, per_step", [("leapfrog", 1), ("omelyan", 2)])
def test_force_evaluations_are_counted(name, per_step):
    theory = _CountingTheory((4, 4), 2.0)
    kernel = HMC(theory, 5, 0.1, integrator=name)
    state = kernel.init(theory.hot_start(2, _gen(0)))
    _CountingTheory.calls = 0
    kernel.step(state, _gen(1))
    assert _CountingTheory.calls == kernel.force_evaluations == 5 * per_step


@pytest.mark.parametrize("integrator", INTEGRATORS, ids=lambda i: i.name)
def test_u1_reversible_to_round_off(integrator):
    theory = U1Theory((8, 8), 3.0)
    x, generator = _thermalized(theory, 8, 5, seed=0)
    p = theory.sample_momentum(8, generator)
    x1, p1, f1 = integrate(theory, x, p, theory.force(x), 25, 0.1, integrator)
    assert (torch.cos(x1) - torch.cos(x)).abs().max() > 0.5  # it moved
    x2, p2, _ = integrate(theory, x1, -p1, f1, 25, 0.1, integrator)
    assert (torch.cos(x2) - torch.cos(x)).abs().max() < 1e-11
    assert (torch.sin(x2) - torch.sin(x)).abs().max() < 1e-11
    assert (p2 + p).abs().max() < 1e-11


@pytest.mark.parametrize("integrator", INTEGRATORS, ids=lambda i: i.name)
def test_su3_reversible_to_round_off(integrator):
    theory = SU3Theory((2, 2, 2, 2), 6.0)
    x0 = theory.hot_start(2, _gen(16))
    p0 = theory.sample_momentum(2, _gen(17))
    x1, p1, f1 = integrate(theory, x0, p0, theory.force(x0), 20, 0.05, integrator)
    assert (x1 - x0).abs().max() > 0.1
    x2, p2, _ = integrate(theory, x1, -p1, f1, 20, 0.05, integrator)
    assert (x2 - x0).abs().max() < 1e-12
    assert (p2 + p0).abs().max() < 1e-10


def _energy_errors(theory, x, p, integrator, steps):
    h0 = _energy(theory, x, p)
    errors = []
    for eps in steps:
        x1, p1, _ = integrate(theory, x, p, theory.force(x), round(1.0 / eps), float(eps),
                              integrator)  # fmt: skip
        errors.append((_energy(theory, x1, p1) - h0).abs().mean().item())
    return np.array(errors)


def test_energy_error_scales_as_eps_squared_and_omelyan_constant_is_smaller():
    """Both are second order at fixed trajectory length; the minimum-norm choice of lambda
    makes Omelyan's constant smaller than the leapfrog's (physics.md: about 10x)."""
    theory = U1Theory((8, 8), 2.0)
    x, generator = _thermalized(theory, 64, 30, seed=1)
    p = theory.sample_momentum(64, generator)
    steps = np.array([0.2, 0.1, 0.05, 0.025])
    constants = {}
    for integrator in INTEGRATORS:
        errors = _energy_errors(theory, x, p, integrator, steps)
        slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
        assert slope == pytest.approx(2.0, abs=0.1), integrator.name
        constants[integrator.name] = errors[-1] / steps[-1] ** 2
    assert constants["omelyan"] / constants["leapfrog"] < 1.0


def test_su3_omelyan_energy_error_scales_as_eps_squared():
    theory = SU3Theory((2, 2, 2, 2), 6.0)
    x = _thermalized(theory, 2, 10, seed=3)[0]
    p = theory.sample_momentum(2, _gen(19))
    h0 = _energy(theory, x, p)
    dh = []
    for nlf in (4, 8, 16):
        x1, p1, _ = integrate(theory, x, p, theory.force(x), nlf, 0.8 / nlf, OMELYAN)
        dh.append(_energy(theory, x1, p1) - h0)
    for coarse, fine in zip(dh[:-1], dh[1:], strict=True):
        ratio = coarse / fine
        assert ((ratio > 3.7) & (ratio < 4.3)).all(), ratio


def test_omelyan_exp_minus_dh_averages_to_one():
    """<exp(-dH)> = 1 at equilibrium; errors from per-chain means of independent chains."""
    theory = U1Theory((8, 8), 2.0)
    x, generator = _thermalized(theory, 256, 40, seed=2)
    kernel = HMC(theory, 2, 0.5, integrator="omelyan")
    state = kernel.init(x)
    ratios = []
    with torch.no_grad():
        for _ in range(20):
            state, info = kernel.step(state, generator)
            ratios.append(torch.exp(-info.dH))
    ratios = torch.stack(ratios, dim=1)
    assert 0.5 < ratios.clamp(max=1).mean() < 0.95  # dH is far from zero
    per_chain = ratios.mean(dim=1).numpy()
    error = per_chain.std(ddof=1) / math.sqrt(per_chain.size)
    assert abs(per_chain.mean() - 1.0) < 4 * error


# --- run_chains --------------------------------------------------------------------------------


def test_run_chains_hmc_records_every_trajectory_as_the_kernel_steps():
    theory = U1Theory((4, 4), 2.0)
    kernel = HMC(theory, 4, 0.2)
    x0 = theory.hot_start(3, _gen(0))
    chains = run_chains(kernel, x0, 2, 5, _gen(1))
    names = {"plaq", "charge", "charge_real", "accept_prob", "accepted", "dH", "divergent"}
    assert set(chains.per_traj) == names
    assert all(v.shape == (3, 5) for v in chains.per_traj.values())
    assert chains.per_layer == {} and chains.layer_samples == 0
    gen, state = _gen(1), kernel.init(x0)
    with torch.no_grad():
        for t in range(7):
            state, info = kernel.step(state, gen)
            if t >= 2:
                plaq = theory.observables(state.x)["plaq"].numpy()
                assert np.array_equal(chains.per_traj["plaq"][:, t - 2], plaq)
                assert np.array_equal(chains.per_traj["dH"][:, t - 2], info.dH.numpy())
    assert not chains.per_traj["divergent"].any()


def test_run_chains_l2hmc_adds_sumlogdet_and_layer_means_without_changing_the_chains():
    theory = U1Theory((4, 4), 2.0)
    torch.manual_seed(0)
    dyn = L2HMCDynamics(theory, L2HMCConfig(nlf=3, hidden=(8,)))
    x0 = theory.hot_start(4, _gen(0))
    plain = run_chains(dyn, x0, 1, 6, _gen(1))
    layered = run_chains(dyn, x0, 1, 6, _gen(1), layer_steps={0, 5})
    assert "sumlogdet" in plain.per_traj
    assert all(v.shape == (4, 6) for v in layered.per_traj.values())
    for name, values in plain.per_traj.items():
        assert np.array_equal(values, layered.per_traj[name]), name
    assert layered.layer_samples == 2
    assert set(layered.per_layer) == {"plaq", "energy", "charge_real"}
    assert all(v.shape == (4,) for v in layered.per_layer.values())
    # Layer 0 is the input: its mean plaquette is that of the chains before trajectory 0,
    # i.e. after the thermalization trajectory; the chains after trajectory 5 end it.
    assert np.isfinite(layered.per_layer["energy"]).all()


def test_chains_run_in_inference_mode_unless_the_kernel_differentiates():
    """``sampling_mode``: inference mode (cheaper small operations) for kernels whose steps
    take no gradients, plain no_grad for flow HMC, whose force is autograd through the flow."""
    from dlhmc.samplers.flow_hmc import FlowHMC
    from dlhmc.samplers.flow_imh import FlowIMH
    from dlhmc.samplers.l2hmc import L2HMCDynamics

    assert FlowHMC.differentiates
    assert not (HMC.differentiates or FlowIMH.differentiates or L2HMCDynamics.differentiates)
    for differentiates in (False, True):
        with sampling_mode(SimpleNamespace(differentiates=differentiates)):
            assert torch.is_inference_mode_enabled() is not differentiates
            assert not torch.is_grad_enabled()
