"""Training a normalizing flow by the reverse Kullback-Leibler divergence (``--sampler flow``).

Each step draws ``batch`` fresh configurations ``z`` from the Haar prior (uniform angles, exact
and independent: no Markov chain, no thermalization), maps them ``x = f(z)`` and minimizes

    ``L = E_z[ log q(f(z)) + S_t(f(z)) ] = KL(q || p_t) - log Z_t``

with ``S_t`` the action at the step's coupling ``gamma_t beta`` (annealing from
``anneal_from``, :class:`~dlhmc.training.schedules.Schedule`).  The expectation is over the
prior, so its gradient is the mean of the per-sample gradients (reparametrization): no samples
of ``p`` are needed, and ``L`` is bounded below by ``-log Z_t``.  With ``flow_gradient: path``
the step uses the path term of that gradient alone (:mod:`dlhmc.flows.path`: the same
expectation, without the noise of the score term, for ~1.45x the cost of a step).

The figure of merit is logged with it: the effective sample size
``ESS = (sum w)^2 / (N sum w^2)`` of the importance weights ``log w = -S_t(x) - log q(x)`` of the
step's batch, in float64 (the weights span many orders of magnitude; ``log Z`` cancels), which
is the fraction of the batch an exact reweighting keeps and roughly the acceptance an
independence Metropolis sampler with these proposals will reach.  Under MPI each rank measures
it on its own batch and the ranks' values are averaged, as the loss is.

Resume, skipped updates, MPI data parallelism, metrics and checkpoints are those of every
sampler (:class:`~dlhmc.training.loop.TrainingLoop`); the checkpoint keeps no chains.  This
module is the ``flow`` entry of :data:`dlhmc.trained_samplers.SAMPLERS`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from dlhmc import distributed as dist
from dlhmc.families.contract import dense_weights
from dlhmc.flows import mixture, path
from dlhmc.flows.coupling import kept_loops
from dlhmc.flows.ess import effective_sample_size
from dlhmc.flows.model import GaugeFlow, check_lattice
from dlhmc.lattice import make_theory
from dlhmc.settings import RunOptions, TrainSettings
from dlhmc.theory import GaugeTheory
from dlhmc.training import rundir
from dlhmc.training.loop import TrainingLoop
from dlhmc.training.loss import plaquette_from_action
from dlhmc.training.schedules import Schedule

METRIC_COLUMNS = (
    "step", "loss", "ess", "plaq", "logdet", "seconds", "beta", "skipped", "lr", "grad_norm",
)  # fmt: skip
# Statistics averaged over ranks each step (order of the all-reduced vector).
_STATS = ("loss", "ess", "plaq", "logdet")


class FlowTrainer(TrainingLoop):
    """The reverse-KL training of a :class:`~dlhmc.flows.model.GaugeFlow` on one rank."""

    columns = METRIC_COLUMNS

    def __init__(self, theory: GaugeTheory, flow: GaugeFlow, schedule: Schedule,
                 settings: TrainSettings, options: RunOptions, ctx: dist.DistContext):
        super().__init__(theory, flow, schedule, settings, options, ctx)
        self.flow = flow
        self.x: torch.Tensor | None = None  # the last step's samples (hashed by --hash-log)

    def start(self, resume: rundir.StoredRun | None, warm: rundir.StoredRun | None) -> None:
        """Continue ``resume``, or start fresh (from the weights of ``warm`` when given)."""
        if resume is not None:
            self._restore(resume.state)
            return
        if warm is not None:
            self._warm_start(warm)
        dist.broadcast_module(self.flow)

    def sampler_state(self, gathered: list[dict[str, Any]]) -> dict[str, Any]:
        return {"flow": self.flow.config.to_dict()}

    def hashed_state(self) -> torch.Tensor:
        return self.x

    def progress(self, row: dict[str, Any]) -> dict[str, str]:
        return {"loss": f"{row['loss']:.4g}", "ess": f"{row['ess']:.2f}"}

    def summary(self, row: dict[str, Any]) -> str:
        return (f"loss {row['loss']:.5g}, ess {row['ess']:.3f}, plaq {row['plaq']:.4f}, "
                f"beta {row['beta']:.4g}")

    def weighted_batch(self, theory_t: GaugeTheory
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """This step's configurations ``x``, ``log|J|``, the action ``S_t(x)`` and the log
        importance weights whose negated mean is the loss: here ``x = f(z)`` of fresh prior
        samples ``z`` and ``log w = -S_t(x) - log q(x)``.  With ``flow_gradient: path`` the
        values come detached and the path gradient of the loss (:mod:`dlhmc.flows.path`) is
        already in the weights' ``.grad``."""
        z = self.theory.hot_start(self.settings.batch, self.generator)
        if self.settings.flow_gradient == "path":
            x, logdet = path.reverse_kl(self.flow, z, theory_t.force)
        else:
            x, logdet = self.flow(z)
        action = theory_t.action(x)
        return x, logdet, action, -(action + self.flow.prior_log_prob(z) - logdet)

    def after_update(self) -> dict[str, Any]:
        """Metrics measured on the updated model (none here)."""
        return {}

    def train_step(self) -> dict[str, Any]:
        """One optimizer step on every rank, minimizing ``-E[log w]`` of
        :meth:`weighted_batch`; returns the rank-averaged metrics."""
        beta_t, theory_t = self.annealed_theory()
        lr = self.optimizer.param_groups[0]["lr"]

        self.optimizer.zero_grad(set_to_none=True)
        x, logdet, action, log_w = self.weighted_batch(theory_t)
        loss = -log_w.mean()
        if loss.requires_grad:  # else the path gradient is in .grad already
            loss.backward()
        grad_norm = float(self.synchronized_gradients())

        with torch.no_grad():
            local = torch.stack([
                loss.detach().to(torch.float64), effective_sample_size(log_w.detach()),
                plaquette_from_action(theory_t, action.detach()).mean().to(torch.float64),
                logdet.detach().mean().to(torch.float64),
            ])  # fmt: skip
            values = dict(zip(_STATS, dist.mean_over_ranks(local).tolist(), strict=True))
        skipped = not (math.isfinite(values["loss"]) and math.isfinite(grad_norm))
        skipped, reason = self.apply_update(skipped)
        self.x = x.detach()
        return {
            "step": self.step,
            **values,
            **self.after_update(),
            "beta": beta_t,
            "skipped": int(skipped),
            "reason": reason,
            "lr": lr,
            "grad_norm": grad_norm,
        }


