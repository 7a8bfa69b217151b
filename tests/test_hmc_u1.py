"""HMC on 2D U(1): exact integrator properties and agreement with the exact plaquette.

Statistical errors come from the spread of per-chain means over independent
chains, so autocorrelation within a chain (and frozen topology) is included.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from theory_helpers import nan_on_chains

from dlhmc.lattice.u1 import U1Theory
from dlhmc.lattice.u1_exact import (
    exact_plaquette,
    infinite_volume_plaquette,
    sector_distribution,
)
from dlhmc.samplers import base
from dlhmc.samplers.hmc import HMC
from dlhmc.samplers.integrators import integrate


def thermalized(theory: U1Theory, batch: int, n_traj: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    kernel = HMC(theory, 10, 0.1)
    state = kernel.init(theory.hot_start(batch, generator))
    with torch.no_grad():
        for _ in range(n_traj):
            state, _ = kernel.step(state, generator)
    return state.x, generator


def hamiltonian(theory, x, p):
    return theory.action(x) + theory.kinetic_energy(p)


def pull(per_chain: np.ndarray, expected: float) -> float:
    """(mean - expected) / error, error from the spread of independent chain means."""
    error = per_chain.std(ddof=1) / math.sqrt(per_chain.size)
    return (per_chain.mean() - expected) / error


_NaNOnChainsTheory = nan_on_chains(True, False, True, False)


def test_nan_energy_is_rejected_and_keeps_the_old_state():
    """A NaN ``dH`` must reject (probability 0), and every rejected chain keeps its links,
    action and force; the healthy chains still move."""
    theory = _NaNOnChainsTheory((4, 4), 1.0)
    generator = torch.Generator().manual_seed(0)
    kernel = HMC(theory, 3, 0.05)
    state = kernel.init(theory.hot_start(4, generator))
    with torch.no_grad():
        new, info = kernel.step(state, generator)
    broken = theory.broken
    assert torch.isnan(info.dH[broken]).all()
    assert (info.accept_prob[broken] == 0).all() and not info.accepted[broken].any()
    assert torch.equal(new.x[broken], state.x[broken])
    assert torch.equal(new.action[broken], state.action[broken])
    assert torch.equal(new.force[broken], state.force[broken])
    assert info.accepted[~broken].all()  # short trajectories at small eps
    assert torch.isfinite(new.x).all() and not torch.equal(new.x[~broken], state.x[~broken])


def test_leapfrog_is_reversible():
    theory = U1Theory((8, 8), 3.0)
    x, generator = thermalized(theory, 8, 5, seed=0)
    p = theory.sample_momentum(8, generator)
    x1, p1, f1 = integrate(theory, x, p, theory.force(x), 25, 0.1)
    assert (torch.cos(x1) - torch.cos(x)).abs().max() > 0.5  # it moved
    x2, p2, _ = integrate(theory, x1, -p1, f1, 25, 0.1)
    # Compare points on the circle (wrapping may differ by 2 pi at +-pi).
    assert (torch.cos(x2) - torch.cos(x)).abs().max() < 1e-11
    assert (torch.sin(x2) - torch.sin(x)).abs().max() < 1e-11
    assert (p2 + p).abs().max() < 1e-11


def test_energy_error_scales_as_eps_squared():
    """At fixed trajectory length the leapfrog's energy error is O(eps^2)."""
    theory = U1Theory((8, 8), 2.0)
    x, generator = thermalized(theory, 64, 30, seed=1)
    p = theory.sample_momentum(64, generator)
    h0 = hamiltonian(theory, x, p)
    steps = np.array([0.2, 0.1, 0.05, 0.025])
    mean_abs = []
    for eps in steps:
        x1, p1, _ = integrate(theory, x, p, theory.force(x), round(1.0 / eps), float(eps))
        mean_abs.append((hamiltonian(theory, x1, p1) - h0).abs().mean().item())
    slope = np.polyfit(np.log(steps), np.log(mean_abs), 1)[0]
    assert slope == pytest.approx(2.0, abs=0.1)


