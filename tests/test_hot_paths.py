"""The fast paths of the U(1) hot loop agree with their plain definitions.

The force and plaquette have one in-place implementation (no autograd) and one out of
place (autograd); the features have a custom backward.  Each is compared with an
independent formulation: ``torch.roll`` definitions, autograd of the action,
finite-difference gradient checks.
"""

from __future__ import annotations

import math
import platform

import pytest
import torch

from dlhmc.allocator import keep_freed_memory
from dlhmc.group.u1 import cos_sin, wrap_
from dlhmc.lattice.u1 import U1Theory, force, plaquette_angles


def links(shape=(3, 2, 4, 5), seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1) * math.pi


def roll_plaquette(x):
    return x[:, 0] + x[:, 1].roll(-1, 1) - x[:, 0].roll(-1, 2) - x[:, 1]


@pytest.mark.parametrize("requires_grad", [False, True])
def test_plaquette_and_force_paths_match_roll_definition_and_autograd(requires_grad):
    beta = 1.7
    x = links().requires_grad_(requires_grad)
    torch.testing.assert_close(plaquette_angles(x), roll_plaquette(x.detach()), rtol=0, atol=1e-14)
    xg = x.detach().clone().requires_grad_(True)
    action = beta * (1 - torch.cos(roll_plaquette(xg))).sum()
    (expected,) = torch.autograd.grad(action, xg)
    torch.testing.assert_close(force(x, beta), expected, rtol=0, atol=1e-12)


def test_force_is_differentiable_with_respect_to_links():
    x = links(shape=(2, 2, 3, 3)).requires_grad_(True)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    assert torch.autograd.gradcheck(lambda y: (force(y, 0.9) * weights).sum(), (x,))


@pytest.mark.parametrize("dim", [0, -1])
def test_cos_sin_values_and_gradient(dim):
    x = links(shape=(2, 7)).requires_grad_(True)
    out = cos_sin(x, dim)
    torch.testing.assert_close(out, torch.stack((torch.cos(x), torch.sin(x)), dim=dim))
    assert torch.autograd.gradcheck(lambda y: cos_sin(y, dim), (x,))
    with pytest.raises(ValueError, match="dim"):
        cos_sin(x, 1)


def test_wrap_lands_in_half_open_interval_and_keeps_wrapped_angles():
    x = torch.linspace(-20.0, 20.0, 4001, dtype=torch.float64)
    y = wrap_(x.clone())
    assert y.min() >= -math.pi and y.max() < math.pi
    turns = (x - y) / (2 * math.pi)
    torch.testing.assert_close(turns, turns.round(), rtol=0, atol=1e-12)
    inside = x[(x >= -math.pi) & (x < math.pi)]
    assert torch.equal(wrap_(inside.clone()), inside)


def test_evolve_links_is_x_plus_eps_p_modulo_2pi():
    theory = U1Theory((4, 4), 1.0)
    gen = torch.Generator().manual_seed(2)
    x, p = theory.hot_start(5, gen), 10 * theory.sample_momentum(5, gen)
    new = theory.evolve_links(x, p, 0.7)
    diff = torch.remainder(new - (x + 0.7 * p) + math.pi, 2 * math.pi) - math.pi
    assert diff.abs().max() < 1e-12


def test_keep_freed_memory_applies_on_glibc_and_is_idempotent():
    expected = platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is expected
    assert keep_freed_memory() is expected
    assert torch.ones(2**20).sum().item() == 2**20
