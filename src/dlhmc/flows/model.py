"""The flow: a stack of coupling layers over the Haar prior, and its architecture settings.

``x = f(z)`` with ``z`` uniform angles (the Haar measure of U(1), i.e. the theory at beta 0:
sampled exactly and independently, with the constant density ``(2 pi)^-n_links``), and
``q(x) = r(z) / |det df/dz|``.  Layer ``k`` uses the mask ``(mu, o) = (k mod 2, (k // 2) mod
p)``: consecutive layers alternate the direction and walk the offset, so ``2 p`` layers move
every link once (Albergo et al. use 16 layers with ``p = 4``: every link twice).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from dlhmc.families.local_u1 import link_masks
from dlhmc.flows.coupling import PlaquetteCoupling, batch_first, batch_last
from dlhmc.nets import ACTIVATIONS

TWO_PI = 2.0 * math.pi
# Periods of the link masks (as the local L2HMC family's).
PERIODS = (2, 4)
# The groups a flow can move: the coupling layers are U(1) circle maps.
GROUPS = ("U1",)
# Estimators of the reverse-KL gradient (the training setting flow_gradient): reparam, autograd
# of log q + S through the flow; path, its path term alone (dlhmc.flows.path).
FLOW_GRADIENTS = ("reparam", "path")
# The spacing of couplings at which a bridge's network outputs are taken as they are (the
# workflow's bridge learning rate was tuned there): bridge_output_scale.
REFERENCE_SPACING = 0.5


@dataclass(frozen=True)
class FlowConfig:
    """Architecture of a flow; stored in checkpoints via ``to_dict``.

    ``layers`` coupling layers (0: the identity), ``hidden`` the channels of each layer's 3x3
    convolutions, ``local_period`` the period of the link masks, ``output_scale`` a fixed factor
    on every coupling network's output (1 for a flow from the prior; a bridge sets it from its
    step, :func:`bridge_output_scale`).
    """

    layers: int = 16
    hidden: tuple[int, ...] = (8, 8)
    activation: str = "swish"
    local_period: int = 4
    output_scale: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if isinstance(self.layers, bool) or not isinstance(self.layers, int) or self.layers < 0:
            raise ValueError(f"layers: expected an integer >= 0, got {self.layers!r}")
        if not self.hidden or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0
                                      for h in self.hidden):
            raise ValueError(f"hidden: expected one or more positive widths, got {self.hidden}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)}, "
                             f"got {self.activation!r}")
        if self.local_period not in PERIODS:
            raise ValueError(f"local_period: expected one of {PERIODS}, "
                             f"got {self.local_period!r}")
        scale = self.output_scale
        if (isinstance(scale, bool) or not isinstance(scale, (int, float))
                or not math.isfinite(scale) or scale <= 0):
            raise ValueError(f"output_scale: expected a finite number > 0, got {scale!r}")
        object.__setattr__(self, "output_scale", float(scale))

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, d: dict) -> FlowConfig:
        """The architecture a checkpoint stored, every field present (``ValueError`` naming the
        key otherwise: a damaged checkpoint must not silently build a default flow).  A
        checkpoint written before ``output_scale`` existed was trained without one: 1."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: not a flow setting")
        missing = sorted(known - set(d) - {"output_scale"})
        if missing:
            raise ValueError(f"{missing[0]}: missing")
        if not isinstance(d["hidden"], (list, tuple)):
            raise ValueError(f"hidden: expected a list of integers, got {d['hidden']!r}")
        return cls(**d)


def bridge_output_scale(beta_from: float, beta: float) -> float:
    """The output scale of a bridge from ``beta_from`` to ``beta``: ``|beta - beta_from| /
    REFERENCE_SPACING``.

    Why: the best bridge over a small step ``d`` is the identity plus a displacement of order
    ``d`` (the derivative of the trivializing map along the coupling), while Adam moves every
    weight by about the learning rate per step whatever the gradient's size.  With the networks'
    outputs multiplied by ``d``, the weights encode the displacement per unit of coupling, of the
    same size at every step, so one learning rate fits every spacing of a ladder; unscaled, a
    rate tuned at spacing 0.5 leaves the map at spacing 0.0625 as noisy as the map itself
    (docs/results.md, 2026-12-07).  At the reference spacing the factor is 1."""
    return abs(float(beta) - float(beta_from)) / REFERENCE_SPACING


def check_lattice(lattice: tuple[int, ...], period: int) -> None:
    """``ValueError`` (``lattice: ...``) unless the masks of ``period`` fit ``lattice``."""
    link_masks(tuple(lattice), period)


class GaugeFlow(nn.Module):
    """``layers`` coupling layers on the links of ``theory`` (a U(1) theory), in its precision
    and on its device.  The lattice enters only the masks: the state dict is the same for
    every volume."""

    def __init__(self, theory, config: FlowConfig):
        super().__init__()
        if theory.name not in GROUPS:
            raise ValueError(f"group: flows are implemented for {', '.join(GROUPS)} only, "
                             f"got {theory.name}")
        self.theory = theory
        self.config = config
        period = config.local_period
        subs, masks = link_masks(tuple(theory.lattice), period)
        moving = dict(zip(subs, masks, strict=True))
        layers = []
        for k in range(config.layers):
            mu, offset = k % 2, (k // 2) % period
            layers.append(PlaquetteCoupling(mu, offset, period, moving.get((mu, offset)),
                                            config.hidden, config.activation,
                                            config.output_scale))
        self.layers = nn.ModuleList(layers)
        self.to(device=theory.device, dtype=theory.dtype)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = f(z)`` and ``log|det dx/dz|`` per chain, differentiable in ``z`` and weights."""
        x, logdet = batch_last(z), z.new_zeros(z.shape[0])
        for layer in self.layers:
            x, log_j = layer(x)
            logdet = logdet + log_j
        return batch_first(x), logdet

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z = f^-1(x)`` and ``log|det dz/dx|`` per chain (minus the forward's at ``z``)."""
        z, logdet = batch_last(x), x.new_zeros(x.shape[0])
        for layer in reversed(self.layers):
            z, log_j = layer.inverse(z)
            logdet = logdet + log_j
        return batch_first(z), logdet

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """The Haar density of uniform angles, ``-n_links log(2 pi)`` per chain."""
        return z.new_full((z.shape[0],), -z[0].numel() * math.log(TWO_PI))

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` configurations ``x = f(z)``, ``z`` from the prior drawn with ``generator``, and
        ``log q(x) = log r(z) - log|det df/dz|``."""
        z = self.theory.hot_start(n, generator)
        x, logdet = self(z)
        return x, self.prior_log_prob(z) - logdet
