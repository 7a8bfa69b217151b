"""Four-dimensional SU(3) lattice gauge theory with the Wilson action.

Links ``U[b, mu, t, x, y, z, i, j]`` (complex128, or complex64 for
``precision="single"``), momenta the 8 real components ``omega^a`` per link.
Conventions are those of ``physics.md``: plaquette
``U_munu(n) = U_mu(n) U_nu(n+mu) U_mu(n+nu)^dagger U_nu(n)^dagger``, action
``S = beta sum_n sum_{mu<nu} (1 - Re Tr U_munu(n) / 3)``, update
``U <- exp(i eps omega^a T^a) U`` and force ``F^a = d/dt S(exp(i t T^a) U)|_0``.

Hot path.  Every periodic shift is a ``torch.roll`` of one direction's links
(two contiguous block copies), and each of the six planes is one batched
product over all sites (a Python loop over planes, never over sites).  Working
plane by plane keeps the temporaries at one direction's size, which stays in
cache for the lattices this project runs; batching all planes at once was
slower, dominated by memory traffic.  Per plane the force needs six matrix
products, each shared between the two directions of the plane:

- ``A = U_mu(n) U_nu(n+mu)`` and ``B = U_nu(n) U_mu(n+nu)`` (so ``U_munu = A B^dagger``),
- upper staples ``U_nu(n+mu) B^dagger`` (for ``U_mu(n)``), ``U_mu(n+nu) A^dagger`` (``U_nu(n)``),
- lower staples ``A^dagger U_nu(n)`` (for ``U_mu(n+nu)``), ``B^dagger U_mu(n)`` (``U_nu(n+mu)``),

then one product ``U_mu(n) Sigma_mu(n)`` per link: 40 products per site
instead of the 52 of six independent staples per link.  The action needs only
``Re Tr(A B^dagger) = Re sum_ij A_ij conj(B_ij)``, an elementwise product.

The topological charge uses the clover field strength after Wilson flow, whose
step is Luscher's third-order Runge-Kutta integrator (arXiv:1006.4518, app. C).
"""

from __future__ import annotations

import copy
import math

import torch

from dlhmc.group import su3
from dlhmc.theory import ExactValue

DTYPES = {"double": torch.complex128, "single": torch.complex64}
# The strong-coupling series is a controlled approximation only well below the crossover.
STRONG_COUPLING_MAX_BETA = 1.0

# The six planes mu < nu, in the order (01, 02, 03, 12, 13, 23).
PLANES = tuple((mu, nu) for mu in range(4) for nu in range(mu + 1, 4))
# eps_{munurhosigma} Tr F_munu F_rhosigma = 8 (F01 F23 - F02 F13 + F03 F12): plane pairs and signs.
DUAL_PAIRS = ((0, 5, 1.0), (1, 4, -1.0), (2, 3, 1.0))


def _shift(field: torch.Tensor, direction: int, step: int) -> torch.Tensor:
    """``field(n + step e_direction)`` for a per-direction field ``[B, Nt, Nx, Ny, Nz, ...]``."""
    return torch.roll(field, -step, dims=1 + direction)


def _plane(u: torch.Tensor, mu: int, nu: int):
    """``U_mu(n), U_nu(n), U_nu(n+mu), U_mu(n+nu)``, and ``A, B`` with ``U_munu = A B^dagger``."""
    u_mu, u_nu = u[:, mu], u[:, nu]
    u_nu_fmu = _shift(u_nu, mu, 1)
    u_mu_fnu = _shift(u_mu, nu, 1)
    return u_mu, u_nu, u_nu_fmu, u_mu_fnu, u_mu @ u_nu_fmu, u_nu @ u_mu_fnu


def plaquette_matrix(x: torch.Tensor, mu: int, nu: int) -> torch.Tensor:
    """``U_munu(n)`` at every site, ``[B, Nt, Nx, Ny, Nz, 3, 3]``: a loop closed at ``n``."""
    *_, a, bb = _plane(x, mu, nu)
    return a @ bb.mH


