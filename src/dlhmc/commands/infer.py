"""``dlhmc infer``: chains of a trained sampler at the true target, as a chain file.

An L2HMC run samples with its trained dynamics; a flow run (``dlhmc train --sampler flow``) with
independence Metropolis over the flow's proposals, or with ``--flow-hmc --nlf N --eps E`` with
HMC in the flow's latent variables.  ``--lattice`` samples another volume than the training one:
a ``network: local`` model and a flow run on any lattice of their group that their masks fit
(volume transfer), a ``dense`` one is refused on one line."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from dlhmc import checkpoint as ckpt
from dlhmc import flow_inference
from dlhmc.atomic import check_room
from dlhmc.commands import checks, outputs
from dlhmc.commands.options import UsageError, add_settings, option_error
from dlhmc.flows.store import load_flow, run_sampler
from dlhmc.inference import build_sampler, chain_attrs, read_model, sample, sampling_lattice
from dlhmc.io import chain_dataset, write_chains
from dlhmc.lattice import theory_class
from dlhmc.limits import estimate_bytes
from dlhmc.settings import LAYER_SAMPLES, MAX_SEED, InferSettings, TrainSettings

# Options of one kind of run only, and the kind (their dest, as argparse names them).
FLOW_OPTIONS = ("flow_hmc", "nlf", "eps")
L2HMC_OPTIONS = ("layer_samples",)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "infer",
        help="sample with a trained L2HMC model or flow (full Metropolis test) into a chain file",
        description=__doc__,
    )
    add_settings(p, InferSettings)
    p.set_defaults(func=run)
    outputs.declare(p, inputs=("checkpoint",), outputs=("out",))


def _cannot_load(path, err: Exception) -> UsageError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, ckpt.CheckpointError):  # its message names the file already
        return UsageError(f"--checkpoint: {first}")
    return UsageError(f"--checkpoint: cannot load {path}: {first}")


def run(args: argparse.Namespace) -> int:
    path = ckpt.checkpoint_path(args.checkpoint)
    if not path.is_file():
        raise UsageError(f"--checkpoint: no checkpoint at {path}")
    if args.seed > MAX_SEED:
        raise UsageError(f"--seed: must be <= {MAX_SEED}, got {args.seed}")
    checks.seed(args.seed)
    device = checks.device(args.device)
    checks.writable(args.out, "--out")
    sampler = run_sampler(args.checkpoint)
    if sampler == "bridge":
        raise UsageError(f"--checkpoint: {path} holds a bridge flow between two couplings, not a "
                         "sampler: use it with dlhmc derivative or dlhmc trex")
    if sampler == "flow":
        _refuse_options(args, L2HMC_OPTIONS, path, "L2HMC", "a flow")
        return _run_flow(args, path, device)
    try:
        model = read_model(args.checkpoint)
    except Exception as err:  # damaged, foreign or incompatible file: one line naming it
        raise _cannot_load(path, err) from None
    _refuse_options(args, FLOW_OPTIONS, path, "flow", "an L2HMC model")
    settings = model.settings
    _check_lattice(args, settings)
    try:
        lattice = sampling_lattice(model, args.lattice)
    except ValueError as err:
        raise option_error(err) from None
    checks.memory(settings.group, lattice, args.chains, settings.precision, "infer",
                  "--chains, --lattice", device, trajectories=args.trajectories,
                  parameters=sum(t.numel() for t in model.state["model"].values()))
    try:
        dynamics = build_sampler(model, device, args.beta, lattice)
    except Exception as err:
        raise _cannot_load(path, err) from None
    state = model.state
    _warn_unfinished(path, state)
    samples = sample(
        dynamics,
        chains=args.chains,
        trajectories=args.trajectories,
        therm=args.therm,
        seed=args.seed,
        layer_samples=LAYER_SAMPLES if args.layer_samples is None else args.layer_samples,
        progress=not args.no_progress,
        therm_hmc=args.therm_hmc,
    )
    attrs = chain_attrs(
        dynamics, state, args.checkpoint, args.seed, args.therm, args.trajectories, samples,
        therm_hmc=args.therm_hmc,
    )
    dataset = chain_dataset(samples.per_traj, attrs, samples.per_layer)
    check_room(args.out, dataset.nbytes)
    write_chains(args.out, dataset)
    step_size = f"the model's step sizes (mean eps {attrs['eps']:.3g}) at --beta {attrs['beta']:g}"
    return checks.divergences("infer", samples.per_traj, step_size, args.out)


def _refuse_options(args: argparse.Namespace, names, path, kind: str, held: str) -> None:
    """Options of the other kind of run, given: refused rather than ignored."""
    for name in names:
        if getattr(args, name) not in (None, False):
            raise UsageError(f"--{name.replace('_', '-')}: an option of {kind} runs; {path} "
                             f"holds {held}")


def _check_lattice(args: argparse.Namespace, settings: TrainSettings) -> None:
    """``--lattice`` fits the group, and its masks (built on the host) fit in memory."""
    if args.lattice is None:
        return
    try:
        theory_class(settings.group).check_lattice(tuple(args.lattice))
    except ValueError as err:
        raise UsageError(f"--lattice: {err}") from None
    checks.memory(settings.group, args.lattice, 1, settings.precision, "hmc", "--lattice", "cpu")


def _warn_unfinished(path, state) -> None:
    steps = int(state["config"]["steps"])
    if state["step"] < steps:
        print(
            f"dlhmc infer: warning: {path} is at step {state['step']} of {steps} "
            "(training unfinished)",
            file=sys.stderr,
        )


def _run_flow(args: argparse.Namespace, path, device) -> int:
    """A flow run: independence Metropolis, or flow HMC with ``--flow-hmc --nlf --eps``."""
    if not args.flow_hmc:
        for name in ("nlf", "eps"):
            if getattr(args, name) is not None:
                raise UsageError(f"--{name}: needs --flow-hmc (independence Metropolis has no "
                                 "trajectory)")
    elif args.nlf is None or args.eps is None:
        raise UsageError("--flow-hmc: needs --nlf and --eps (the latent trajectory)")
    try:
        state = ckpt.load_valid(path)
        settings = TrainSettings.from_dict(state["config"])
        layers = max(1, int(state["flow"]["layers"]))
    except Exception as err:  # damaged, foreign or incompatible file: one line naming it
        raise _cannot_load(path, err) from None
    _check_lattice(args, settings)
    lattice = settings.lattice if args.lattice is None else tuple(args.lattice)
    extra = 0
    if args.flow_hmc:  # the force differentiates through every layer: autograd keeps them all
        extra = estimate_bytes(settings.group, lattice, args.chains, settings.precision, "train",
                               nlf=layers)
    checks.memory(settings.group, lattice, args.chains, settings.precision, "infer",
                  "--chains, --lattice", device, extra=extra, trajectories=args.trajectories,
                  parameters=sum(t.numel() for t in state["model"].values()))
    try:
        flow, state = load_flow(args.checkpoint, device, args.beta, args.lattice)
    except ckpt.CheckpointError as err:
        raise _cannot_load(path, err) from None
    except ValueError as err:  # lattice: or beta: the flow cannot take
        raise option_error(err) from None
    _warn_unfinished(path, state)
    kernel = flow_inference.build_kernel(flow, args.nlf, args.eps)
    per_traj, wall = flow_inference.sample(
        kernel, chains=args.chains, trajectories=args.trajectories, therm=args.therm,
        seed=args.seed, progress=not args.no_progress, therm_hmc=args.therm_hmc,
    )  # fmt: skip
    attrs = flow_inference.chain_attrs(
        kernel, state, args.checkpoint, args.seed, args.therm, args.trajectories, per_traj, wall,
        therm_hmc=args.therm_hmc,
    )  # fmt: skip
    dataset = chain_dataset(per_traj, attrs)
    check_room(args.out, dataset.nbytes)
    write_chains(args.out, dataset)
    if args.flow_hmc:
        step_size = f"--eps {args.eps:g} through the flow at --beta {attrs['beta']:g}"
        return checks.divergences("infer", per_traj, step_size, args.out)
    return _proposal_divergences(per_traj, args.out)


def _proposal_divergences(per_traj: dict[str, np.ndarray], out) -> int:
    """Flow proposals whose weight is not finite (the flow's density or the action overflowed):
    rejected, worth a warning; all of them, an error (the chains never moved)."""
    flags = per_traj["divergent"]
    return checks.rejections(
        "infer", int(np.count_nonzero(flags)), int(np.size(flags)),
        "flow proposals had a non-finite weight (rejected)",
        f"flow proposals had a non-finite weight; {out} is written as evidence but holds no "
        "valid sample",
    )
