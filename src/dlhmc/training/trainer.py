"""The L2HMC trainer, and ``train``, which builds the trainer of a run's sampler and runs it.

The shared loop (optimizer, generators, checkpoints, resume, MPI averaging, metrics) is
:class:`dlhmc.training.loop.TrainingLoop`; this module adds what L2HMC trains on: a buffer of
Markov chains carried on between steps by the Metropolis test, and the loss of
:mod:`dlhmc.training.loss`.  It is also the ``l2hmc`` entry of
:data:`dlhmc.trained_samplers.SAMPLERS` (``check``, ``build``, ``weight_bound``, ``depth``).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch

from dlhmc import distributed as dist
from dlhmc.families import family
from dlhmc.lattice import make_theory
from dlhmc.samplers.base import metropolis
from dlhmc.samplers.hmc import thermalize
from dlhmc.samplers.l2hmc import L2HMCDynamics, check_network
from dlhmc.settings import RunOptions, TrainSettings
from dlhmc.theory import GaugeTheory
from dlhmc.trained_samplers import trained_sampler
from dlhmc.training import rundir
from dlhmc.training.loop import TrainingLoop
from dlhmc.training.loss import loss_terms, plaquette_from_action
from dlhmc.training.schedules import Schedule

# Statistics averaged over ranks each step (order of the all-reduced vector).
_STATS = ("loss", "accept", "dq2", "sumlogdet", "plaq", "bad_state")


class Trainer(TrainingLoop):
    """The L2HMC training of one rank: the loop of :class:`TrainingLoop` over a chain buffer."""

    non_finite_model = "the update made a parameter or step size non-finite"

    def __init__(
        self,
        theory: GaugeTheory,
        dynamics: L2HMCDynamics,
        schedule: Schedule,
        settings: TrainSettings,
        options: RunOptions,
        ctx: dist.DistContext,
    ):
        super().__init__(theory, dynamics, schedule, settings, options, ctx)
        self.dynamics = dynamics
        self.x: torch.Tensor | None = None

    # -- state ---------------------------------------------------------------------------------

    def start(self, resume: rundir.StoredRun | None, warm: rundir.StoredRun | None) -> None:
        """Continue ``resume``, or start fresh (from the weights of ``warm`` when given) on
        hot-started chains, thermalized by ``therm_hmc`` HMC trajectories."""
        if resume is not None:
            self._restore(resume.state)
        else:
            if warm is not None:
                self._warm_start(warm)
            dist.broadcast_module(self.dynamics)
            hot = self.theory.hot_start(self.settings.batch, self.generator)
            self.x = thermalize(self.theory, hot, self.settings.therm_hmc, self.generator)

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        self.x = state["chains"][self.ctx.rank].clone().to(self.device)

    def local_state(self) -> dict[str, Any]:
        return {"chains": self.x.detach().cpu()}

    def sampler_state(self, gathered: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "l2hmc": self.settings.l2hmc_config().to_dict(),
            "chains": torch.stack([g["chains"] for g in gathered]),
        }

    def hashed_state(self) -> torch.Tensor:
        return self.x

    def finite_extras(self) -> list[torch.Tensor]:
        """The step sizes ``exp(log_eps)``: finite parameters can still overflow them."""
        return [torch.isfinite(self.dynamics.eps_x).all(),
                torch.isfinite(self.dynamics.eps_v).all()]

    def progress(self, row: dict[str, Any]) -> dict[str, str]:
        return {"loss": f"{row['loss']:.3g}", "acc": f"{row['accept']:.2f}"}

    def summary(self, row: dict[str, Any]) -> str:
        return (f"loss {row['loss']:.4g}, accept {row['accept']:.3f}, dq2 {row['dq2']:.4g}, "
                f"beta {row['beta']:.4g}")

    # -- one step -------------------------------------------------------------------------------

    def train_step(self) -> dict[str, Any]:
        """One optimizer step on every rank; returns the rank-averaged metrics."""
        settings = self.settings
        beta_t, theory_t = self.annealed_theory()
        lr = self.optimizer.param_groups[0]["lr"]

        self.optimizer.zero_grad(set_to_none=True)
        proposal = self.dynamics.propose(self.x, self.generator, theory=theory_t)
        loss, stats = loss_terms(theory_t, self.x, proposal, settings.plaq_weight)
        loss.backward()
        grad_norm = self.synchronized_gradients()

        with torch.no_grad():
            x_new, _ = metropolis(proposal.accept_prob, proposal.x, self.x, self.generator)
            plaq = plaquette_from_action(theory_t, theory_t.action(x_new)).mean()
            bad_state = (~torch.isfinite(x_new).all()).to(plaq.dtype)
            local = torch.stack(
                [loss.detach(), stats["accept"], stats["dq2"], stats["sumlogdet"], plaq, bad_state]
            ).to(torch.float64)
            mean = dist.mean_over_ranks(local).tolist()
        values = dict(zip(_STATS, mean, strict=True))
        grad_norm = float(grad_norm)
        skipped = not (math.isfinite(values["loss"]) and math.isfinite(grad_norm))
        skipped = skipped or values["bad_state"] != 0.0
        skipped, reason = self.apply_update(skipped)
        if not skipped:
            self.x = x_new
        with torch.no_grad():
            eps_x = float(self.dynamics.eps_x.mean())
            eps_v = float(self.dynamics.eps_v.mean())
        return {
            "step": self.step,
            "loss": values["loss"],
            "accept": values["accept"],
            "dq2": values["dq2"],
            "plaq": values["plaq"],
            "eps_x_mean": eps_x,
            "eps_v_mean": eps_v,
            "sumlogdet": values["sumlogdet"],
            "beta": beta_t,
            "skipped": int(skipped),
            "reason": reason,
            "lr": lr,
            "grad_norm": grad_norm,
        }


# -- the l2hmc entry of dlhmc.trained_samplers.SAMPLERS ----------------------------------------


def check(theory: GaugeTheory, settings: TrainSettings) -> None:
    """``ValueError`` where the layers cannot be built for ``theory`` (without building them)."""
    check_network(theory, settings.l2hmc_config())


def weight_bound(theory: GaugeTheory, settings: TrainSettings) -> int:
    """A lower bound of the model's weights (the family's, from its real input widths)."""
    return family(settings.network).weight_bound(theory, settings.l2hmc_config())


def depth(settings: TrainSettings) -> int:
    return settings.nlf


def build(settings: TrainSettings, options: RunOptions, ctx: dist.DistContext) -> Trainer:
    """The L2HMC trainer of fresh networks: theory at the target beta, sampler and schedule."""
    theory = make_theory(
        settings.group, settings.lattice, settings.beta, settings.precision, ctx.device
    )
    # Same seed on every rank: one model; rank 0's copy is broadcast anyway.
    torch.manual_seed(settings.seed)
    dynamics = L2HMCDynamics(theory, settings.l2hmc_config()).to(ctx.device)
    return Trainer(theory, dynamics, Schedule.of(settings), settings, options, ctx)


def train(settings: TrainSettings, options: RunOptions, ctx: dist.DistContext) -> tuple[int, int]:
    """Validate, then train (fresh, warm-started or resumed) until ``settings.steps``.

    Returns the steps run by this call and how many of them were skipped (non-finite loss,
    gradient, parameter or step size).  The checkpoints to resume or warm-start from are
    validated, and the outputs checked writable, before anything is written.
    """
    resume, warm = rundir.prepare(settings, options)
    if resume is not None:
        rundir.check_resume(settings, resume, options.out, ctx.world_size)
        if resume.state["step"] >= settings.steps:
            if ctx.is_main:
                print(f"dlhmc train: {options.out} is complete ({resume.state['step']} steps)",
                      file=sys.stderr)
            return 0, 0
    build_trainer = trained_sampler(settings.sampler).trainer_module().build
    trainer = build_trainer(settings, options, ctx)
    trainer.start(resume, warm)  # checks the warm-start weights' shapes: a refusal writes nothing
    rundir.check_outputs(options)
    return trainer.run()