def link_staples(x: torch.Tensor, mu: int, sites: torch.Tensor | None = None) -> torch.Tensor:
    """The six staples of ``U_mu(n)``, ``[B, Nt, Nx, Ny, Nz, 6, 3, 3]``.

    Index ``2 i`` is the upper, ``2 i + 1`` the lower staple in the plane of ``mu`` and the
    ``i``-th other direction ``nu`` (increasing order).  Each runs from ``n + mu`` back to
    ``n``, so ``U_mu(n) S`` is a plaquette closed at ``n`` and ``S_a^dagger S_b`` a loop
    closed at ``n`` that avoids ``U_mu(n)``: the gauge-covariant loops of the ``local``
    L2HMC layers.  With ``sites`` (flat site indices) only those sites, ``[B, n, 6, 3, 3]``:
    the links are shifted to the site first, so the products cost only the sites asked for.
    """

    def at(field):
        return field if sites is None else field.flatten(1, 4).index_select(1, sites)

    u_mu, out = x[:, mu], []
    for nu in range(4):
        if nu == mu:
            continue
        u_nu = x[:, nu]
        u_nu_fmu = _shift(u_nu, mu, 1)
        out.append(at(u_nu_fmu) @ (at(u_nu) @ at(_shift(u_mu, nu, 1))).mH)
        lower = (_shift(u_nu_fmu, nu, -1), _shift(u_mu, nu, -1), _shift(u_nu, nu, -1))
        out.append(at(lower[0]).mH @ (at(lower[1]).mH @ at(lower[2])))
    return torch.stack(out, dim=-3)


def link_loops(x: torch.Tensor) -> torch.Tensor:
    """``U_mu(n) S_a(n)`` for the six staples of :func:`link_staples` (same order), per link
    ``[B, 4, Nt, Nx, Ny, Nz, 6, 3, 3]``: the six plaquettes through the link, rooted at ``n``.

    The upper loop is the plaquette at ``n`` (or its conjugate), the lower one the plaquette
    ``U_munu(n - nu)`` conjugated and rotated to start at ``n``:
    ``U_nu^dagger U_munu^dagger U_nu`` at ``n - nu``.  42 products per site instead of the 72
    of closing each staple.
    """
    plaquettes = {plane: plaquette_matrix(x, *plane) for plane in PLANES}
    out = []
    for mu in range(4):
        loops = []
        for nu in range(4):
            if nu == mu:
                continue
            p = plaquettes[mu, nu] if mu < nu else plaquettes[nu, mu].mH
            u_nu = x[:, nu]
            loops += [p, _shift(u_nu.mH @ (p.mH @ u_nu), nu, -1)]
        out.append(torch.stack(loops, dim=-3))
    return torch.stack(out, dim=1)


