"""Measured time of one instanton hit in leapfrog steps, beside the fixed rule the analysis counts.

    OMP_NUM_THREADS=1 python benchmarks/instanton_hit_cost.py [--lattice 256 16] [--batch 16]

The analysis counts a hit of winding HMC as ``P / V`` leapfrog steps (the plaquettes whose
action it evaluates over those of one force evaluation; ``dlhmc.analysis.move_costs``), never
as a measured time, which depends on the machine and its load. This measures that time once,
for comparison: a hit on all chains against one leapfrog step on all chains, each timed over
``--repeats`` after a warm-up, ``--tries`` times (the spread is the machine's). Large lattices
show the per-plaquette cost of the implementation; small ones its per-call overhead.
"""

from __future__ import annotations

import argparse
import time

import torch
from conditions import describe

from dlhmc.analysis.move_costs import winding_hit_lf
from dlhmc.lattice import make_theory
from dlhmc.samplers.instanton import instanton_hits
from dlhmc.samplers.integrators import integrate


def seconds_per_call(run, repeats: int, device: torch.device) -> float:
    run()  # warm-up (allocations, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def hit_in_leapfrog_steps(theory, size: int, batch: int, repeats: int, seed: int) -> float:
    generator = torch.Generator(device=theory.device).manual_seed(seed)
    x = theory.hot_start(batch, generator)
    p = theory.sample_momentum(batch, generator)
    action, force = theory.action(x), theory.force(x)
    with torch.no_grad():
        hit = seconds_per_call(
            lambda: instanton_hits(theory, x, action, repeats, size, generator),
            repeats,
            theory.device,
        )
        step = seconds_per_call(
            lambda: integrate(theory, x, p, force, repeats, 0.01), repeats, theory.device
        )
    return hit / step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lattice", type=int, nargs="+", default=[256, 16])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--precision", default="double")
    args = parser.parse_args()
    device = torch.device("cpu")
    print(describe())
    print("L x L, batch, size W (0: delocalized), measured LF steps per hit (tries), rule P / V")
    for n in args.lattice:
        theory = make_theory("U1", (n, n), 3.0, args.precision, device)
        for size in dict.fromkeys((0, n, n // 2, 4)):
            measured = [
                hit_in_leapfrog_steps(theory, size, args.batch, args.repeats, seed)
                for seed in range(args.tries)
            ]
            rule = winding_hit_lf((n, n), size)
            cells = " ".join(f"{m:.3g}" for m in measured)
            print(f"{n}x{n}, batch {args.batch}, W {size}: {cells}; rule {rule:.3g}", flush=True)


if __name__ == "__main__":
    main()
