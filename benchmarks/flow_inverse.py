"""Time of a flow's inverse against its forward map (what a T-REX swap pays for its bridges).

A T-REX swap maps one replica forward through a bridge and the other back through its inverse,
whose circle maps have no closed form (:func:`dlhmc.flows.mixture._solve`: Newton steps in a
bisection bracket).  This loads the flow or bridge of ``RUN_DIR`` (``dlhmc train --sampler flow``
or ``bridge``), maps ``--batch`` configurations forward and back, and prints after the
conditions line the best of ``--repeat`` blocks of ``--calls`` calls, in milliseconds per call,
for both directions, their ratio and the largest round-trip error of the angles:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/flow_inverse.py RUN_DIR [--batch 16]
        [--precision double|single] [--lattice 16 16] [--calls 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from conditions import describe

from dlhmc.flows.store import load_bridge, load_flow, run_sampler


def best_ms(fn, calls: int, repeat: int) -> float:
    """Milliseconds per call of ``fn``, the best of ``repeat`` blocks (one warm-up call)."""
    fn()
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return 1e3 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--precision", choices=("double", "single"), default="double")
    parser.add_argument("--lattice", type=int, nargs=2, default=None)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(describe())
    lattice = None if args.lattice is None else tuple(args.lattice)
    sampler = run_sampler(args.run_dir)
    if sampler == "bridge":
        flow, _ = load_bridge(args.run_dir, "cpu", lattice=lattice)
    else:
        flow, _ = load_flow(args.run_dir, "cpu", lattice=lattice)
    dtype = torch.float64 if args.precision == "double" else torch.float32
    flow.to(dtype=dtype)
    u = flow.theory.hot_start(args.batch, torch.Generator().manual_seed(0)).to(dtype)
    with torch.no_grad():
        x, _ = flow(u)
        back, _ = flow.inverse(x)
        gap = torch.remainder(back - u + math.pi, 2 * math.pi) - math.pi
        forward = best_ms(lambda: flow(u), args.calls, args.repeat)
        inverse = best_ms(lambda: flow.inverse(x), args.calls, args.repeat)
    print(json.dumps({
        "run": args.run_dir, "sampler": sampler, "lattice": list(flow.theory.lattice),
        "layers": len(flow.layers), "batch": args.batch, "precision": args.precision,
        "forward_ms": round(forward, 3), "inverse_ms": round(inverse, 3),
        "inverse_over_forward": round(inverse / forward, 2),
        "round_trip_error": float(gap.abs().max()),
    }))


if __name__ == "__main__":
    main()