# -- the flow entry of dlhmc.trained_samplers.SAMPLERS -----------------------------------------


def check(theory: GaugeTheory, settings: TrainSettings) -> None:
    """``ValueError`` (``lattice: ...``) where the link masks do not fit the lattice."""
    check_lattice(theory.lattice, settings.local_period)


def weight_bound(theory: GaugeTheory, settings: TrainSettings) -> int:
    """A lower bound of the flow's weights: per layer a stack of per-site maps from its frozen
    loop features through the hidden widths to the map's parameters."""
    period = settings.local_period
    return sum(
        dense_weights([2 * len(kept_loops(k % 2, (k // 2) % period, period)),
                       *settings.hidden, mixture.N_PARAMETERS])
        for k in range(settings.flow_layers)
    )


def depth(settings: TrainSettings) -> int:
    return settings.flow_layers


def build(settings: TrainSettings, options: RunOptions, ctx: dist.DistContext) -> FlowTrainer:
    """The trainer of a fresh flow: theory at the target beta, flow and schedule."""
    theory = make_theory(
        settings.group, settings.lattice, settings.beta, settings.precision, ctx.device
    )
    # Same seed on every rank: one model; rank 0's copy is broadcast anyway.
    torch.manual_seed(settings.seed)
    flow = GaugeFlow(theory, settings.flow_config())
    return FlowTrainer(theory, flow, Schedule.of(settings), settings, options, ctx)
