"""``dlhmc infer``: chains of a trained L2HMC sampler at the true target, as a chain file.

``--lattice`` samples another volume than the training one: a ``network: local`` model runs on
any lattice of its group (volume transfer), a ``dense`` one is refused on one line."""

from __future__ import annotations

import argparse
import sys

from dlhmc import checkpoint as ckpt
from dlhmc.atomic import check_room
from dlhmc.commands import checks, outputs
from dlhmc.commands.options import UsageError, add_settings, option_error
from dlhmc.inference import build_sampler, chain_attrs, read_model, sample, sampling_lattice
from dlhmc.io import chain_dataset, write_chains
from dlhmc.lattice import theory_class
from dlhmc.settings import MAX_SEED, InferSettings


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "infer",
        help="sample with a trained L2HMC model (full MH at gamma = 1) into a chain file",
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
    try:
        model = read_model(args.checkpoint)
    except Exception as err:  # damaged, foreign or incompatible file: one line naming it
        raise _cannot_load(path, err) from None
    settings = model.settings
    if args.lattice is not None:  # a local model builds its masks on the host for this lattice
        try:
            theory_class(settings.group).check_lattice(tuple(args.lattice))
        except ValueError as err:
            raise UsageError(f"--lattice: {err}") from None
        checks.memory(settings.group, args.lattice, 1, settings.precision, "hmc", "--lattice",
                      "cpu")
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
    steps = int(state["config"]["steps"])
    if state["step"] < steps:
        print(
            f"dlhmc infer: warning: {path} is at step {state['step']} of {steps} "
            "(training unfinished)",
            file=sys.stderr,
        )
    samples = sample(
        dynamics,
        chains=args.chains,
        trajectories=args.trajectories,
        therm=args.therm,
        seed=args.seed,
        layer_samples=args.layer_samples,
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
