"""Training an L2HMC sampler: the loss, the chain buffer, the loop, checkpoints and metrics.

The loss (seed 003, appendix B) rewards proposals that move the topological charge
and are accepted: ``L = -E[A(xi'|xi) (Q_R(x') - Q_R(x))^2]`` with the differentiable
charge ``Q_R`` of the theory, optionally minus a plaquette jump term.  The
expectation runs over a buffer of chains that carries on between steps from the
states that passed the Metropolis test, so the loss is measured on (nearly)
equilibrium configurations rather than on hot starts.

Annealing: the target of step ``t`` is ``exp(-gamma_t S)`` with ``gamma_t`` rising to
1, i.e. the dynamics see the theory at ``beta_t = gamma_t beta``; the L2HMC update
is exact for any target, so the buffer simply follows the moving target.

Reproducibility: the schedules are functions of the step counter, every random
number comes from one explicit generator per rank (seeded ``seed + rank``) plus
torch's global generator (network initialization), and all of them are stored in
the checkpoint, so that a killed and resumed run ends with exactly the checkpoint
of an uninterrupted one (CPU; on GPUs up to non-deterministic kernels).
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from dlhmc import checkpoint as ckpt
from dlhmc import distributed as dist
from dlhmc.atomic import write_text
from dlhmc.lattice import make_theory
from dlhmc.samplers.base import metropolis
from dlhmc.samplers.l2hmc import L2HMCDynamics, Proposal
from dlhmc.theory import GaugeTheory
from dlhmc.train_settings import RunOptions, TrainingError, TrainSettings, gamma_at, lr_factor

METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.yaml"
METRIC_COLUMNS = (
    "step",
    "loss",
    "accept",
    "dq2",
    "plaq",
    "eps_x_mean",
    "eps_v_mean",
    "sumlogdet",
    "seconds",
    "beta",
    "skipped",
    "lr",
    "grad_norm",
)
# Statistics averaged over ranks each step (order of the all-reduced vector).
_STATS = ("loss", "accept", "dq2", "sumlogdet", "plaq", "bad_state")


# --- loss --------------------------------------------------------------------------------------


def plaquette_count(theory: GaugeTheory) -> int:
    """Number of plaquettes: sites times planes ``d (d - 1) / 2``."""
    d = len(theory.lattice)
    return math.prod(theory.lattice) * d * (d - 1) // 2


def plaquette_from_action(theory: GaugeTheory, action: torch.Tensor) -> torch.Tensor:
    """Average plaquette per chain from the Wilson action ``S = beta sum_P (1 - P)``.

    Works for every group with the Wilson action and costs nothing extra when the
    action is at hand.
    """
    return 1.0 - action / (theory.beta * plaquette_count(theory))


def loss_terms(
    theory: GaugeTheory, x: torch.Tensor, proposal: Proposal, plaq_weight: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss and the per-step statistics it is made of.

    ``dq2 = E[A (Q_R' - Q_R)^2]`` (the expected squared charge jump, i.e. minus the
    charge part of the loss).  The plaquette term ``E[A N_P (P' - P)^2]`` uses the
    chain-averaged plaquette scaled by the number of plaquettes ``N_P``, which makes
    it O(1) at any volume, like ``dq2``; it rewards moving the short-distance
    degrees of freedom as well.
    """
    accept = proposal.accept_prob
    dq = theory.charge_real(proposal.x) - theory.charge_real(x)
    jump = accept * dq.square()
    loss = -jump.mean()
    if plaq_weight:
        dp = plaquette_from_action(theory, theory.action(proposal.x)) - plaquette_from_action(
            theory, theory.action(x)
        )
        loss = loss - plaq_weight * (accept * plaquette_count(theory) * dp.square()).mean()
    stats = {
        "accept": accept.detach().mean(),
        "dq2": jump.detach().mean(),
        "sumlogdet": proposal.sumlogdet.detach().mean(),
    }
    return loss, stats


# --- files -------------------------------------------------------------------------------------


def truncate_metrics(path: Path, keep_steps: int) -> None:
    """Keep the header and the rows of steps ``1..keep_steps``; later rows belong to lost work.

    A kill can leave rows past the last checkpoint and half a line at the end; the
    resumed run writes those steps again, so they are dropped first.
    """
    header = ",".join(METRIC_COLUMNS) + "\n"
    rows: list[str] = []
    if path.exists():
        for line in path.read_text().splitlines(keepends=True)[1:]:
            head = line.split(",", 1)[0]
            if line.endswith("\n") and head.isdigit() and int(head) <= keep_steps:
                rows.append(line)
    write_text(path, header + "".join(rows))


