"""A two-dimensional Gaussian mixture dressed as a "theory" for the samplers.

Equal-weight isotropic Gaussians (two by default) with well separated means: HMC with a small
step size stays in the mode it starts in (the barrier between the modes costs far
more energy than a Gaussian momentum carries), which is the seeds' toy picture of
topological freezing.  A sampler that mixes puts half of its samples in each mode.

It implements :class:`dlhmc.theory.Theory` (not ``GaugeTheory``: it has no plaquettes)
with ``x[B, 2]`` (``lattice = (2,)`` counts the coordinates), ``action = -beta log p(x)``
(``beta`` is an inverse temperature, so annealing works as for the gauge theories), an
analytic force and ``evolve_links = x + eps p``.
"""

from __future__ import annotations

import torch

from dlhmc.theory import LinkAdapter


class Coordinates(LinkAdapter):
    """Real coordinates ``x[B, n]`` as the dense L2HMC family moves them:
    ``x' = x exp(eps s) + eps (v exp(eps q) + t)``, an affine map with ``log|J| = eps s``."""

    n_features = 1
    components = 1
    scales_x = True

    @staticmethod
    def units_of(theory) -> tuple[int, ...]:
        return tuple(theory.lattice)

    def features(self, x):
        return x.flatten(1).unsqueeze(-1)

    def update_x(self, x, v, s, t, q, eps, index, inverse, translation=None):
        coords = x.flatten(1)
        x = coords.index_select(1, index)
        shift = eps * (v.flatten(1).index_select(1, index) * torch.exp(eps * q) + t)
        if inverse:
            new, log_jac = (x - shift) * torch.exp(-eps * s), -eps * s
        else:
            new, log_jac = x * torch.exp(eps * s) + shift, eps * s
        return coords.index_copy(1, index, new).view(v.shape), log_jac.sum(1)


class GaussianMixture:
    """Mixture of Gaussians with means ``centers[i]`` and common width ``sigma``."""

    name = "GMM"

    def __init__(
        self,
        centers: tuple[tuple[float, float], ...] = ((-2.0, 0.0), (2.0, 0.0)),
        sigma: float = 0.3,
        beta: float = 1.0,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ):
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.centers_list = tuple(tuple(float(c) for c in center) for center in centers)
        if len(self.centers_list) < 1 or any(len(c) != 2 for c in self.centers_list):
            raise ValueError("centers: need one or more 2D points")
        self.sigma = float(sigma)
        self.beta = float(beta)
        self.dtype = dtype
        self.device = torch.device(device)
        self.lattice = (2,)
        self.centers = torch.tensor(self.centers_list, dtype=dtype, device=self.device)

    def with_beta(self, beta: float) -> GaussianMixture:
        return GaussianMixture(self.centers_list, self.sigma, beta, self.dtype, self.device)

    def momentum_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, 2)

    def hot_start(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Points spread over the whole mixture (a Gaussian as wide as the set of centres)."""
        spread = self.sigma
        if len(self.centers_list) > 1:
            spread += float(self.centers.std(0).norm())
        z = torch.randn((batch, 2), generator=generator, dtype=self.dtype, device=self.device)
        return self.centers.mean(0) + spread * z

    def cold_start(self, batch: int) -> torch.Tensor:
        """Every chain at the first centre: the start from which mixing has to be earned."""
        return self.centers[0].expand(batch, 2).clone()

    def _log_components(self, x: torch.Tensor) -> torch.Tensor:
        d2 = (x[:, None, :] - self.centers[None]).square().sum(-1)
        return -0.5 * d2 / self.sigma**2

    def action(self, x: torch.Tensor) -> torch.Tensor:
        """``-beta log p(x)`` up to a constant (the normalization of the mixture)."""
        return -self.beta * torch.logsumexp(self._log_components(x), dim=1)

    def force(self, x: torch.Tensor) -> torch.Tensor:
        """``dS/dx = beta sum_i w_i(x) (x - mu_i) / sigma^2`` with posterior weights ``w_i``."""
        w = torch.softmax(self._log_components(x), dim=1)
        return self.beta * (x - w @ self.centers) / self.sigma**2

    def sample_momentum(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn((batch, 2), generator=generator, dtype=self.dtype, device=self.device)

    def kinetic_energy(self, p: torch.Tensor) -> torch.Tensor:
        return 0.5 * p.square().sum(1)

    def evolve_links(self, x: torch.Tensor, p: torch.Tensor, eps: float | torch.Tensor):
        return x + eps * p

    def mode(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest centre."""
        return (x[:, None, :] - self.centers[None]).square().sum(-1).argmin(1)

    def charge_real(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinate along the line from the first to the last centre, in units of their
        distance: it jumps by 1 between those two modes, the role ``Q_R`` plays for U(1).
        """
        axis = self.centers[-1] - self.centers[0]
        return (x - self.centers[0]) @ axis / axis.square().sum().clamp_min(1e-300)

    def observables(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mode": self.mode(x).to(self.dtype), "charge_real": self.charge_real(x)}

    def exact_mode_fractions(self) -> list[float]:
        """Equal weights: each mode holds ``1/n`` of the mass."""
        n = len(self.centers_list)
        return [1.0 / n] * n
