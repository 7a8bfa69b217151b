"""``dlhmc toy-gmm``: train L2HMC on a two-mode Gaussian mixture and compare it with HMC.

Writes ``OUT/gmm_samples.png`` (samples of L2HMC beside HMC at two step sizes, all
chains started in the first mode) and ``OUT/mode_fractions.json`` (fraction of the
samples in each mode, per sampler, with the mode-switch and acceptance rates), and
prints the fractions.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

from dlhmc.atomic import atomic_path, write_text
from dlhmc.commands import checks, outputs
from dlhmc.commands.options import (
    UsageError,
    arg_type,
    nonnegative_int,
    positive_float,
    positive_int,
)
from dlhmc.limits import check_memory
from dlhmc.nets import ACTIVATIONS
from dlhmc.samplers.hmc import HMC
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics
from dlhmc.settings import NONNEGATIVE_FLOAT
from dlhmc.toy import mixing
from dlhmc.toy.gmm import GaussianMixture

# Lengths of the toy (mode width and separation): squares of their ratios stay finite.
LENGTHS = (1e-50, 1e50)


def register(subparsers) -> None:
    p = subparsers.add_parser("toy-gmm", help="L2HMC vs HMC on a 2D Gaussian mixture")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument("--steps", type=positive_int, default=300, help="training steps (default 300)")
    p.add_argument("--batch", type=positive_int, default=128, help="training chains (default 128)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed (default 0)")
    p.add_argument("--nlf", type=positive_int, default=4, help="leapfrog layers (default 4)")
    p.add_argument("--hidden", type=positive_int, nargs="+", default=[32, 32], metavar="W",
                   help="hidden widths (default 32 32)")
    p.add_argument("--activation", choices=tuple(ACTIVATIONS), default="swish")
    p.add_argument("--lr", type=positive_float, default=1e-2,
                   help="Adam learning rate (default 1e-2)")
    p.add_argument("--eps-init", type=positive_float, default=0.1, help="initial step sizes")
    p.add_argument("--beta-init", type=positive_float, default=0.05,
                   help="initial inverse temperature, annealed to 1 (default 0.05)")
    p.add_argument("--reciprocal-scale", type=arg_type(NONNEGATIVE_FLOAT), default=0.0,
                   metavar="L",
                   help="add Levy et al.'s reciprocal term with scale L (default 0: off)")
    p.add_argument("--separation", type=positive_float, default=4.0,
                   help="distance between the two mode centres (default 4)")
    p.add_argument("--sigma", type=positive_float, default=0.3, help="mode width (default 0.3)")
    p.add_argument("--chains", type=positive_int, default=64, help="evaluation chains (default 64)")
    p.add_argument("--trajectories", type=positive_int, default=200,
                   help="evaluation trajectories per chain (default 200)")
    p.add_argument("--hmc-eps", type=positive_float, nargs=2, default=[0.25, 0.5], metavar="EPS",
                   help="the two HMC step sizes (default 0.25 0.5)")
    p.add_argument("--hmc-nlf", type=positive_int,
                   help="HMC leapfrog steps per trajectory (default: --nlf)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.set_defaults(func=run)
    outputs.declare(p, output_dirs=("out",))


def estimate_bytes(args) -> int:
    """A coarse upper bound of the run's memory (Python ints: any size compares).

    Training keeps, per leapfrog layer, the activations of its networks (three per layer, with
    autograd) for ``batch`` points, and Adam keeps three copies of the weights; sampling keeps
    every position of every chain and panel as float64.
    """
    widths = [2, *args.hidden, 2]
    weights = 6 * args.nlf * sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    activations = 6 * args.nlf * args.batch * sum(widths) * 4
    samples = 3 * args.chains * (args.trajectories + 1) * 2
    return 8 * (4 * weights + activations + samples)


def _finite(value) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def _numerical_fault(what: str) -> int:
    print(f"dlhmc toy-gmm: error: {what}; nothing written (lower --lr or --eps-init, or give "
          "--separation and --sigma of a moderate ratio)", file=sys.stderr)
    return 1


def run(args) -> int:
    if args.beta_init > 1:
        raise UsageError(f"--beta-init: expected a value in (0, 1], got {args.beta_init}")
    lengths = {"--sigma": args.sigma, "--separation": args.separation,
               "--reciprocal-scale": args.reciprocal_scale or 1.0}  # 0 is off
    for option, value in lengths.items():
        # Squared distances over sigma^2 (and over the reciprocal scale^2) must stay finite.
        if not LENGTHS[0] <= value <= LENGTHS[1]:
            raise UsageError(f"{option}: expected a number in [{LENGTHS[0]:g}, {LENGTHS[1]:g}], "
                             f"got {value:g}")
    checks.seed(args.seed)
    device = checks.device(args.device)
    try:
        check_memory(estimate_bytes(args), "--batch, --chains, --trajectories, --hidden", device)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out: {args.out} exists and is not a directory")
    checks.writable(args.out, "--out", directory=True)
    torch.manual_seed(args.seed)
    half = 0.5 * args.separation
    theory = GaussianMixture(((-half, 0.0), (half, 0.0)), args.sigma, device=device)
    config = L2HMCConfig(nlf=args.nlf, hidden=tuple(args.hidden), activation=args.activation,
                         eps_init=args.eps_init)
    dyn = L2HMCDynamics(theory, config)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    history = mixing.train(dyn, args.steps, args.batch, args.lr, args.beta_init, gen,
                           args.reciprocal_scale)
    with torch.no_grad():
        trained = all(bool(torch.isfinite(t).all()) for t in (*dyn.parameters(), dyn.eps_x,
                                                              dyn.eps_v))
    if not (trained and math.isfinite(history[-1]["loss"])):
        return _numerical_fault(f"training (--lr {args.lr:g}, --eps-init {args.eps_init:g}) "
                                "made the loss, a weight or a step size non-finite")

    hmc_nlf = args.hmc_nlf or args.nlf
    panels = [("L2HMC", mixing.sample(dyn, args.chains, args.trajectories, gen))]
    for eps in args.hmc_eps:
        samples = mixing.sample(HMC(theory, hmc_nlf, eps), args.chains, args.trajectories, gen)
        panels.append((f"HMC eps={eps:g}", samples))

    summary = {
        "samplers": {title: mixing.mode_summary(theory, s) for title, s in panels},
        "exact_fractions": theory.exact_mode_fractions(),
        "centers": [list(c) for c in theory.centers_list],
        "sigma": theory.sigma,
        "l2hmc": {**config.to_dict(), "eps_x": dyn.eps_x.tolist(), "eps_v": dyn.eps_v.tolist(),
                  "steps": args.steps, "batch": args.batch, "lr": args.lr,
                  "beta_init": args.beta_init, "final_loss": history[-1]["loss"]},
        "hmc": {"eps": list(args.hmc_eps), "nlf": hmc_nlf},
        "chains": args.chains,
        "trajectories": args.trajectories,
        "seed": args.seed,
    }
    if not _finite(summary):
        return _numerical_fault("the sampled mode fractions or rates are not finite")
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "gmm_samples.png") as tmp:
        mixing.plot(theory, panels, str(tmp))
    write_text(args.out / "mode_fractions.json", json.dumps(summary, indent=2) + "\n")
    for title, s in summary["samplers"].items():
        fractions = " ".join(f"{f:.3f}" for f in s["fractions"])
        print(f"{title:>14}: mode fractions {fractions}  switch rate {s['switch_rate']:.3f}  "
              f"accept {s['accept_rate']:.3f}")
    return 0
