"""Winding HMC (instanton hits) for 2D U(1): the flux fields, the local action difference,
and exactness of HMC plus hits against the exact plaquette and charge-sector distribution.

Statistical errors come from the spread of per-chain means over independent chains (batch
means over chains), so autocorrelation within a chain is included whatever its length.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlhmc.group.u1 import wrap
from dlhmc.lattice.su3 import SU3Theory
from dlhmc.lattice.u1 import U1Theory, plaquette_angles
from dlhmc.lattice.u1_exact import exact_plaquette, sector_distribution
from dlhmc.lattice.u1_instanton import instanton_field
from dlhmc.samplers.hmc import HMC
from dlhmc.samplers.instanton import action_change, check_instanton_options, instanton_hits

TWO_PI = 2.0 * math.pi
LATTICES = [(8, 8), (6, 4), (4, 6)]


def wrapped_plaquettes(x: torch.Tensor) -> torch.Tensor:
    """Plaquette angles in ``[-pi, pi)`` (the field's flux modulo ``2 pi``)."""
    return wrap(plaquette_angles(x))


def patch_mask(lattice, size, position) -> torch.Tensor:
    """True on the ``size x size`` plaquettes with corner ``position`` (periodic)."""
    nt, nx = lattice
    t = (torch.arange(nt) - position[0]) % nt
    s = (torch.arange(nx) - position[1]) % nx
    return (t < size).view(nt, 1) & (s < size).view(1, nx)


@pytest.mark.parametrize("lattice", LATTICES)
@pytest.mark.parametrize("position", [(0, 0), (3, 1)])
def test_delocalized_field_adds_two_pi_over_volume_to_every_plaquette(lattice, position):
    field = instanton_field(lattice, 0, position)
    volume = lattice[0] * lattice[1]
    flux = wrapped_plaquettes(field[None])[0]
    assert (flux - TWO_PI / volume).abs().max() < 1e-12


@pytest.mark.parametrize("lattice", LATTICES)
@pytest.mark.parametrize("size", [2, 3, 4])
@pytest.mark.parametrize("position", [(0, 0), (3, 1), (5, 5)])
def test_patch_field_puts_its_flux_on_the_patch_only(lattice, size, position):
    field = instanton_field(lattice, size, position)
    flux = wrapped_plaquettes(field[None])[0]
    inside = patch_mask(lattice, size, position)
    assert (flux[inside] - TWO_PI / size**2).abs().max() < 1e-12
    assert flux[~inside].abs().max() < 1e-12
    # The links it moves lie in the patch (plus its closing edge): the move is local.
    assert int((field != 0).sum()) <= 2 * size * size


@pytest.mark.parametrize("lattice", LATTICES)
@pytest.mark.parametrize("size", [0, 2, 3, 4])
def test_field_on_a_cold_start_has_charge_one(lattice, size):
    theory = U1Theory(lattice, 1.0)
    field = instanton_field(lattice, size, (1, 2), dtype=theory.dtype)
    assert theory.charge(wrap(field[None])).item() == 1.0
    assert theory.charge(wrap(-field[None])).item() == -1.0


def test_delocalized_field_is_the_l2hmc_winding_translation():
    from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics

    theory = U1Theory((6, 4), 1.0)
    dyn = L2HMCDynamics(theory, L2HMCConfig(nlf=1, hidden=(4,), winding=-2))
    assert torch.equal(dyn.translation, wrap(-2 * instanton_field(theory.lattice, 0)))


def random_hit(theory, batch, seed):
    gen = torch.Generator().manual_seed(seed)
    x = theory.hot_start(batch, gen)
    sign = torch.randint(2, (batch,), generator=gen) * 2 - 1
    corner = torch.randint(theory.lattice[0] * theory.lattice[1], (batch,), generator=gen)
    return x, sign, corner


def full_field(theory, size, sign, corner):
    nx = theory.lattice[1]
    return torch.stack([
        int(q) * instanton_field(theory.lattice, size, (int(c) // nx, int(c) % nx))
        for q, c in zip(sign, corner, strict=True)
    ])


@pytest.mark.parametrize("lattice", [(8, 6), (4, 6)])
@pytest.mark.parametrize("size", [0, 2, 3, 4])
def test_local_action_change_is_the_full_action_difference(lattice, size):
    theory = U1Theory(lattice, 2.7)
    x, sign, corner = random_hit(theory, 12, seed=size)
    moved = wrap(x + full_field(theory, size, sign, corner))
    expected = theory.action(moved) - theory.action(x)
    assert expected.abs().min() > 1e-3
    assert (action_change(theory, x, size, sign, corner) - expected).abs().max() < 1e-11


@pytest.mark.parametrize("size", [0, 3])
def test_acceptance_is_symmetric_under_sign_flip(size):
    """Charge conjugation ``x -> -x`` leaves ``S`` invariant and maps the ``+A`` hit onto
    the ``-A`` hit, so both signs are accepted alike; the reverse hit undoes ``dS``."""
    theory = U1Theory((6, 6), 3.0)
    x, sign, corner = random_hit(theory, 16, seed=4)
    dS = action_change(theory, x, size, sign, corner)
    assert torch.allclose(action_change(theory, -x, size, -sign, corner), dS, atol=1e-12)
    moved = wrap(x + full_field(theory, size, sign, corner))
    assert torch.allclose(action_change(theory, moved, size, -sign, corner), -dS, atol=1e-12)


@pytest.mark.parametrize("size", [0, 2])
def test_hits_keep_the_cached_action_and_leave_rejected_chains_alone(size):
    theory = U1Theory((6, 4), 2.0)
    gen = torch.Generator().manual_seed(0)
    x = theory.hot_start(64, gen)
    new, action, accepted = instanton_hits(theory, x, theory.action(x), 5, size, gen)
    assert 0 < int(accepted.sum()) < 5 * 64
    assert (action - theory.action(new)).abs().max() < 1e-11
    untouched = accepted == 0
    assert untouched.any() and torch.equal(new[untouched], x[untouched])
    assert not torch.equal(new[~untouched], x[~untouched])


@pytest.mark.parametrize("size", [0, 3])
def test_free_hits_draw_both_signs_and_uniform_positions(size):
    """At ``beta = 0`` every hit is accepted: a cold start then carries charge ``+-1``
    with probability 1/2 each, and every plaquette is in the patch ``W^2 / V`` of the time."""
    theory = U1Theory((6, 4), 0.0)
    batch, volume = 6000, 24
    gen = torch.Generator().manual_seed(1)
    x0 = theory.cold_start(batch)
    x, action, accepted = instanton_hits(theory, x0, theory.action(x0), 1, size, gen)
    assert (accepted == 1).all() and (action == 0).all()
    charge = theory.charge(x)
    assert set(charge.unique().tolist()) == {-1.0, 1.0}
    assert abs(charge.mean().item()) < 4 / math.sqrt(batch)
    if size:
        covered = (wrapped_plaquettes(x).abs() > 1e-9).double().mean(dim=0)
        p = size**2 / volume
        assert (covered - p).abs().max() < 4 * math.sqrt(p * (1 - p) / batch)


def test_zero_hits_change_nothing_and_draw_nothing():
    theory = U1Theory((4, 4), 1.0)
    gen = torch.Generator().manual_seed(2)
    x = theory.hot_start(3, gen)
    state = gen.get_state()
    new, action, accepted = instanton_hits(theory, x, theory.action(x), 0, 0, gen)
    assert new is x and (accepted == 0).all()
    assert torch.equal(gen.get_state(), state)


@pytest.mark.parametrize(
    "hits,size,key",
    [(-1, 0, "instanton_hits"), (1.5, 0, "instanton_hits"), (True, 0, "instanton_hits"),
     (1, -1, "instanton_size"), (1, 1, "instanton_size"), (1, 5, "instanton_size"),
     (1, 7, "instanton_size")],
)
def test_bad_options_are_value_errors_naming_the_key(hits, size, key):
    theory = U1Theory((6, 4), 1.0)
    with pytest.raises(ValueError, match=key):
        check_instanton_options(theory, hits, size)
    with pytest.raises(ValueError, match=key):
        instanton_hits(theory, theory.cold_start(1), torch.zeros(1), hits, size, None)


def test_field_refuses_a_patch_larger_than_the_lattice():
    with pytest.raises(ValueError, match="instanton_size"):
        instanton_field((6, 4), 5)


def test_su3_refuses_the_move_but_accepts_the_defaults():
    theory = SU3Theory((2, 2, 2, 2), 5.0)
    assert check_instanton_options(theory, 0, 0) == (0, 0)
    with pytest.raises(ValueError, match="instanton_hits.*U1"):
        check_instanton_options(theory, 1, 0)
    with pytest.raises(ValueError, match="instanton_size.*U1"):
        check_instanton_options(theory, 0, 2)


def pull(per_chain: np.ndarray, expected: float) -> float:
    """(mean - expected) / error, error from the spread of independent chain means."""
    error = per_chain.std(ddof=1) / math.sqrt(per_chain.size)
    return (per_chain.mean() - expected) / error if error > 0 else math.copysign(
        math.inf, per_chain.mean() - expected)


def sample(lattice, beta, hits, size, batch, n_therm, n_traj, seed):
    """Charge and plaquette histories ``[chain, traj]`` of HMC plus hits from a cold start.

    The cold start holds every chain at ``Q = 0``: the other sectors are populated only
    by tunnelling, so their exact weights test that the hits reach them in proportion.
    """
    theory = U1Theory(lattice, beta)
    gen = torch.Generator().manual_seed(seed)
    kernel = HMC(theory, 10, 0.1, instanton_hits=hits, instanton_size=size)
    state = kernel.init(theory.cold_start(batch))
    charges, plaquettes, accepted = [], [], 0
    with torch.no_grad():
        for step in range(n_therm + n_traj):
            state, info = kernel.step(state, gen)
            # The refreshed force and the cached action are those of the links.
            assert torch.equal(state.force, theory.force(state.x))
            assert (state.action - theory.action(state.x)).abs().max() < 1e-9
            accepted += int(info.extras.get("instanton_accepted", torch.zeros(1)).sum())
            if step >= n_therm:
                charges.append(theory.charge(state.x))
                plaquettes.append(theory.plaquette(state.x))
    return torch.stack(charges, 1).numpy(), torch.stack(plaquettes, 1).numpy(), accepted


def sector_pulls(lattice, beta, charges, plaquettes, max_charge=2) -> dict[str, float]:
    """Pulls of ``<cos x_P>``, ``<Q^2>`` and ``P(|Q| <= max_charge)`` against the exact values."""
    volume = lattice[0] * lattice[1]
    q, prob, _ = sector_distribution(beta, volume, max_charge=12)
    pulls = {
        "plaq": pull(plaquettes.mean(axis=1), exact_plaquette(beta, volume)),
        "Q^2": pull((charges**2).mean(axis=1), float((prob * q**2).sum())),
    }
    for charge in range(-max_charge, max_charge + 1):
        pulls[f"P({charge})"] = pull((charges == charge).mean(axis=1), float(prob[q == charge][0]))
    return pulls


def tunnelling_rate(charges: np.ndarray) -> float:
    """Fraction of trajectories after which the charge differs from the one before."""
    return float((charges[:, 1:] != charges[:, :-1]).mean())


# At beta 5 plain HMC changes the charge after fewer than PLAIN_HMC_RATE of the trajectories
# (test_plain_hmc_tunnels_poorly_at_this_beta); the hits must do several times better.
PLAIN_HMC_RATE = 0.007


# Each lattice, hit count and size once (a Latin square of the 2 x 2 x 2 grid); the slow run's
# longer chains below cover the whole grid.
@pytest.mark.parametrize("lattice,hits,size", [((8, 8), 1, 0), ((8, 8), 10, 3),
                                               ((8, 6), 10, 0), ((8, 6), 1, 3)])  # fmt: skip
def test_winding_hmc_reproduces_exact_plaquette_and_sectors(lattice, hits, size):
    charges, plaquettes, accepted = sample(lattice, 5.0, hits, size, 128, 200, 600, seed=hits)
    assert accepted > 0.01 * hits * 128 * 800
    assert tunnelling_rate(charges) > 3 * PLAIN_HMC_RATE
    pulls = sector_pulls(lattice, 5.0, charges, plaquettes)
    assert max(abs(p) for p in pulls.values()) < 4, pulls


@pytest.mark.parametrize("lattice", [(8, 8), (8, 6)])
def test_plain_hmc_tunnels_poorly_at_this_beta(lattice):
    """The control: with the same budget and no hits the charge rarely moves, so the
    sector weights above are reached through the hits."""
    charges, _, _ = sample(lattice, 5.0, 0, 0, 128, 200, 600, seed=0)
    assert 0 < tunnelling_rate(charges) < PLAIN_HMC_RATE


LONG_RUNS = [
    (lattice, 5.0, hits, size)
    for lattice in [(8, 8), (8, 6)] for hits in (1, 10) for size in (0, 3)
] + [
    # A 2x2 patch (pi / 2 per plaquette) is accepted too rarely at beta 5 to matter.
    (lattice, 3.0, hits, 2) for lattice in [(6, 6), (6, 4)] for hits in (1, 10)
]


@pytest.mark.slow
@pytest.mark.parametrize("lattice,beta,hits,size", LONG_RUNS)
def test_winding_hmc_reproduces_exact_sectors_long(lattice, beta, hits, size):
    charges, plaquettes, _ = sample(lattice, beta, hits, size, 256, 500, 2000, seed=100 + hits)
    pulls = sector_pulls(lattice, beta, charges, plaquettes)
    assert max(abs(p) for p in pulls.values()) < 4, pulls
