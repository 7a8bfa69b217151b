"""su(3) basis, exact exponential, projections and Haar sampling (dlhmc.group.su3)."""

import math

import pytest
import torch

from dlhmc.group import su3


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _random_omega(n, scale, seed=0, dtype=torch.float64):
    return scale * torch.randn(n, 8, generator=_gen(seed), dtype=torch.float64).to(dtype)


def test_generators_normalization_and_algebra():
    t = su3.generators()
    gram = torch.einsum("aij,bji->ab", t, t)
    assert torch.allclose(gram, 0.5 * torch.eye(8, dtype=t.dtype), atol=1e-15)
    assert torch.allclose(t, t.mH)
    assert torch.diagonal(t, dim1=-2, dim2=-1).sum(-1).abs().max() < 1e-15
    # Gell-Mann structure constants: [T^a, T^b] = i f^abc T^c with f^123 = 1, f^458 = sqrt(3)/2.
    comm = t[0] @ t[1] - t[1] @ t[0]
    assert torch.allclose(comm, 1j * t[2], atol=1e-15)
    comm = t[3] @ t[4] - t[4] @ t[3]
    f458 = torch.einsum("ij,ji->", -2j * comm, t[7])
    assert abs(f458 - math.sqrt(3) / 2) < 1e-14


def test_component_maps_round_trip():
    omega = _random_omega(100, 1.0)
    h = su3.hermitian(omega)
    t = su3.generators()
    assert torch.allclose(h, torch.einsum("na,aij->nij", omega.to(h.dtype), t))
    assert torch.allclose(su3.components(h), omega)
    assert torch.allclose(su3.antihermitian_components(su3.antihermitian(omega)), omega)
    m = torch.view_as_complex(torch.randn(100, 3, 3, 2, generator=_gen(1), dtype=torch.float64))
    traces = torch.einsum("aij,nji->na", t, m)
    assert torch.allclose(su3.trace_re(m), traces.real)
    assert torch.allclose(su3.trace_im(m), traces.imag)
    assert torch.allclose(su3.trace_im(m.mH), -traces.imag)  # lazy conjugate views resolved


@pytest.mark.parametrize("scale", [0.0, 1e-10, 1e-4, 0.1, 1.0, 5.0, 30.0])
def test_expi_matches_matrix_exp_double(scale):
    h = su3.hermitian(_random_omega(2000, scale, seed=2))
    e = su3.expi(h)
    ref = torch.linalg.matrix_exp(1j * h)
    assert (e - ref).abs().max() < 1e-14 * max(1.0, scale)
    assert su3.unitarity_violation(e) < 1e-14 * max(1.0, scale)


def test_expi_degenerate_spectra():
    """theta = 0 or pi (two equal eigenvalues, c0 = +-c0_max) and a single nonzero component."""
    omega = torch.zeros(6, 8, dtype=torch.float64)
    component = torch.tensor([7, 7, 2, 0, 7, 4])
    omega[torch.arange(6), component] = torch.tensor([1.0, -1.0, 2.0, 1e-3, 40.0, -3.0]).double()
    h = su3.hermitian(omega)
    assert (su3.expi(h) - torch.linalg.matrix_exp(1j * h)).abs().max() < 1e-13


def test_expi_single_precision():
    h = su3.hermitian(_random_omega(2000, 1.0, seed=3, dtype=torch.float32))
    e = su3.expi(h)
    assert e.dtype == torch.complex64
    ref = torch.linalg.matrix_exp(1j * h.to(torch.complex128))
    assert (e - ref).abs().max() < 5e-6
    assert su3.unitarity_violation(e) < 5e-6


def test_expi_gradient_matches_matrix_exp():
    """L2HMC trains through the link update: the closed form must differentiate correctly."""
    omega = _random_omega(50, 1.0, seed=4).requires_grad_(True)
    m = torch.view_as_complex(torch.randn(50, 3, 3, 2, generator=_gen(5), dtype=torch.float64))

    def loss(exp_fn):
        e = exp_fn(su3.hermitian(omega))
        return (e * m).real.sum() + (e @ e).imag.sum()

    (g1,) = torch.autograd.grad(loss(su3.expi), omega)
    (g2,) = torch.autograd.grad(loss(lambda h: torch.linalg.matrix_exp(1j * h)), omega)
    assert torch.allclose(g1, g2, atol=1e-12)


def test_project_antihermitian():
    m = torch.view_as_complex(torch.randn(100, 3, 3, 2, generator=_gen(6), dtype=torch.float64))
    a = su3.project_antihermitian(m)
    assert torch.allclose(a, -a.mH)
    assert torch.diagonal(a, dim1=-2, dim2=-1).sum(-1).abs().max() < 1e-14
    assert torch.allclose(su3.project_antihermitian(a), a)
    assert torch.allclose(a, su3.antihermitian(su3.antihermitian_components(m)))


def test_reunitarize():
    u = su3.haar((200,), _gen(7))
    assert torch.allclose(su3.reunitarize(u), u, atol=1e-14)
    noisy = u + 1e-6 * torch.randn(u.shape, generator=_gen(8), dtype=u.dtype)
    r = su3.reunitarize(noisy)
    assert su3.unitarity_violation(r) < 1e-14
    assert (r - u).abs().max() < 1e-5


def test_haar_is_su3_with_haar_moments():
    """Moments that characterize SU(3) Haar measure.

    ``<Tr U> = 0``, ``<|Tr U|^2> = 1`` (one invariant in 3 x 3bar),
    ``<(Tr U)^3> = 1`` (the baryon singlet in 3 x 3 x 3, zero for U(3)) and
    ``<|U_00|^2> = 1/3`` with variance 1/18 (Beta(1, 2) for a column of a Haar matrix).
    """
    n = 40000
    u = su3.haar((n,), _gen(9))
    assert su3.unitarity_violation(u) < 1e-13
    tr = torch.diagonal(u, dim1=-2, dim2=-1).sum(-1)
    checks = {
        "tr": (tr, 0.0),
        "tr2": (tr.abs() ** 2, 1.0),
        "tr3": (tr**3, 1.0),
        "u00": (u[:, 0, 0].abs() ** 2, 1 / 3),
    }
    for name, (x, exact) in checks.items():
        parts = [(x.real, exact), (x.imag, 0.0)] if x.is_complex() else [(x, exact)]
        for part, target in parts:
            err = part.std() / math.sqrt(n)
            assert abs(part.mean() - target) < 4 * err, name
    assert abs((u[:, 0, 0].abs() ** 2).var() - 1 / 18) < 0.003


def test_haar_same_links_in_both_precisions():
    single = su3.haar((5,), _gen(10), torch.complex64)
    assert torch.equal(single, su3.haar((5,), _gen(10)).to(torch.complex64))
