"""Effective sample size of a trained flow from fresh samples (issue 19's goal figure).

The ESS that ``dlhmc train --sampler flow`` logs per step comes from one training batch (64
samples): a few large weights are rarely in it, so it reads high (0.26-0.46 where 8192 samples
give 0.16-0.37, docs/results.md). So does a sample of 8192 where the weights have a heavy tail
(0.53 against 0.38-0.44 from 65536 samples for one flow, docs/results.md, 2026-12-07 eighth
session): the default is 65536. This draws ``--samples`` configurations from the flow of
``RUN_DIR``, computes ``log w = -S(U) - log q(U)`` in float64 and prints
``ESS = (sum w)^2 / (N sum w^2)`` with the run's training steps and seconds, after the
conditions line:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/flow_ess.py RUN_DIR [--samples 65536]
        [--lattice 16 16] [--seed 12345]
"""

from __future__ import annotations

import argparse
import json

import torch
from conditions import describe

from dlhmc import checkpoint as ckpt
from dlhmc.flows.ess import effective_sample_size
from dlhmc.flows.store import load_flow

BATCH = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--samples", type=int, default=65536)
    parser.add_argument("--lattice", type=int, nargs="+", default=None)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(describe(), flush=True)
    flow, state = load_flow(args.run_dir, torch.device("cpu"), lattice=args.lattice)
    generator = torch.Generator().manual_seed(args.seed)
    log_w = []
    with torch.no_grad():
        for start in range(0, args.samples, BATCH):
            x, log_q = flow.sample(min(BATCH, args.samples - start), generator)
            log_w.append(-flow.theory.action(x).double() - log_q.double())
    log_w = torch.cat(log_w)
    print(json.dumps({
        "run": args.run_dir,
        "lattice": list(flow.theory.lattice),
        "beta": flow.theory.beta,
        "samples": len(log_w),
        "ess": float(effective_sample_size(log_w)),
        "training_steps": int(state["step"]),
        "training_seconds": ckpt.training_seconds_total(state),
    }))


if __name__ == "__main__":
    main()