def test_exp_minus_dh_averages_to_one():
    """<exp(-dH)> = 1 at equilibrium (area preservation + reversibility)."""
    theory = U1Theory((8, 8), 2.0)
    x, generator = thermalized(theory, 256, 40, seed=2)
    kernel = HMC(theory, 4, 0.3)
    state = kernel.init(x)
    ratios = []
    with torch.no_grad():
        for _ in range(20):
            state, info = kernel.step(state, generator)
            ratios.append(torch.exp(-info.dH))
    per_chain = torch.stack(ratios, dim=1).mean(dim=1).numpy()
    assert 0.5 < torch.stack(ratios).clamp(max=1).mean() < 0.95  # dH is far from zero
    assert abs(pull(per_chain, 1.0)) < 4


def run_chains(lattice, beta, batch, n_therm, n_traj, seed):
    theory = U1Theory(lattice, beta)
    generator = torch.Generator().manual_seed(seed)
    x = theory.hot_start(batch, generator)
    return base.run_chains(HMC(theory, 10, 0.1), x, n_therm, n_traj, generator).per_traj


def check_plaquette(lattice, beta, batch, n_therm, n_traj, seed):
    volume = lattice[0] * lattice[1]
    records = run_chains(lattice, beta, batch, n_therm, n_traj, seed)
    assert abs(pull(records["plaq"].mean(axis=1), exact_plaquette(beta, volume))) < 4
    return records


def check_sector_plaquettes(records, beta, volume):
    """At large beta chains keep their charge: compare each sector with its exact plaquette.

    ``plaq - <plaq>_Q`` has zero mean whatever the charge distribution of the
    chains, provided they equilibrate inside their sectors.
    """
    charges, _, plaq_q = sector_distribution(beta, volume, max_charge=10)
    index = records["charge"].astype(int) - charges[0]
    residual = records["plaq"] - plaq_q[index]
    assert np.isfinite(residual).all()
    assert abs(pull(residual.mean(axis=1), 0.0)) < 4


@pytest.mark.parametrize("beta", [1.0, 4.0])
def test_plaquette_matches_exact_value(beta):
    check_plaquette((8, 8), beta, batch=128, n_therm=150, n_traj=400, seed=10)


@pytest.mark.parametrize("lattice,beta", [((2, 2), 1.0), ((3, 3), 4.0), ((2, 5), 2.0)])
def test_plaquette_matches_finite_volume_value(lattice, beta):
    """Tiny tori, where the exact value is far (many errors) from the infinite-volume I1/I0."""
    records = check_plaquette(lattice, beta, batch=128, n_therm=150, n_traj=400, seed=13)
    error = records["plaq"].mean(axis=1).std(ddof=1) / math.sqrt(128)
    volume = lattice[0] * lattice[1]
    assert exact_plaquette(beta, volume) - infinite_volume_plaquette(beta) > 8 * error


def test_topological_susceptibility_matches_exact_value():
    """<Q^2> on 8x8 at beta 2, where HMC tunnels freely; the exact value from the sector sums."""
    records = run_chains((8, 8), 2.0, batch=128, n_therm=100, n_traj=400, seed=11)
    charges, prob, _ = sector_distribution(2.0, 64, max_charge=12)
    assert abs(pull((records["charge"] ** 2).mean(axis=1), (prob * charges**2).sum())) < 4


def test_sector_plaquettes_match_at_beta_6():
    records = run_chains((8, 8), 6.0, batch=128, n_therm=150, n_traj=400, seed=12)
    check_sector_plaquettes(records, 6.0, 64)


@pytest.mark.slow
@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0, 4.0, 5.0])
def test_plaquette_matches_exact_value_long(beta):
    records = check_plaquette((8, 8), beta, batch=256, n_therm=300, n_traj=2000, seed=20)
    check_sector_plaquettes(records, beta, 64)


@pytest.mark.slow
@pytest.mark.parametrize("beta", [6.0, 8.0])
def test_sector_plaquettes_match_long(beta):
    records = run_chains((8, 8), beta, batch=256, n_therm=300, n_traj=2000, seed=21)
    check_sector_plaquettes(records, beta, 64)
