"""``dlhmc train``: train an L2HMC sampler, resumable, on one process or under ``mpiexec``.

Every option may also come from ``--config FILE.yaml`` (keys are option names,
with ``-`` or ``_``); the command line wins over the file, the file over the
defaults, and a key that is not an option is an error.  All options are checked
before anything is written or computed.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import yaml

from dlhmc import distributed
from dlhmc.commands.options import (
    UsageError,
    nonnegative_int,
    positive_float,
    positive_int,
)
from dlhmc.lattice import PRECISIONS, THEORIES, theory_class
from dlhmc.nets import ACTIVATIONS
from dlhmc.train import train
from dlhmc.train_settings import (
    ANNEAL_SCHEDULES,
    DECAYS,
    RunOptions,
    TrainingError,
    TrainSettings,
)

MASKS = ("checkerboard", "random")
MAX_SEED = 2**63 - 1  # rank r seeds its generator with seed + r (64-bit seeds)
# Options every run needs; the rest have defaults.
REQUIRED = ("group", "lattice", "beta", "out")
DEFAULTS = {
    "nlf": 4,
    "steps": 200,
    "batch": 64,
    "hidden": [32, 32],
    "lr": 1e-3,
    "seed": 0,
    "checkpoint_every": 100,
    "precision": "single",
    "device": "auto",
    "activation": "swish",
    "eps_init": 0.1,
    "mask": "checkerboard",
    "mask_seed": 0,
    "conv_channels": [],
    "winding": 0,
    "decay": "cosine",
    "decay_to": 0.1,
    "clip": 1.0,
    "anneal_from": 1.0,
    "anneal_schedule": "linear",
    "plaq_weight": 0.0,
    "no_progress": False,
}


def nonnegative_float(text: str) -> float:
    value = float(text) if _is_number(text) else None
    if value is None or not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def unit_fraction(text: str) -> float:
    value = float(text) if _is_number(text) else None
    if value is None or not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train an L2HMC sampler (resumes RUN_DIR after a kill; mpiexec for several ranks)",
        description=__doc__,
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--group", choices=tuple(THEORIES), help="gauge group")
    p.add_argument("--lattice", type=positive_int, nargs="+", metavar="N", help="lattice extents")
    p.add_argument("--beta", type=positive_float, help="target coupling")
    p.add_argument("--nlf", type=positive_int, help="leapfrog layers per trajectory (default 4)")
    p.add_argument("--steps", type=positive_int, help="training steps (default 200)")
    p.add_argument("--batch", type=positive_int, help="chains per rank (default 64)")
    p.add_argument("--hidden", type=positive_int, nargs="+", metavar="W", help="hidden widths")
    p.add_argument("--lr", type=positive_float, help="peak Adam learning rate (default 1e-3)")
    p.add_argument("--seed", type=nonnegative_int, help="seed; rank r samples with seed + r")
    p.add_argument(
        "--checkpoint-every", type=positive_int, metavar="N", help="checkpoint period (default 100)"
    )
    p.add_argument("--out", type=Path, metavar="RUN_DIR", help="run directory (resumed if present)")
    p.add_argument(
        "--init", type=Path, metavar="OTHER_RUN_DIR", help="warm start: model weights of that run"
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML file with option defaults")
    p.add_argument("--precision", choices=PRECISIONS, help="single (default) or double")
    p.add_argument("--device", help="auto (default), cpu, cuda")
    p.add_argument("--activation", choices=tuple(ACTIVATIONS), help="default swish")
    p.add_argument("--eps-init", type=positive_float, help="initial step sizes (default 0.1)")
    p.add_argument("--mask", choices=MASKS, help="link halves per layer (default checkerboard)")
    p.add_argument("--mask-seed", type=nonnegative_int, help="seed of random masks (default 0)")
    p.add_argument(
        "--conv-channels", type=positive_int, nargs="*", metavar="C", help="U1 conv front end"
    )
    p.add_argument(
        "--winding",
        type=int,
        help="U1 topological translation: charge change built into one layer (default 0)",
    )
    p.add_argument(
        "--warmup", type=nonnegative_int, help="linear warm-up steps (default min(1000, steps/10))"
    )
    p.add_argument("--decay", choices=DECAYS, help="learning-rate decay (default cosine)")
    p.add_argument(
        "--decay-to", type=unit_fraction, metavar="F", help="final lr as a fraction of --lr (0.1)"
    )
    p.add_argument("--clip", type=nonnegative_float, help="gradient norm clip, 0 = off (default 1)")
    p.add_argument(
        "--anneal-from", type=unit_fraction, metavar="GAMMA0", help="anneal beta_t = gamma_t beta"
    )
    p.add_argument(
        "--anneal-steps", type=positive_int, metavar="N", help="steps to reach gamma 1 (3/4 steps)"
    )
    p.add_argument("--anneal-schedule", choices=ANNEAL_SCHEDULES, help="default linear")
    p.add_argument(
        "--plaq-weight", type=nonnegative_float, help="weight of the plaquette term (default 0)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--hash-log",
        type=Path,
        metavar="DIR",
        help="each rank appends per-step SHA-256 of its parameters and chains to DIR/rank<r>.log",
    )
    p.set_defaults(func=functools.partial(run, parser=p))


def _config_values(parser: argparse.ArgumentParser, path: Path) -> dict:
    """Option values from a YAML file, converted and checked like command-line values."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise UsageError(f"--config: cannot read {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise UsageError(f"--config: {path} is not valid YAML ({err.__class__.__name__})") from None
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
            if action.choices is not None and value not in action.choices:
                choices = ", ".join(map(str, action.choices))
                raise UsageError(
                    f"{option}: invalid choice {value!r} in {path} (choose from {choices})"
                )
            converted.append(value)
        values[dest] = converted if action.nargs is not None else converted[0]
    return values


def resolve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    """Defaults, then --config, then the command line; then checks across options."""
    given = vars(args).copy()
    given.pop("func", None)
    merged = dict(DEFAULTS)
    if "config" in given:
        merged.update(_config_values(parser, given.pop("config")))
    merged.update(given)
    for name in REQUIRED:
        if name not in merged:
            raise UsageError(f"--{name}: required (on the command line or in --config)")
    try:
        theory_class(merged["group"]).check_lattice(tuple(merged["lattice"]))
    except ValueError as err:
        raise UsageError(f"--lattice: {err}") from None
    if merged["conv_channels"] and merged["group"] != "U1":
        raise UsageError("--conv-channels: the convolutional front end exists for U1 only")
    if merged["winding"] and merged["group"] != "U1":
        raise UsageError("--winding: a topological translation exists for U1 only")
    merged.setdefault("warmup", min(1000, merged["steps"] // 10))
    merged.setdefault("anneal_steps", max(1, 3 * merged["steps"] // 4))
    if merged["seed"] > MAX_SEED:
        raise UsageError(f"--seed: must be <= {MAX_SEED}, got {merged['seed']}")
    if merged["warmup"] >= merged["steps"]:
        raise UsageError(f"--warmup: {merged['warmup']} must be smaller than --steps")
    if merged["anneal_from"] < 1.0 and merged["anneal_steps"] >= merged["steps"]:
        # gamma_t would still be below 1 at the last step: the model never sees the target beta.
        raise UsageError(f"--anneal-steps: {merged['anneal_steps']} must be smaller than --steps")
    out = Path(merged["out"])
    if merged.get("init") is not None:
        init = Path(merged["init"]).resolve()
        if init == out.resolve():
            raise UsageError("--init: must be another run directory than --out")
        merged["init"] = str(init)
    return merged


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    merged = resolve(args, parser)
    settings = TrainSettings.from_dict({k: v for k, v in merged.items() if k != "out"})
    options = RunOptions(
        out=Path(merged["out"]),
        checkpoint_every=merged["checkpoint_every"],
        device=merged["device"],
        progress=not merged["no_progress"],
        hash_log=merged.get("hash_log"),
        extra={"checkpoint_every": merged["checkpoint_every"], "device": merged["device"]},
    )
    try:
        ctx = distributed.setup(options.device)
    except ValueError as err:
        raise UsageError(f"--device: {err}") from None
    try:
        train(settings, options, ctx)
    except TrainingError as err:
        raise UsageError(str(err)) from None
    except BaseException:
        distributed.abort(ctx)
        raise
    distributed.shutdown(ctx)
    return 0
