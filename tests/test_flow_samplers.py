"""The two exact samplers of a flow: independence Metropolis (flow IMH) and HMC in the latent
variables (flow HMC).

Both must be exact whatever the flow, so they are tested with analytic flows
(``flow_helpers``): the identity, whose IMH proposals come from the Haar prior and whose flow
HMC is HMC, and gauge-equivariant plaquette circle maps with closed-form ``log|J|``.  The
exactness checks compare with the exact finite-volume U(1) values, with Gamma-method errors of
the chains (``dlhmc.analysis.autocorr``), and the same check with a misstated ``log|J|`` must
fail: the tests can tell a wrong sampler.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from flow_helpers import IdentityFlow, PlaquetteFlow, wrap

from dlhmc.analysis.autocorr import gamma_method
from dlhmc.flows.model import FlowConfig, GaugeFlow
from dlhmc.lattice.u1 import U1Theory
from dlhmc.lattice.u1_exact import exact_plaquette, sector_distribution
from dlhmc.samplers.base import State, run_chains
from dlhmc.samplers.flow_hmc import FlowHMC, LatentAction
from dlhmc.samplers.flow_imh import FlowIMH, log_density
from dlhmc.samplers.hmc import HMC
from dlhmc.samplers.integrators import integrate


def exact_values(beta: float, volume: int) -> dict[str, float]:
    charges, prob, _ = sector_distribution(beta, volume, max_charge=6)
    return {"plaq": exact_plaquette(beta, volume), "charge2": float((prob * charges**2).sum())}


def pulls(per_traj: dict[str, np.ndarray], beta: float, volume: int) -> dict[str, float]:
    """(chain mean - exact) / Gamma-method error for the plaquette and ``Q_Z^2``, over all chains
    as replicas; the error includes the autocorrelation of each chain."""
    exact = exact_values(beta, volume)
    result = {}
    for name, data in (("plaq", per_traj["plaq"]), ("charge2", per_traj["charge"] ** 2)):
        gamma = gamma_method(data)
        assert not gamma.frozen, (name, gamma.reason)
        result[name] = (gamma.mean - exact[name]) / gamma.mean_err
        result[name + "_err"] = gamma.mean_err
    return result


def chains(kernel, chains: int, therm: int, traj: int, seed: int) -> dict[str, np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    x = kernel.theory.hot_start(chains, generator)
    return run_chains(kernel, x, therm, traj, generator).per_traj


# --- independence Metropolis --------------------------------------------------------------


@pytest.mark.parametrize("flow, beta, traj", [(IdentityFlow, 0.5, 800), (PlaquetteFlow, 1.0, 400)],
                         ids=["haar-proposals", "plaquette-flow"])
def test_imh_reproduces_the_exact_plaquette_and_charge(flow, beta, traj):
    """Exact whatever the flow: with proposals from the Haar prior (no flow) as with a
    nontrivial one; the tolerance is 4 Gamma-method errors, and the errors are small enough
    that the misstated Jacobian below is many of them away.  Haar proposals accept ~30 %,
    with ``tau_int(plaq)`` up to ~20: their chains are longer."""
    theory = U1Theory((4, 4), beta)
    records = chains(FlowIMH(flow(theory)), chains=64, therm=30, traj=traj, seed=3)
    result = pulls(records, beta, 16)
    assert abs(result["plaq"]) < 4 and abs(result["charge2"]) < 4, result
    assert result["plaq_err"] < 0.01
    assert 0.05 < records["accepted"].mean() < 0.95


@pytest.mark.parametrize("sampler", ["imh", "flow_hmc"])
def test_a_wrong_jacobian_fails_the_exactness_test(sampler):
    """The same check as above with ``log|J|`` reported as 0 (a volume-preserving claim for a
    map that is not): the chains then sample the wrong distribution, and the test sees it."""
    theory = U1Theory((4, 4), 1.0)
    flow = PlaquetteFlow(theory, jacobian_scale=0.0)
    kernel = FlowIMH(flow) if sampler == "imh" else FlowHMC(flow, 5, 0.2)
    records = chains(kernel, chains=64, therm=30, traj=200 if sampler == "imh" else 100, seed=3)
    # The wrong target mixes worse than the right one, so its Gamma window may not converge:
    # the error is the larger of the Gamma-method one and the spread of the independent
    # chains' means (honest whatever the autocorrelation).
    per_chain = records["plaq"].mean(axis=1)
    error = max(gamma_method(records["plaq"]).mean_err,
                per_chain.std(ddof=1) / math.sqrt(per_chain.size))
    assert abs(per_chain.mean() - exact_plaquette(1.0, 16)) > 8 * error


def test_imh_acceptance_is_the_weight_ratio_and_records_the_proposals_weights():
    theory = U1Theory((4, 6), 1.0)
    flow = PlaquetteFlow(theory)
    kernel = FlowIMH(flow)
    generator = torch.Generator().manual_seed(4)
    state = kernel.init(theory.hot_start(32, generator))
    old_log_w = -(state.action + state.log_q)
    with torch.no_grad():
        new, info = kernel.step(state, generator)
    proposal_log_w = info.extras["log_weight"]
    assert proposal_log_w.dtype == torch.float64
    torch.testing.assert_close(info.dH, old_log_w - proposal_log_w)
    torch.testing.assert_close(info.accept_prob, torch.exp(-info.dH).clamp(max=1))
    # The chosen state carries the log density and action of its links.
    torch.testing.assert_close(new.log_q, log_density(flow, new.x))
    torch.testing.assert_close(new.action, theory.action(new.x))
    kept = ~info.accepted
    assert info.accepted.any() and kept.any()
    assert torch.equal(new.x[kept], state.x[kept])
    torch.testing.assert_close(-(new.action + new.log_q)[info.accepted],
                               proposal_log_w[info.accepted])


def test_the_inverse_gives_a_flow_sample_its_own_log_density():
    """A start not drawn from the flow gets ``log q`` by the inverse map: for flow samples it
    must agree with the density the forward pass reported."""
    theory = U1Theory((4, 4), 1.0)
    flow = PlaquetteFlow(theory)
    x, log_q = flow.sample(8, torch.Generator().manual_seed(1))
    torch.testing.assert_close(log_density(flow, x), log_q)


def test_imh_rejects_a_diverged_proposal_and_keeps_the_state():
    theory = U1Theory((4, 4), 1.0)

    class Broken(IdentityFlow):
        def sample(self, n, generator):
            x, log_q = super().sample(n, generator)
            return x, log_q.index_fill(0, torch.tensor([0, 2]), float("nan"))

    kernel = FlowIMH(Broken(theory))
    generator = torch.Generator().manual_seed(2)
    state = kernel.init(theory.hot_start(4, generator))
    with torch.no_grad():
        new, info = kernel.step(state, generator)
    assert info.divergent.tolist()[0] and info.divergent.tolist()[2]
    assert not info.accepted[[0, 2]].any() and (info.accept_prob[[0, 2]] == 0).all()
    assert torch.equal(new.x[[0, 2]], state.x[[0, 2]])


# --- flow HMC ------------------------------------------------------------------------------


def test_flow_hmc_with_the_identity_flow_is_hmc():
    """Same seed, same chains: the momenta and uniforms are drawn in HMC's order and the
    autograd force through the identity is the analytic force (to round-off)."""
    theory = U1Theory((4, 6), 2.0)
    hmc = chains(HMC(theory, 6, 0.15), chains=16, therm=5, traj=20, seed=7)
    flow_hmc = chains(FlowHMC(IdentityFlow(theory), 6, 0.15), chains=16, therm=5, traj=20,
                      seed=7)
    assert hmc.keys() == flow_hmc.keys()
    np.testing.assert_array_equal(hmc["accepted"], flow_hmc["accepted"])
    np.testing.assert_array_equal(hmc["charge"], flow_hmc["charge"])
    for name in ("plaq", "charge_real", "dH", "accept_prob"):
        np.testing.assert_allclose(flow_hmc[name], hmc[name], rtol=0, atol=1e-9, err_msg=name)
    assert 0 < hmc["accepted"].mean() < 1


def test_flow_hmc_reproduces_the_exact_plaquette_and_charge():
    theory = U1Theory((4, 4), 1.0)
    records = chains(FlowHMC(PlaquetteFlow(theory), 5, 0.2), chains=64, therm=30, traj=150,
                     seed=5)
    result = pulls(records, 1.0, 16)
    assert abs(result["plaq"]) < 4 and abs(result["charge2"]) < 4, result
    assert result["plaq_err"] < 0.01


def test_flow_hmc_records_the_links_of_its_latent_variables():
    """The state moves ``z``; the chain file gets the observables of ``U = f(z)``."""
    theory = U1Theory((4, 4), 1.0)
    flow = PlaquetteFlow(theory)
    kernel = FlowHMC(flow, 3, 0.2)
    generator = torch.Generator().manual_seed(6)
    x = theory.hot_start(8, generator)
    state = kernel.init(x)
    assert wrap(state.links - x).abs().max() < 1e-12  # f(f^-1(x)) = x
    state, _ = kernel.step(state, generator)
    u, logdet = flow(state.x)
    torch.testing.assert_close(state.links, u)
    torch.testing.assert_close(state.action, theory.action(u) - logdet)
    assert wrap(state.links - state.x).abs().max() > 0.1  # z and U differ
    plain = State(x=x, action=theory.action(x))
    assert plain.links is x  # every other sampler's links are its variables


def test_flow_hmc_force_is_the_gradient_of_the_latent_action():
    theory = U1Theory((4, 4), 1.5)
    latent = LatentAction(PlaquetteFlow(theory))
    z = theory.hot_start(2, torch.Generator().manual_seed(8))
    force = latent.force(z)
    direction = torch.randn(z.shape, generator=torch.Generator().manual_seed(9),
                            dtype=z.dtype)
    h = 1e-6
    plus, _ = latent.evaluate(z + h * direction)
    minus, _ = latent.evaluate(z - h * direction)
    numeric = (plus - minus) / (2 * h)
    torch.testing.assert_close((force * direction).sum(dim=(1, 2, 3)), numeric, rtol=1e-6,
                               atol=1e-6)


def test_flow_hmc_integrator_is_reversible_in_z():
    """Leapfrog in ``z`` with the force through the flow, then the momenta flipped: back to the
    start (the reversibility that makes ``exp(-dH)`` the right acceptance)."""
    theory = U1Theory((4, 6), 2.0)
    latent = LatentAction(PlaquetteFlow(theory))
    generator = torch.Generator().manual_seed(10)
    z0 = theory.hot_start(4, generator)
    p0 = theory.sample_momentum(4, generator)
    z1, p1, f1 = integrate(latent, z0, p0, latent.force(z0), 8, 0.1)
    z2, p2, _ = integrate(latent, z1, -p1, f1, 8, 0.1)
    assert wrap(z1 - z0).abs().max() > 0.1
    assert wrap(z2 - z0).abs().max() < 1e-10
    assert (p2 + p0).abs().max() < 1e-10


@pytest.mark.parametrize(("nlf", "eps", "option"), [(0, 0.1, "nlf"), (3, 0.0, "eps"),
                                                    (3, float("nan"), "eps")])
def test_flow_hmc_refuses_bad_trajectories(nlf, eps, option):
    with pytest.raises(ValueError, match=f"^{option}: "):
        FlowHMC(IdentityFlow(U1Theory((4, 4), 1.0)), nlf, eps)


# --- the package's flow ------------------------------------------------------------------------


def gauge_flow(theory, layers: int, seed: int = 0, scale: float = 0.5) -> GaugeFlow:
    """A :class:`GaugeFlow` with weights far from its (near-identity) initialization."""
    torch.manual_seed(seed)
    flow = GaugeFlow(theory, FlowConfig(layers=layers, hidden=(4,), local_period=4))
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))
    return flow


def test_flow_hmc_with_a_flow_of_zero_layers_is_hmc():
    theory = U1Theory((4, 4), 2.0)
    hmc = chains(HMC(theory, 5, 0.2), chains=8, therm=2, traj=10, seed=4)
    flow_hmc = chains(FlowHMC(gauge_flow(theory, layers=0), 5, 0.2), chains=8, therm=2, traj=10,
                      seed=4)
    np.testing.assert_array_equal(hmc["accepted"], flow_hmc["accepted"])
    np.testing.assert_allclose(flow_hmc["plaq"], hmc["plaq"], rtol=0, atol=1e-9)


def test_flow_hmc_with_a_random_gauge_flow_is_exact():
    """The package's coupling layers with random weights (far from any target): flow HMC still
    reproduces the exact plaquette and ``<Q_Z^2>``.  (Independence Metropolis with such a flow is
    exact too, but its weights are so heavy-tailed that ``tau_int(plaq)`` exceeds 100 even at
    beta 0.5: the analytic flows above test it.)"""
    theory = U1Theory((4, 4), 1.0)
    # Weights of 0.2 around the initialization: larger ones make S_F so rough that eps 0.2
    # accepts nothing (0.5: 0.1 %).
    flow = gauge_flow(theory, layers=4, scale=0.2)
    z = theory.hot_start(4, torch.Generator().manual_seed(1))
    assert wrap(flow(z)[0] - z).abs().max() > 0.3  # far from the identity
    records = chains(FlowHMC(flow, 4, 0.2), chains=32, therm=20, traj=60, seed=6)
    result = pulls(records, 1.0, 16)
    assert abs(result["plaq"]) < 4 and abs(result["charge2"]) < 4, result