def _format_row(values: dict[str, float]) -> str:
    # repr keeps every digit of a float: the metrics of a resumed run compare exactly.
    cells = (values[c] for c in METRIC_COLUMNS)
    return ",".join(repr(v) if isinstance(v, float) else str(v) for v in cells)


def _sha256(tensors) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --- set-up ------------------------------------------------------------------------------------


def load_warm_start(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = ckpt.checkpoint_path(run_dir)
    if not path.is_file():
        raise TrainingError(f"--init: no checkpoint at {path}")
    try:
        return ckpt.load(path)
    except Exception as err:  # a damaged or foreign file: say which option pointed at it
        raise TrainingError(f"--init: cannot read {path}: {err}") from None


def check_warm_start(settings: TrainSettings, state: dict[str, Any]) -> None:
    """A warm start needs the same network architecture (shapes are checked on loading)."""
    other = TrainSettings.from_dict(state["config"])
    for name in ("group", "nlf", "hidden", "activation", "mask", "mask_seed", "conv_channels",
                 "winding"):
        mine, theirs = getattr(settings, name), getattr(other, name)
        if _normalize(mine) != _normalize(theirs):
            option = "--" + name.replace("_", "-")
            raise TrainingError(
                f"--init: the model was trained with {option} {_show(theirs)}, "
                f"this run asks for {_show(mine)}"
            )


def _normalize(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _show(value) -> str:
    value = _normalize(value)
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def check_resume(settings: TrainSettings, state: dict[str, Any], run_dir: Path, world: int) -> None:
    """The command that resumes a run must ask for the run that is in the directory."""
    stored = TrainSettings.from_dict(state["config"]).to_dict()
    for name, value in settings.to_dict().items():
        if _normalize(stored.get(name)) != _normalize(value):
            option = "--" + name.replace("_", "-")
            raise TrainingError(
                f"{option}: {run_dir} holds a run with {option} {_show(stored.get(name))}, "
                f"got {_show(value)} (repeat the original settings to resume, or use another --out)"
            )
    if state["world_size"] != world and state["step"] < settings.steps:
        raise TrainingError(
            f"--out: {run_dir} was checkpointed by {state['world_size']} ranks, "
            f"resume it with the same number of ranks (got {world})"
        )


def prepare(settings: TrainSettings, options: RunOptions) -> dict[str, Any] | None:
    """Validate the run directory and warm start before any work; nothing is written here.

    Returns the checkpoint to resume from, or ``None`` for a fresh start.
    """
    path = ckpt.checkpoint_path(options.out)
    if options.out.exists() and not options.out.is_dir():
        raise TrainingError(f"--out: {options.out} exists and is not a directory")
    if path.exists():
        try:
            return ckpt.load(path)
        except Exception as err:
            raise TrainingError(f"--out: cannot read {path}: {err}") from None
    if settings.init is not None:
        check_warm_start(settings, load_warm_start(settings.init))
    return None


# --- the training loop -------------------------------------------------------------------------


class Trainer:
    """One rank's view of a training run; rank 0 also writes the run directory."""

    def __init__(self, settings: TrainSettings, options: RunOptions, ctx: dist.DistContext):
        self.settings = settings
        self.options = options
        self.ctx = ctx
        self.run_dir = options.out
        self.device = ctx.device
        self.theory = make_theory(
            settings.group, settings.lattice, settings.beta, settings.precision, self.device
        )
        # Same seed on every rank: one model; rank 0's copy is broadcast anyway.
        torch.manual_seed(settings.seed)
        self.dynamics = L2HMCDynamics(self.theory, settings.l2hmc_config()).to(self.device)
        self.params = [p for p in self.dynamics.parameters() if p.requires_grad]
        # fused: one kernel for all parameters (4x faster steps than the per-tensor loop).
        self.optimizer = torch.optim.Adam(self.params, lr=settings.lr, fused=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(settings, step)
        )
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(settings.seed + ctx.rank)
        self.step = 0
        self.seconds_before = 0.0
        self.previous_seconds = 0.0
        self.x: torch.Tensor | None = None

    # -- state ---------------------------------------------------------------------------------

    def start(self, resume: dict[str, Any] | None) -> None:
        if resume is not None:
            self._restore(resume)
        else:
            if self.settings.init is not None:
                self._warm_start(load_warm_start(self.settings.init))
            dist.broadcast_module(self.dynamics)
            self.x = self.theory.hot_start(self.settings.batch, self.generator)

    def _warm_start(self, state: dict[str, Any]) -> None:
        """Load another run's weights; shapes must match (networks that see the whole lattice
        only fit runs of the same volume)."""
        mine, theirs = self.dynamics.state_dict(), state["model"]
        if set(mine) != set(theirs):
            differ = sorted(set(mine) ^ set(theirs))
            raise TrainingError(f"--init: the model's parameters differ ({', '.join(differ[:3])})")
        for name, value in mine.items():
            if value.shape != theirs[name].shape:
                other = TrainSettings.from_dict(state["config"])
                raise TrainingError(
                    f"--init: parameter {name} has shape {list(theirs[name].shape)} in the model "
                    f"(trained on --lattice {_show(other.lattice)}), {list(value.shape)} here"
                )
        self.dynamics.load_state_dict(theirs)
        self.previous_seconds = ckpt.training_seconds_total(state)

    def _restore(self, state: dict[str, Any]) -> None:
        rank = self.ctx.rank
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
        beta_t = gamma_at(settings, self.step) * settings.beta
        theory_t = self.theory if beta_t == settings.beta else self.theory.with_beta(beta_t)
        self.dynamics.theory = theory_t
        lr = self.optimizer.param_groups[0]["lr"]

        self.optimizer.zero_grad(set_to_none=True)
        proposal = self.dynamics.propose(self.x, self.generator)
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
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
        else:
            self.optimizer.step()
            self.x = x_new
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
            "lr": lr,
            "grad_norm": grad_norm,
        }

    # -- the run --------------------------------------------------------------------------------

    def _hash_log_path(self) -> Path:
        return self.options.hash_log / f"rank{self.ctx.rank}.log"

    def _truncate_hash_log(self) -> None:
        """Drop lines of steps after the checkpoint: they are about to be redone."""
        path = self._hash_log_path()
        lines = path.read_text().splitlines(keepends=True) if path.exists() else []
        kept = [ln for ln in lines if ln.endswith("\n") and int(ln.split()[0]) <= self.step]
        write_text(path, "".join(kept))

    def _log_hashes(self) -> None:
        with open(self._hash_log_path(), "a") as handle:
            handle.write(f"{self.step} {_sha256(self.params)} {_sha256([self.x])}\n")

    def run(self) -> None:
        settings, ctx = self.settings, self.ctx
        metrics_path = self.run_dir / METRICS_FILE
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale_temporaries(self.run_dir)
            config = {**settings.to_dict(), **self.options.extra}
            write_text(self.run_dir / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
            truncate_metrics(metrics_path, self.step)
        if self.options.hash_log is not None:
            self.options.hash_log.mkdir(parents=True, exist_ok=True)
            self._truncate_hash_log()
        bar = tqdm(
            total=settings.steps,
            initial=self.step,
            disable=not (self.options.progress and ctx.is_main and sys.stderr.isatty()),
            desc="train",
            file=sys.stderr,
            dynamic_ncols=True,
        )
        metrics = open(metrics_path, "a") if ctx.is_main else None
        t_start = time.perf_counter()
        try:
            while self.step < settings.steps:
                t0 = time.perf_counter()
                row = self.train_step()
                row["seconds"] = time.perf_counter() - t0
                if self.options.hash_log is not None:
                    self._log_hashes()
                if metrics is not None:
                    metrics.write(_format_row(row) + "\n")
                    metrics.flush()
                    if row["skipped"]:
                        bar.write(
                            f"dlhmc train: step {row['step']}: non-finite loss or gradient "
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


def train(settings: TrainSettings, options: RunOptions, ctx: dist.DistContext) -> None:
    """Validate, then train (fresh, warm-started or resumed) until ``settings.steps``."""
    resume = prepare(settings, options)
    if resume is not None:
        check_resume(settings, resume, options.out, ctx.world_size)
        if resume["step"] >= settings.steps:
            if ctx.is_main:
                print(f"dlhmc train: {options.out} is complete ({resume['step']} steps)",
                      file=sys.stderr)
            return
    trainer = Trainer(settings, options, ctx)
    trainer.start(resume)
    trainer.run()
