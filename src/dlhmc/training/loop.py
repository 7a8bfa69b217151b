"""What every trained sampler's training shares: optimizer, generators, checkpoints and the loop.

A trainer (:class:`dlhmc.training.trainer.Trainer` for L2HMC,
:class:`dlhmc.training.flow_trainer.FlowTrainer` for flows) subclasses :class:`TrainingLoop` and
supplies its model, how a run starts (:meth:`~TrainingLoop.start`), one optimizer step
(:meth:`~TrainingLoop.train_step`, which ends in :meth:`~TrainingLoop.apply_update`), its
metrics columns and what its checkpoint adds.  Everything else is written once here, so every
sampler resumes bit-identically, skips non-finite updates the same way, trains data-parallel
over MPI ranks and writes the same run directory.

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
import warnings
from abc import ABC, abstractmethod
from typing import Any

import torch
from tqdm import tqdm

from dlhmc import checkpoint as ckpt
from dlhmc import distributed as dist
from dlhmc.settings import RunOptions, TrainSettings
from dlhmc.theory import GaugeTheory
from dlhmc.training import rundir
from dlhmc.training.events import EventLog
from dlhmc.training.schedules import Schedule


class TrainingLoop(ABC):
    """One rank's view of a training run; rank 0 also writes the run directory.

    It receives the theory at the target beta, the model (its networks initialized) and the
    schedule; ``settings`` supplies the optimizer's numbers and what the checkpoint records.
    """

    # metrics.csv columns, in order (the rows of train_step plus "seconds").
    columns: tuple[str, ...] = rundir.METRIC_COLUMNS
    # What a non-finite model after an update means, for the skipped step's message.
    non_finite_model = "the update made a parameter non-finite"

    def __init__(
        self,
        theory: GaugeTheory,
        model: torch.nn.Module,
        schedule: Schedule,
        settings: TrainSettings,
        options: RunOptions,
        ctx: dist.DistContext,
    ):
        self.theory = theory
        self.model = model
        self.schedule = schedule
        self.settings = settings
        self.options = options
        self.ctx = ctx
        self.run_dir = options.out
        self.device = ctx.device
        self.params = [p for p in self.model.parameters() if p.requires_grad]
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

    # -- what a sampler supplies -----------------------------------------------------------------

    @abstractmethod
    def start(self, resume: rundir.StoredRun | None, warm: rundir.StoredRun | None) -> None:
        """Continue ``resume``, or start fresh (from the weights of ``warm`` when given)."""

    @abstractmethod
    def train_step(self) -> dict[str, Any]:
        """One optimizer step on every rank; returns the rank-averaged metrics row."""

    @abstractmethod
    def sampler_state(self, gathered: list[dict[str, Any]]) -> dict[str, Any]:
        """The checkpoint entries of this sampler (its architecture, its chains)."""

    @abstractmethod
    def hashed_state(self) -> torch.Tensor:
        """The per-step state hashed beside the parameters in ``--hash-log`` files."""

    def local_state(self) -> dict[str, Any]:
        """What this rank adds to the checkpoint besides its generators (gathered on rank 0)."""
        return {}

    def finite_extras(self) -> list[torch.Tensor]:
        """Boolean flags besides the parameters that must be finite after an update."""
        return []

    def progress(self, row: dict[str, Any]) -> dict[str, str]:
        """The progress bar's figures of a metrics row."""
        return {"loss": f"{row['loss']:.3g}"}

    def summary(self, row: dict[str, Any]) -> str:
        """The checkpoint line's figures of a metrics row."""
        return f"loss {row['loss']:.4g}, beta {row['beta']:.4g}"

    # -- state ---------------------------------------------------------------------------------

    def _warm_start(self, warm: rundir.StoredRun) -> None:
        """Load another run's weights; shapes must match."""
        rundir.check_weights(self.model.state_dict(), warm)
        self.model.load_state_dict(warm.state["model"])
        self.previous_seconds = ckpt.training_seconds_total(warm.state)

    def _restore(self, state: dict[str, Any]) -> None:
        """The model, optimizer, schedule, generators and clocks of a checkpoint."""
        rank = self.ctx.rank
        try:
            ckpt.check_weights(self.model.state_dict(), state["model"])
        except ValueError as err:
            path = ckpt.checkpoint_path(self.run_dir)
            raise rundir.TrainingError(f"--out: {path}: {err}") from None
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # Rows of the stacked per-rank tensors are views with an offset: generators need their
        # own contiguous state tensor.
        self.generator.set_state(state["rng"]["chain"][rank].clone())
        torch.set_rng_state(state["rng"]["torch"][rank].clone())
        self.step = int(state["step"])
        self.seconds_before = float(state["timing"]["training_seconds"])
        self.previous_seconds = float(state["timing"]["previous_training_seconds"])

    def checkpoint_state(self, seconds: float) -> dict[str, Any] | None:
        """The checkpoint dict on rank 0 (``None`` on other ranks); collective."""
        local = {
            **self.local_state(),
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
            "sampler": self.settings.sampler,
            "config": self.settings.to_dict(),
            **self.sampler_state(gathered),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
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
        tensors = {k: state[k] for k in ("model", "optimizer", "chains") if k in state}
        if not ckpt.all_finite(tensors):
            raise RuntimeError("refusing to write a checkpoint with non-finite values")
        ckpt.save(ckpt.checkpoint_path(self.run_dir), state)

    # -- the update ----------------------------------------------------------------------------

    def annealed_theory(self) -> tuple[float, GaugeTheory]:
        """This step's coupling ``beta_t = gamma_t beta`` (the annealing schedule) and the theory
        at it (the target's own object once annealing is over)."""
        beta_t = self.schedule.gamma(self.step) * self.theory.beta
        return beta_t, self.theory if beta_t == self.theory.beta else self.theory.with_beta(beta_t)

    def synchronized_gradients(self) -> torch.Tensor:
        """Average the gradients over ranks, then clip their norm (``--clip``, 0: no clipping);
        returns the norm before clipping, on which a step is judged finite."""
        dist.average_gradients(self.model)
        max_norm = self.settings.clip if self.settings.clip > 0 else math.inf
        return torch.nn.utils.clip_grad_norm_(self.params, max_norm)

    def apply_update(self, skipped: bool) -> tuple[bool, str]:
        """The optimizer step of a step whose loss and gradients are in place (unless
        ``skipped``), then the schedule's; returns whether the step was skipped, and why.

        An update that makes the model non-finite is undone from copies taken just before it
        (:meth:`_snapshot`), so one too large step cannot poison every later one.
        """
        reason = "non-finite loss or gradient"
        if not skipped:
            saved = self._snapshot()
            self.optimizer.step()
            if not self._finite_model():
                self._restore_snapshot(saved)
                skipped, reason = True, self.non_finite_model
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            # The schedule is a function of the step counter, so a skipped step advances it
            # too; torch warns when that happens before any optimizer step, which is intended.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step",
                                    category=UserWarning)
            self.scheduler.step()
        self.step += 1
        return skipped, reason

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
        """Every parameter (and :meth:`finite_extras`) finite (one host sync)."""
        with torch.no_grad():
            flags = [torch.isfinite(p).all() for p in self.params] + self.finite_extras()
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
            rundir.truncate_metrics(metrics_path, self.step, self.columns)
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
                    rundir.append_hashes(hash_log, self.step, self.params, self.hashed_state())
                if metrics is not None:
                    metrics.write(rundir.format_row(row, self.columns) + "\n")
                    metrics.flush()
                    events.write(row)
                    if row["skipped"]:
                        bar.write(
                            f"dlhmc train: step {row['step']}: {row['reason']} "
                            f"(loss={row['loss']}, grad_norm={row['grad_norm']}); update skipped",
                            file=sys.stderr,
                        )
                bar.set_postfix(**self.progress(row), refresh=False)
                bar.update(1)
                if self.step % self.options.checkpoint_every == 0 or self.step == settings.steps:
                    seconds = self.seconds_before + time.perf_counter() - t_start
                    self.save(seconds)
                    if ctx.is_main:  # one line per checkpoint: readable in batch-job logs
                        bar.write(
                            f"dlhmc train: checkpoint at step {self.step}/{settings.steps} "
                            f"({seconds:.0f} s): {self.summary(row)}",
                            file=sys.stderr,
                        )
        finally:
            bar.close()
            if metrics is not None:
                metrics.close()
                events.close()
        return steps_run, skipped
