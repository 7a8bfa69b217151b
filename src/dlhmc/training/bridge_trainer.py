"""Training a bridge flow between two couplings (``--sampler bridge``).

A bridge ``f`` maps configurations ``U`` of the theory at ``beta_1`` (``--beta-from``, the
ensemble in ``--data``, written by ``dlhmc hmc --save-every``) towards the theory at ``beta_2``
(``--beta``).  The density it pushes ``p_1`` to is ``f_* p_1(f(U)) = p_1(U) / |J_f(U)|``, so

    ``KL(f_* p_1 || p_2) = E_{U ~ p_1}[ S_2(f(U)) - S_1(U) - log|J_f(U)| ] + log Z_2 - log Z_1``

and each step minimizes the sample mean of the bracket, ``-E[log w]``, over ``batch``
configurations drawn from the stored ensemble, with the importance weights

    ``log w(U) = -S_2(f(U)) + S_1(U) + log|J_f(U)|``

(normalized by their mean wherever they are used: ``Z_1 / Z_2`` is unknown).  The loss is
``KL + log(Z_2 / Z_1)``: it falls to the free-energy difference, not to 0.  Unlike the reverse
KL of a flow from the prior it needs samples of ``p_1`` and it is mass-covering in ``p_1``:
configurations of the first ensemble that ``p_2`` disfavours are pushed, not dropped.

Why a bridge: ``<O>_2 = <w O(f(U))>_1 / <w>_1`` is exact for any ``f``; with ``f`` the identity
it is plain reweighting, whose weights degrade like ``exp(-c (beta_2 - beta_1)^2 V)``, and a
trained ``f`` moves each configuration to where ``p_2`` wants it.  The figure of merit is the
effective sample size ``ESS = (sum w)^2 / (N sum w^2)`` in float64 (metrics ``ess``, the
training batch's).  A batch drawn from the data the bridge is trained on overstates it, so the
last quarter of the chains of ``--data`` (at least one chain) is held out: its ESS
(``heldout_ess``) is measured at every checkpoint (``--checkpoint-every``) and at the end, and
the checkpoint's ``bridge`` entry keeps the last value beside the identity's (plain
reweighting of the same configurations).

The bridge starts at the identity: a bridge between nearby couplings is a small deformation,
so the last (head) layer of every coupling network is zeroed and each circle map is exactly
``y -> y`` (:mod:`dlhmc.flows.mixture`): step 0 is plain reweighting, bit for bit.  The
networks' outputs are scaled with the step (:func:`dlhmc.flows.model.bridge_output_scale`), so
that one learning rate fits every spacing.

Each step draws its configurations (without repetition within the batch) from the training
chains with the run's generator, so a resumed run is bit-identical; under MPI every rank draws
its own batch with its own stream (``seed + rank``) and the gradients are averaged.  The held-out
ESS is measured on rank 0 only and draws no random numbers.  This module is the ``bridge`` entry
of :data:`dlhmc.trained_samplers.SAMPLERS`; :func:`dlhmc.flows.store.load_bridge` loads the
result.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlhmc import distributed as dist
from dlhmc.configurations import links_of
from dlhmc.flows.ess import effective_sample_size
from dlhmc.flows.model import GaugeFlow, bridge_output_scale
from dlhmc.group.u1 import wrap
from dlhmc.io import read_chains
from dlhmc.lattice import make_theory
from dlhmc.settings import RunOptions, TrainSettings
from dlhmc.theory import GaugeTheory, same_coupling
from dlhmc.training import flow_trainer
from dlhmc.training.flow_trainer import FlowTrainer
from dlhmc.training.schedules import Schedule

METRIC_COLUMNS = (
    "step", "loss", "ess", "heldout_ess", "plaq", "logdet", "seconds", "beta", "skipped", "lr",
    "grad_norm",
)  # fmt: skip
# The held-out part: the last chains // HELD_OUT_PART chains of the file, at least one.
HELD_OUT_PART = 4

# What a bridge shares with a flow from the prior: the architecture and its size.
weight_bound = flow_trainer.weight_bound
depth = flow_trainer.depth


def held_out_chains(chains: int) -> int:
    """How many of the ``chains`` of the data (its last ones) are held out."""
    return max(1, chains // HELD_OUT_PART)


@dataclass(frozen=True)
class Ensemble:
    """The configurations of ``--data`` as links ``[n, ...]``: the training chains' and the
    held-out chains' (each chain's saved configurations, chain after chain)."""

    train: torch.Tensor
    heldout: torch.Tensor


def read_ensemble(settings: TrainSettings) -> torch.Tensor:
    """The configurations of ``settings.data`` ``[chain, saved, ...]`` (float64, CPU), checked
    against the bridge's settings; ``ValueError`` naming the setting at fault (``data: ...``,
    ``beta_from: ...``, ``batch: ...``, ``anneal_from: ...``)."""
    if settings.beta_from is None:
        raise ValueError("beta_from: required by sampler bridge (the coupling of --data)")
    if settings.data is None:
        raise ValueError("data: required by sampler bridge (a chain file of dlhmc hmc "
                         "--save-every K at --beta-from)")
    if same_coupling(settings.beta_from, settings.beta):
        raise ValueError(f"beta_from: equals --beta {settings.beta:g}; a bridge maps one "
                         "coupling to another")
    if settings.anneal_from != 1.0:
        raise ValueError("anneal_from: a bridge is trained at --beta from its first step (its "
                         "configurations come from --beta-from, not from a prior); leave it at 1")
    path = Path(settings.data)
    try:
        dataset = read_chains(path)
    except FileNotFoundError:
        raise ValueError(f"data: no file {path}") from None
    except ValueError as err:  # read_chains' checks name the file
        raise ValueError(f"data: {str(err).splitlines()[0]}") from None
    except Exception as err:  # a directory, a foreign or damaged file
        raise ValueError(f"data: cannot read {path} as a chain file ({type(err).__name__})"
                         ) from None
    attrs = dataset.attrs
    group = attrs.get("group")
    if group != settings.group:
        raise ValueError(f"data: {path} holds {group} configurations, not --group "
                         f"{settings.group}")
    lattice = tuple(int(n) for n in np.atleast_1d(attrs.get("lattice", ())))
    if lattice != tuple(settings.lattice):
        raise ValueError(f"data: {path} holds configurations of the lattice "
                         f"{' '.join(map(str, lattice))}, not --lattice "
                         f"{' '.join(map(str, settings.lattice))}")
    beta = float(attrs.get("beta", float("nan")))
    if not same_coupling(beta, settings.beta_from):
        raise ValueError(f"beta_from: {settings.beta_from:g} is not the coupling of --data "
                         f"{path} (beta {beta:g})")
    links = links_of(dataset, f"data: {path}", torch.float64)
    chains, saved = links.shape[:2]
    if chains < 2:
        raise ValueError(f"data: {path} holds 1 chain; a bridge needs 2 or more (the last "
                         "quarter of the chains, at least one, is held out to measure the ESS)")
    train = (chains - held_out_chains(chains)) * saved
    if train < settings.batch:
        raise ValueError(f"batch: {settings.batch} configurations per step, but --data {path} "
                         f"holds {train} for training ({chains - held_out_chains(chains)} "
                         f"chains x {saved} saved; the last {held_out_chains(chains)} chains "
                         "are held out)")
    return links


def ensemble(settings: TrainSettings, theory: GaugeTheory) -> Ensemble:
    """The checked data split into training and held-out chains, as links of ``theory``'s
    precision on its device, the angles brought into ``[-pi, pi)`` once in that precision
    (rounding to single can reach ``pi``): the identity then maps them onto themselves."""
    links = read_ensemble(settings)
    held = held_out_chains(links.shape[0])
    links = wrap(links.to(device=theory.device, dtype=theory.dtype))
    return Ensemble(links[:-held].flatten(0, 1), links[-held:].flatten(0, 1))


def identity_start(flow: GaugeFlow) -> GaugeFlow:
    """``flow`` with the head of every coupling network zeroed: all map parameters are 0 (log
    scales 0, uniform mixture weights, no rotation), so every layer is exactly the identity with
    ``log|J| = 0``; the bodies keep their random weights, so the heads' first gradients differ
    from site to site and training moves away from the identity at once."""
    with torch.no_grad():
        for layer in flow.layers:
            layer.net.head.weight.zero_()
            layer.net.head.bias.zero_()
    return flow


class BridgeTrainer(FlowTrainer):
    """The training of a bridge ``f: beta_from -> beta`` on one rank (see the module)."""

    columns = METRIC_COLUMNS

    def __init__(self, theory: GaugeTheory, flow: GaugeFlow, schedule: Schedule,
                 settings: TrainSettings, options: RunOptions, ctx: dist.DistContext,
                 data: Ensemble):
        super().__init__(theory, flow, schedule, settings, options, ctx)
        self.theory_from = theory.with_beta(settings.beta_from)
        self.data = data
        self.heldout_ess: float | None = None
        self.identity_ess = self.heldout_effective_sample_size(identity=True)

    def log_weights(self, u: torch.Tensor, identity: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x = f(U)`` (``U`` itself for ``identity``), ``log|J|``, ``S_2(x)`` and
        ``log w = -S_2(x) + S_1(U) + log|J|``."""
        x, logdet = (u, u.new_zeros(u.shape[0])) if identity else self.flow(u)
        action = self.theory.action(x)
        return x, logdet, action, self.theory_from.action(u) - action + logdet

    def weighted_batch(self, theory_t: GaugeTheory):
        """``batch`` training configurations drawn without repetition by the run's generator."""
        n = self.data.train.shape[0]
        pick = torch.randperm(n, generator=self.generator, device=self.device)
        return self.log_weights(self.data.train[pick[: self.settings.batch]])

    @torch.no_grad()
    def heldout_effective_sample_size(self, identity: bool = False) -> float:
        """The ESS of the weights of every held-out configuration (float64), in batches."""
        log_w = [self.log_weights(u, identity)[3]
                 for u in self.data.heldout.split(self.settings.batch)]
        return float(effective_sample_size(torch.cat(log_w)))

    def after_update(self) -> dict[str, Any]:
        """The held-out ESS at checkpoint steps and at the end (rank 0), else an empty cell."""
        due = self.step % self.options.checkpoint_every == 0 or self.step == self.settings.steps
        if not (due and self.ctx.is_main):
            return {"heldout_ess": ""}
        self.heldout_ess = self.heldout_effective_sample_size()
        return {"heldout_ess": self.heldout_ess}

    def sampler_state(self, gathered: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            **super().sampler_state(gathered),
            "bridge": {
                "train_configurations": int(self.data.train.shape[0]),
                "heldout_configurations": int(self.data.heldout.shape[0]),
                "heldout_ess_identity": self.identity_ess,
                "heldout_ess": self.heldout_ess,
            },
        }

    def summary(self, row: dict[str, Any]) -> str:
        return (f"loss {row['loss']:.5g}, ess {row['ess']:.3f}, held-out ess "
                f"{self.heldout_ess:.3f} (identity {self.identity_ess:.3f}), beta "
                f"{self.settings.beta_from:g} -> {row['beta']:g}")


# -- the bridge entry of dlhmc.trained_samplers.SAMPLERS ---------------------------------------


def check(theory: GaugeTheory, settings: TrainSettings) -> None:
    """The masks fit the lattice and ``--data`` fits the run (:func:`read_ensemble`)."""
    flow_trainer.check(theory, settings)
    read_ensemble(settings)


def build(settings: TrainSettings, options: RunOptions, ctx: dist.DistContext) -> BridgeTrainer:
    """The trainer of a fresh bridge: theory at the target beta, data, the identity flow."""
    theory = make_theory(
        settings.group, settings.lattice, settings.beta, settings.precision, ctx.device
    )
    data = ensemble(settings, theory)
    # Same seed on every rank: one model (the bodies' random weights); broadcast anyway.
    torch.manual_seed(settings.seed)
    config = replace(settings.flow_config(),
                     output_scale=bridge_output_scale(settings.beta_from, settings.beta))
    flow = identity_start(GaugeFlow(theory, config))
    return BridgeTrainer(theory, flow, Schedule.of(settings), settings, options, ctx, data)
