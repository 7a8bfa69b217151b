"""``dlhmc train``: train an L2HMC sampler, a flow or a bridge flow, resumable, on one process or
``mpiexec``.

``--sampler`` picks what is trained (:data:`dlhmc.trained_samplers.SAMPLERS`); a setting that
only another sampler reads is refused unless left at its default.

Every option may also come from ``--config FILE.yaml`` (keys are option names,
with ``-`` or ``_``); the command line wins over the file, the file over the
defaults, and a key that is not an option is an error.  All options are checked
before anything is written or computed.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from pathlib import Path

import yaml

from dlhmc import devices, distributed
from dlhmc.commands import checks, outputs
from dlhmc.commands.options import UsageError, add_settings, option_error, read_config_text
from dlhmc.config_check import MAX_TRAIN_SEED, duplicate_keys, schedule_problems
from dlhmc.groups import unsupported_options
from dlhmc.lattice import make_theory, theory_class
from dlhmc.settings import RunOptions, TrainSettings, defaults, required
from dlhmc.trained_samplers import trained_sampler
from dlhmc.training.rundir import TrainingError
from dlhmc.training.trainer import train


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train an L2HMC sampler or a normalizing flow (resumes RUN_DIR after a kill; "
        "mpiexec for several ranks)",
        description=__doc__,
        argument_default=argparse.SUPPRESS,
    )
    add_settings(p, TrainSettings, with_defaults=False)
    add_settings(p, RunOptions, with_defaults=False)
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML file with option defaults")
    p.set_defaults(func=functools.partial(run, parser=p))
    outputs.declare(p, inputs=("config", "init", "data"), output_dirs=("out", "hash_log"),
                    run_dir="out")


def _config_values(parser: argparse.ArgumentParser, path: Path) -> dict:
    """Option values from a YAML file, converted and checked like command-line values.

    The file is refused, as the workflow refuses its config, when it is not UTF-8 text or gives
    a key twice (YAML would keep the last one silently).
    """
    try:
        data = yaml.safe_load(read_config_text(path))
    except ValueError as err:
        raise UsageError(f"--config: {err}") from None
    except yaml.YAMLError as err:
        raise UsageError(f"--config: {path} is not valid YAML ({err.__class__.__name__})") from None
    for problem in duplicate_keys(path):
        raise UsageError(f"--config: {problem}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"--config: {path} must hold a mapping of option names to values")
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    values = {}
    for key, raw in data.items():
        dest = str(key).replace("-", "_")
        if dest not in actions or dest == "config":
            raise UsageError(f"--config: unknown key {key!r} in {path}")
        if raw is None:  # ``key: null`` (as in a run's config.yaml): keep the default
            continue
        action = actions[dest]
        option = action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(raw, bool):
                raise UsageError(f"{option}: expected true or false in {path}, got {raw!r}")
            values[dest] = raw
            continue
        items = raw if isinstance(raw, list) else [raw]
        if action.nargs is None and isinstance(raw, list):
            raise UsageError(f"{option}: expected one value in {path}, got a list")
        converted = []
        for item in items:
            try:
                value = action.type(str(item)) if action.type else str(item)
            except argparse.ArgumentTypeError as err:
                raise UsageError(f"{option}: {err} (in {path})") from None
            except ValueError:  # a plain type (int of --local-period): no message of its own
                raise UsageError(f"{option}: invalid value {item!r} in {path}") from None
            if action.choices is not None and value not in action.choices:
                choices = ", ".join(map(str, action.choices))
                raise UsageError(
                    f"{option}: invalid choice {value!r} in {path} (choose from {choices})"
                )
            converted.append(value)
        values[dest] = converted if action.nargs is not None else converted[0]
    return values


def resolve(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[TrainSettings, RunOptions]:
    """Defaults, then --config, then the command line; then checks across options.

    The one place where the settings of a run are resolved: everything after this receives them.
    """
    given = vars(args).copy()
    given.pop("func", None)
    merged = {**defaults(TrainSettings), **defaults(RunOptions)}
    if "config" in given:
        merged.update(_config_values(parser, given.pop("config")))
    merged.update(given)
    for name in (*required(TrainSettings), *required(RunOptions)):
        if name not in merged:
            raise UsageError(f"--{name}: required (on the command line or in --config)")
    try:
        theory_class(merged["group"]).check_lattice(tuple(merged["lattice"]))
    except ValueError as err:
        raise UsageError(f"--lattice: {err}") from None
    for name, message in unsupported_options(merged["group"], merged):
        raise UsageError(f"--{name.replace('_', '-')}: {message}")
    if merged["seed"] > MAX_TRAIN_SEED:
        raise UsageError(f"--seed: must be <= {MAX_TRAIN_SEED}, got {merged['seed']}")
    out = Path(merged["out"])
    if merged["init"] is not None:
        init = Path(merged["init"]).resolve()
        if init == out.resolve():
            raise UsageError("--init: must be another run directory than --out")
        merged["init"] = str(init)
    if merged.get("data") is not None:  # the bridge's ensemble, wherever the run resumes from
        merged["data"] = str(Path(merged["data"]).resolve())
    try:  # a setting of another sampler, a group the sampler cannot move
        settings = TrainSettings.from_dict(merged)
    except ValueError as err:
        raise option_error(err) from None
    for name, message in schedule_problems(settings.steps, settings.warmup, settings.anneal_from,
                                           settings.anneal_steps, "--steps"):
        raise UsageError(f"--{name.replace('_', '-')}: {message}")
    # The local masks below are built on the host for this lattice: one chain's links must fit.
    checks.memory(settings.group, settings.lattice, 1, settings.precision, "hmc", "--lattice",
                  "cpu")
    try:  # the architecture, and the local masks on this lattice (cheap: no dense networks)
        theory = make_theory(settings.group, settings.lattice, settings.beta, settings.precision)
        trained_sampler(settings.sampler).trainer_module().check(theory, settings)
    except ValueError as err:
        raise option_error(err) from None
    options = RunOptions(
        out=out,
        checkpoint_every=merged["checkpoint_every"],
        device=merged["device"],
        no_progress=merged["no_progress"],
        hash_log=merged["hash_log"],
    )
    return settings, options


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings, options = resolve(args, parser)
    # The paths as resolved (the run directory may come from --config): the shared output rules
    # and the message of an interruption see these.
    args.out, args.hash_log, args.init = options.out, options.hash_log, settings.init
    args.data = settings.data
    outputs.check(args)
    try:
        devices.check_device(options.device)
        ctx = distributed.setup(options.device)
    except ValueError as err:
        raise UsageError(f"--device: {err}") from None
    checks.seed(settings.seed, world_size=ctx.world_size)
    checks.seed(settings.mask_seed, "--mask-seed")
    sampler = trained_sampler(settings.sampler).trainer_module()
    depth = sampler.depth(settings)
    weights, activations = checks.network_sizes(settings.hidden, depth, settings.batch)
    # The sampler's bound reads the networks' real input widths (dense: every unit's momenta),
    # so a huge --hidden is refused here rather than by the kernel after minutes of allocation.
    shapes_only = make_theory(settings.group, settings.lattice, settings.beta, settings.precision,
                              "meta")
    weights = max(weights, sampler.weight_bound(shapes_only, settings))
    checks.memory(settings.group, settings.lattice, settings.batch, settings.precision, "train",
                  "--batch, --lattice, --hidden", ctx.device, extra=8 * activations,
                  nlf=depth, parameters=weights)
    try:
        steps, skipped = train(settings, options, ctx)
    except TrainingError as err:
        raise UsageError(str(err)) from None
    except BaseException:
        distributed.abort(ctx)
        raise
    distributed.shutdown(ctx)
    if steps and skipped == steps:
        if ctx.is_main:
            print(f"dlhmc train: error: all {steps} steps were skipped (non-finite loss, gradient, "
                  f"parameter or step size): nothing was learned; {_skipped_cause(settings)}",
                  file=sys.stderr)
        return 1
    return 0


def _skipped_cause(settings: TrainSettings) -> str:
    """What to change when every step was skipped.

    Why --beta first: a step of size --eps-init at --beta moves the momenta by about
    eps * beta per link, and when the kinetic energy of that move overflows the precision no
    learning rate or step size of sensible size helps (``--beta 1e300``); otherwise the
    updates (--lr) or the initial step sizes (--eps-init) made the steps non-finite.
    """
    largest = {"double": sys.float_info.max, "single": 3.4e38}[settings.precision]
    scale = settings.beta * settings.eps_init
    if not scale * scale * math.prod(settings.lattice) < largest:
        return (f"--beta {settings.beta:g} is too large: one step of size --eps-init "
                f"{settings.eps_init:g} overflows the {settings.precision} range")
    return f"lower --lr ({settings.lr:g}) or --eps-init ({settings.eps_init:g})"