def gauge_transform(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``U_mu(n) -> G(n) U_mu(n) G(n + mu)^dagger``, site matrices ``g [B, Nt, Nx, Ny, Nz, 3, 3]``.

    Every observable and the action must be invariant under it (random ``g`` from
    :func:`dlhmc.group.su3.haar` in the tests).
    """
    return torch.stack([g @ x[:, mu] @ _shift(g, mu, 1).mH for mu in range(x.shape[1])], dim=1)


class SU3Theory:
    """Wilson-action SU(3) on a periodic ``Nt x Nx x Ny x Nz`` lattice (the GaugeTheory protocol).

    ``flow_time`` (default 1.0, in lattice units ``t/a^2``: smoothing radius
    ``sqrt(8t) ~ 2.8 a``, suited to the 8^4-16^4 lattices of this project) and
    ``flow_step`` (default 0.1) set the Wilson flow used by the ``charge``
    observable.  RK3 is stable up to steps ~0.15 and its error is ``O(eps^3)``:
    on a thermalized 8^4 beta = 6 configuration the flowed charge at steps 0.1
    and 0.02 differs by 2e-6, on very rough links by < 1e-3 (a test), far below
    the distance of the charge to an integer.  One flow costs
    ``3 flow_time / flow_step`` staple evaluations plus as many exponentials,
    about three 10-step HMC trajectories at the defaults.
    """

    name = "SU3"

    def __init__(
        self,
        lattice: tuple[int, ...],
        beta: float,
        precision: str = "double",
        device: torch.device | str = "cpu",
        flow_time: float = 1.0,
        flow_step: float = 0.1,
    ):
        self.check_lattice(lattice)
        if not flow_time >= 0 or not flow_step > 0:
            raise ValueError(
                f"flow_time must be >= 0 and flow_step > 0, got {flow_time}, {flow_step}"
            )
        self.lattice = tuple(int(n) for n in lattice)
        self.beta = float(beta)
        self.dtype = DTYPES[precision]
        self.real_dtype = su3.real_dtype(self.dtype)
        self.device = torch.device(device)
        self.flow_time = float(flow_time)
        self.flow_step = float(flow_step)
        self.volume = math.prod(self.lattice)

    @classmethod
    def exact_plaquette(cls, lattice: tuple[int, ...], beta: float) -> ExactValue | None:
        """Strong coupling ``beta/18 + beta^2/216`` for ``beta <= 1``, else nothing is known.

        The one-plaquette character expansion has no ``beta^3`` term; its ``beta^4`` term
        ``-5 beta^4 / 93312`` (Haar moments ``<chi^3> = 1``, ``<|chi|^4> = 2``,
        ``<chi^4 chi*> = 3``) is the uncertainty of the truncated series; 4D corrections start
        at ``O(u^5)``, far smaller for ``beta <= 1``.
        """
        if beta > STRONG_COUPLING_MAX_BETA:
            return None
        return ExactValue(
            beta / 18 + beta**2 / 216, 5 * beta**4 / 93312, "strong coupling beta/18 + beta^2/216"
        )

    @classmethod
    def check_lattice(cls, shape: tuple[int, ...]) -> None:
        """Exactly four extents, each >= 2.

        Two is the smallest extent at which no plaquette contains the same link
        twice (``n + nu != n``), which the staple force and the clover leaves
        assume; physics on such lattices is of course dominated by finite volume.
        """
        if len(shape) != 4:
            raise ValueError(
                f"SU3 lattice needs exactly 4 extents (Nt Nx Ny Nz), got {tuple(shape)}"
            )
        if any(int(n) != n or n < 2 for n in shape):
            raise ValueError(f"SU3 lattice extents must be integers >= 2, got {tuple(shape)}")

    def with_beta(self, beta: float) -> SU3Theory:
        other = copy.copy(self)
        other.beta = float(beta)
        return other

    # ---- links and momenta ------------------------------------------------------------------

    def _link_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, 4, *self.lattice, 3, 3)

    def hot_start(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        return su3.haar((batch, 4, *self.lattice), generator, self.dtype, self.device)

    def cold_start(self, batch: int) -> torch.Tensor:
        eye = torch.eye(3, dtype=self.dtype, device=self.device)
        return eye.expand(self._link_shape(batch)).contiguous()

    def momentum_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, 4, *self.lattice, 8)

    def sample_momentum(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        shape = self.momentum_shape(batch)
        return torch.randn(shape, generator=generator, dtype=self.real_dtype, device=self.device)

    def kinetic_energy(self, p: torch.Tensor) -> torch.Tensor:
        """``sum omega^2 / 2`` per chain, accumulated and returned in float64 (see ``action``)."""
        return 0.5 * p.square().sum(dim=tuple(range(1, p.dim())), dtype=torch.float64)

    def evolve_links(
        self, x: torch.Tensor, p: torch.Tensor, eps: float | torch.Tensor
    ) -> torch.Tensor:
        """``exp(i eps omega^a T^a) U`` with the exact exponential (links stay in SU(3)).

        A tensor ``eps`` broadcasts against the leading dimensions of ``p``
        (a scalar, or one value per chain ``[B]``).  In double precision the
        deviation from unitarity stays at round-off (measured 2e-13 after 3000
        trajectories); in single precision it grows linearly, ~3e-8 per update,
        so complex64 links are reunitarized after every update (a change at the
        round-off level, which leaves reversibility and the Jacobian intact).
        """
        if isinstance(eps, torch.Tensor) and eps.dim() > 0:
            eps = eps.reshape(eps.shape + (1,) * (p.dim() - eps.dim()))
        u = su3.expi_components(eps * p) @ x
        return su3.reunitarize(u) if u.dtype == torch.complex64 else u

    # ---- plaquettes, action, force ----------------------------------------------------------

    def _retr_plaquettes(self, x: torch.Tensor) -> torch.Tensor:
        """``sum_n sum_{mu<nu} Re Tr U_munu(n)`` per chain, accumulated in float64."""
        total = 0.0
        for mu, nu in PLANES:
            *_, a, bb = _plane(x, mu, nu)
            prod = torch.view_as_real(a) * torch.view_as_real(bb)
            total = total + prod.sum(dim=tuple(range(1, prod.dim())), dtype=torch.float64)
        return total

    def action(self, x: torch.Tensor) -> torch.Tensor:
        """Per chain, float64 whatever the precision of the links.

        The Metropolis test needs ``dH``, a difference of energies of order ``10 V``:
        rounded to float32 (ulp 4e-3 on 6^4, 0.06 on 16^4) it would carry errors as large
        as ``dH`` itself, so the energies stay in the float64 they are accumulated in.
        """
        n_plaq = 6 * self.volume
        return self.beta * (n_plaq - self._retr_plaquettes(x) / 3)

    def plaquette(self, x: torch.Tensor) -> torch.Tensor:
        """Average ``Re Tr U_munu / 3`` over sites and the 6 planes, per chain."""
        return (self._retr_plaquettes(x) / (18 * self.volume)).to(self.real_dtype)

    def _loop_traces(self, x: torch.Tensor) -> torch.Tensor:
        """``Im Tr(T^a U_mu(n) Sigma_mu(n))``: momentum shaped ``[B, 4, Nt, Nx, Ny, Nz, 8]``.

        ``U_mu(n) Sigma_mu(n)`` is the sum of the 6 plaquettes through the link,
        each rooted at it with ``U_mu(n)`` undaggered, so a left rotation
        ``exp(i t T^a) U_mu(n)`` changes its trace by ``i t Tr(T^a loop)``.
        Staples are summed in place into the first product of each direction
        (products are not needed by autograd's backward, so this stays differentiable).
        """
        staples: list[torch.Tensor | None] = [None] * 4
        for mu, nu in PLANES:
            u_mu, u_nu, u_nu_fmu, u_mu_fnu, a, bb = _plane(x, mu, nu)
            for d, term in (
                (mu, u_nu_fmu @ bb.mH),
                (mu, _shift(a.mH @ u_nu, nu, -1)),
                (nu, u_mu_fnu @ a.mH),
                (nu, _shift(bb.mH @ u_mu, mu, -1)),
            ):
                staples[d] = term if staples[d] is None else staples[d].add_(term)
        return su3.trace_im(x @ torch.stack(staples, dim=1))

    def force(self, x: torch.Tensor) -> torch.Tensor:
        """``F^a = d/dt S(exp(i t T^a) U)|_0 = (beta/3) Im Tr(T^a U Sigma)`` per link."""
        return self._loop_traces(x) * (self.beta / 3)

    # ---- Wilson flow and topological charge -------------------------------------------------

    def _flow_velocity(self, x: torch.Tensor) -> torch.Tensor:
        """Components ``Z^a`` of ``dV/dt = i Z^a T^a V``, ``Z = -g0^2 F = -(6/beta) F``.

        Luscher's flow ``dV/dt = -g0^2 (d S_W) V`` with ``g0^2 = 6/beta``: the
        gradient of the Wilson action with the coupling scaled out, so the flow
        does not depend on beta.
        """
        return self._loop_traces(x) * -2.0

    def flow(self, x: torch.Tensor, flow_time: float | None = None) -> torch.Tensor:
        """Links after Wilson flow to ``flow_time`` (default ``self.flow_time``), RK3 steps.

        The number of steps is ``round(t / flow_step)`` (at least 1), the step
        ``t / n`` so the flow ends exactly at ``t``.
        """
        t = self.flow_time if flow_time is None else float(flow_time)
        if t == 0:
            return x
        n = max(1, round(t / self.flow_step))
        eps = t / n
        for _ in range(n):
            z0 = self._flow_velocity(x)
            x = self.evolve_links(x, z0, eps / 4)
            mid = self._flow_velocity(x) * (8 / 9) - z0 * (17 / 36)
            x = self.evolve_links(x, mid, eps)
            x = self.evolve_links(x, self._flow_velocity(x) * (3 / 4) - mid, eps)
        return x

    def clover_charge(self, x: torch.Tensor) -> torch.Tensor:
        """``Q = (1/32 pi^2) sum_n eps_{munurhosigma} Tr F_munu F_rhosigma`` per chain.

        ``F_munu(n)`` is the traceless part of ``(Q_munu - Q_munu^dagger) / 8i``
        with ``Q_munu`` the sum of the four plaquettes in the plane that start and
        end at ``n``, all oriented mu -> nu (the clover leaves); it is Hermitian and
        ``a^2 g F_munu + O(a^4)`` for smooth fields.  Differentiable.
        """
        f = []
        for mu, nu in PLANES:
            u_mu, u_nu, u_nu_fmu, u_mu_fnu, a, bb = _plane(x, mu, nu)
            lower_mu = a.mH @ u_nu
            lower_nu = bb.mH @ u_mu
            clover = (
                a @ bb.mH
                + _shift(u_nu_fmu @ lower_nu, mu, -1)
                + _shift(_shift(bb.mH @ a, mu, -1), nu, -1)
                + _shift(lower_mu.mH @ u_mu_fnu.mH, nu, -1)
            )
            f.append(su3.project_antihermitian(clover) / 4j)
        q = 0.0
        for p1, p2, sign in DUAL_PAIRS:
            tr = (f[p1] * f[p2].transpose(-1, -2)).sum(dim=(-1, -2)).real
            q = q + sign * tr.sum(dim=tuple(range(1, tr.dim())))
        return q / (4 * math.pi**2)

    def charge_real(self, x: torch.Tensor) -> torch.Tensor:
        """Clover charge of the links as they are, without flow.

        Differentiable and cheap, so the L2HMC loss can use it; on rough
        configurations it is far from integer (renormalized multiplicatively and
        noisy), which is fine for a loss that only rewards moving it.
        """
        return self.clover_charge(x)

    def charge(self, x: torch.Tensor) -> torch.Tensor:
        """Clover charge after Wilson flow: the flow removes the ultraviolet noise that keeps
        the bare clover charge of rough links away from an integer."""
        return self.clover_charge(self.flow(x))

    def observables(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``plaq``: average plaquette; ``charge``: clover charge after Wilson flow."""
        with torch.no_grad():
            return {
                "plaq": self.plaquette(x),
                "charge": self.charge(x).to(self.real_dtype),
            }
