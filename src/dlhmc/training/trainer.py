"""The training loop of one rank, and ``train``, which builds what the loop receives.

Reproducibility: the schedules are functions of the step counter, every random number comes
from one explicit generator per rank (seeded ``seed + rank``) plus torch's global generator
(network initialization), and all of them are stored in the checkpoint, so that a killed and
resumed run ends with exactly the checkpoint of an uninterrupted one (CPU; on GPUs up to
non-deterministic kernels).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import torch
from tqdm import tqdm

from dlhmc import checkpoint as ckpt
from dlhmc import distributed as dist
from dlhmc.lattice import make_theory
from dlhmc.samplers.base import metropolis
from dlhmc.samplers.hmc import thermalize
from dlhmc.samplers.l2hmc import L2HMCDynamics
from dlhmc.settings import RunOptions, TrainSettings
from dlhmc.theory import GaugeTheory
from dlhmc.training import rundir
from dlhmc.training.events import EventLog
from dlhmc.training.loss import loss_terms, plaquette_from_action
from dlhmc.training.schedules import Schedule

# Statistics averaged over ranks each step (order of the all-reduced vector).
_STATS = ("loss", "accept", "dq2", "sumlogdet", "plaq", "bad_state")


class Trainer:
    """One rank's view of a training run; rank 0 also writes the run directory.

    It receives the theory at the target beta, the sampler (its networks initialized) and the
    schedule; ``settings`` supplies the optimizer's numbers and what the checkpoint records.
    """

    def __init__(
        self,
        theory: GaugeTheory,
        dynamics: L2HMCDynamics,
        schedule: Schedule,
        settings: TrainSettings,
        options: RunOptions,
        ctx: dist.DistContext,
    ):
        self.theory = theory
        self.dynamics = dynamics
        self.schedule = schedule
        self.settings = settings
        self.options = options
        self.ctx = ctx
        self.run_dir = options.out
        self.device = ctx.device
        self.params = [p for p in self.dynamics.parameters() if p.requires_grad]
        # fused: one kernel for all parameters (4x faster steps than the per-tensor loop).
        self.optimizer = torch.optim.Adam(self.params, lr=settings.lr, fused=True)
        # A lambda, not the bound method: LambdaLR stores no state for plain functions, so the
        # checkpoint's scheduler entry stays as it was.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: schedule.lr_factor(step)
        )
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(settings.seed + ctx.rank)
        self.step = 0
        self.seconds_before = 0.0
        self.previous_seconds = 0.0
        self.x: torch.Tensor | None = None

    # -- state ---------------------------------------------------------------------------------

    def start(self, resume: rundir.StoredRun | None, warm: rundir.StoredRun | None) -> None:
        """Continue ``resume``, or start fresh (from the weights of ``warm`` when given)."""
        if resume is not None:
            self._restore(resume.state)
        else:
            if warm is not None:
                self._warm_start(warm)
            dist.broadcast_module(self.dynamics)
            hot = self.theory.hot_start(self.settings.batch, self.generator)
            self.x = thermalize(self.theory, hot, self.settings.therm_hmc, self.generator)

    def _warm_start(self, warm: rundir.StoredRun) -> None:
        """Load another run's weights; shapes must match."""
        rundir.check_weights(self.dynamics.state_dict(), warm)
        self.dynamics.load_state_dict(warm.state["model"])
        self.previous_seconds = ckpt.training_seconds_total(warm.state)

    def _restore(self, state: dict[str, Any]) -> None:
        rank = self.ctx.rank
        try:
            ckpt.check_weights(self.dynamics.state_dict(), state["model"])
        except ValueError as err:
            path = ckpt.checkpoint_path(self.run_dir)
            raise rundir.TrainingError(f"--out: {path}: {err}") from None
        self.dynamics.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # Rows of the stacked per-rank tensors are views with an offset: generators need their
        # own contiguous state tensor.
        self.x = state["chains"][rank].clone().to(self.device)
        self.generator.set_state(state["rng"]["chain"][rank].clone())
        torch.set_rng_state(state["rng"]["torch"][rank].clone())
        self.step = int(state["step"])
        self.seconds_before = float(state["timing"]["training_seconds"])
        self.previous_seconds = float(state["timing"]["previous_training_seconds"])

    def checkpoint_state(self, seconds: float) -> dict[str, Any] | None:
        """The checkpoint dict on rank 0 (``None`` on other ranks); collective."""
        local = {
            "chains": self.x.detach().cpu(),
            "chain_rng": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        gathered = dist.gather_to_main(self.ctx, local)
        if not self.ctx.is_main:
            return None
        return {
            "step": self.step,
            "world_size": self.ctx.world_size,
            "metrics_rows": self.step,
            "config": self.settings.to_dict(),
            "l2hmc": self.settings.l2hmc_config().to_dict(),
            "model": self.dynamics.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "chains": torch.stack([g["chains"] for g in gathered]),
            "rng": {
                "chain": torch.stack([g["chain_rng"] for g in gathered]),
                "torch": torch.stack([g["torch_rng"] for g in gathered]),
            },
            "timing": {
                "training_seconds": seconds,
                "previous_training_seconds": self.previous_seconds,
            },
        }

    def save(self, seconds: float) -> None:
        state = self.checkpoint_state(seconds)
        if state is None:
            return
        if not ckpt.all_finite({k: state[k] for k in ("model", "optimizer", "chains")}):
            raise RuntimeError("refusing to write a checkpoint with non-finite values")
        ckpt.save(ckpt.checkpoint_path(self.run_dir), state)

    # -- one step -------------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        """One optimizer step on every rank; returns the rank-averaged metrics."""
        settings = self.settings
        beta_t = self.schedule.gamma(self.step) * self.theory.beta
        theory_t = self.theory if beta_t == self.theory.beta else self.theory.with_beta(beta_t)
        lr = self.optimizer.param_groups[0]["lr"]

        self.optimizer.zero_grad(set_to_none=True)
        proposal = self.dynamics.propose(self.x, self.generator, theory=theory_t)
        loss, stats = loss_terms(theory_t, self.x, proposal, settings.plaq_weight)
        loss.backward()
        dist.average_gradients(self.dynamics)
        max_norm = settings.clip if settings.clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)

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
        reason = "non-finite loss or gradient"
        if not skipped:
            saved = self._snapshot()
            self.optimizer.step()
            if self._finite_model():
                self.x = x_new
            else:
                self._restore_snapshot(saved)
                skipped, reason = True, "the update made a parameter or step size non-finite"
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
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

    def _snapshot(self) -> tuple[list[torch.Tensor], dict]:
        """Copies of the parameters and of Adam's state, taken just before ``optimizer.step()``.

        Why: one step with a too large learning rate can move a log step size to ~500, whose
        ``exp`` is infinite in single precision; every later trajectory is then NaN.  Copies
        (no random numbers, no arithmetic on the originals) keep resumed runs bit-identical.
        """
        with torch.no_grad():
            params = [p.detach().clone() for p in self.params]
            state = {p: {k: v.clone() if torch.is_tensor(v) else v for k, v in st.items()}
                     for p, st in self.optimizer.state.items()}
        return params, state

    def _restore_snapshot(self, saved: tuple[list[torch.Tensor], dict]) -> None:
        params, state = saved
        with torch.no_grad():
            for p, copy in zip(self.params, params, strict=True):
                p.copy_(copy)
        self.optimizer.state.clear()
        self.optimizer.state.update(state)

    def _finite_model(self) -> bool:
        """Every parameter and every step size ``exp(log_eps)`` finite (one host sync)."""
        with torch.no_grad():
            flags = [torch.isfinite(p).all() for p in self.params]
            flags += [torch.isfinite(self.dynamics.eps_x).all(),
                      torch.isfinite(self.dynamics.eps_v).all()]
            return bool(torch.stack(flags).all())

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> tuple[int, int]:
        """Train to ``settings.steps``; returns the steps run and how many were skipped."""
        settings, ctx = self.settings, self.ctx
        steps_run = skipped = 0
        metrics_path = self.run_dir / rundir.METRICS_FILE
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale_temporaries(self.run_dir)
            rundir.write_config(settings, self.options)
            rundir.truncate_metrics(metrics_path, self.step)
        hash_log = None
        if self.options.hash_log is not None:
            self.options.hash_log.mkdir(parents=True, exist_ok=True)
            hash_log = rundir.hash_log_path(self.options.hash_log, ctx.rank)
            rundir.truncate_hash_log(hash_log, self.step)
        bar = tqdm(
            total=settings.steps,
            initial=self.step,
            disable=self.options.no_progress or not (ctx.is_main and sys.stderr.isatty()),
            desc="train",
            file=sys.stderr,
            dynamic_ncols=True,
        )
        metrics = open(metrics_path, "a") if ctx.is_main else None
        events = EventLog(self.run_dir, self.step) if ctx.is_main else None
        t_start = time.perf_counter()
        try:
            while self.step < settings.steps:
                t0 = time.perf_counter()
                row = self.train_step()
                row["seconds"] = time.perf_counter() - t0
                steps_run += 1
                skipped += row["skipped"]
                if hash_log is not None:
                    rundir.append_hashes(hash_log, self.step, self.params, self.x)
                if metrics is not None:
                    metrics.write(rundir.format_row(row) + "\n")
                    metrics.flush()
                    events.write(row)
                    if row["skipped"]:
                        bar.write(
                            f"dlhmc train: step {row['step']}: {row['reason']} "
                            f"(loss={row['loss']}, grad_norm={row['grad_norm']}); update skipped",
                            file=sys.stderr,
                        )
                bar.set_postfix(
                    loss=f"{row['loss']:.3g}", acc=f"{row['accept']:.2f}", refresh=False
                )
                bar.update(1)
                if self.step % self.options.checkpoint_every == 0 or self.step == settings.steps:
                    seconds = self.seconds_before + time.perf_counter() - t_start
                    self.save(seconds)
                    if ctx.is_main:  # one line per checkpoint: readable in batch-job logs
                        bar.write(
                            f"dlhmc train: checkpoint at step {self.step}/{settings.steps} "
                            f"({seconds:.0f} s): loss {row['loss']:.4g}, accept "
                            f"{row['accept']:.3f}, dq2 {row['dq2']:.4g}, beta {row['beta']:.4g}",
                            file=sys.stderr,
                        )
        finally:
            bar.close()
            if metrics is not None:
                metrics.close()
                events.close()
        return steps_run, skipped


def build(settings: TrainSettings, options: RunOptions, ctx: dist.DistContext) -> Trainer:
    """The trainer of fresh networks: theory at the target beta, sampler and schedule."""
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
    trainer = build(settings, options, ctx)
    trainer.start(resume, warm)  # checks the warm-start weights' shapes: a refusal writes nothing
    rundir.check_outputs(options)
    return trainer.run()
