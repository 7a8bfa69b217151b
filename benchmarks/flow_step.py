"""CPU seconds of one reverse-KL training step of a flow (issue 19: the step is overhead bound).

Builds the trainer of ``dlhmc train --sampler flow`` (:func:`dlhmc.training.flow_trainer.build`)
at U(1) 8x8, beta 2 by default and times ``train_step`` (draw, flow, action, backward, clip,
Adam, metrics) with ``time.process_time`` (the allocator set up as ``dlhmc`` does) after
``--warm`` untimed steps; prints the best and the median CPU seconds of ``--repeat`` blocks of
``--steps`` steps.  ``--profile`` prints the
top operators of torch.profiler for one block instead.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/flow_step.py [--layers 16] [--hidden 8 8]
        [--batch 64] [--period 4] [--gradient reparam|path] [--steps 50] [--repeat 5]
        [--profile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from conditions import describe

from dlhmc import distributed as dist
from dlhmc.allocator import keep_freed_memory
from dlhmc.flows.model import FLOW_GRADIENTS
from dlhmc.settings import RunOptions, TrainSettings
from dlhmc.training import flow_trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lattice", type=int, nargs=2, default=[8, 8])
    parser.add_argument("--beta", type=float, default=2.0)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--hidden", type=int, nargs="+", default=[8, 8])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--period", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gradient", choices=FLOW_GRADIENTS, default="reparam")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as dlhmc does
    print(describe(), flush=True)
    settings = TrainSettings(group="U1", lattice=tuple(args.lattice), beta=args.beta,
                             sampler="flow", flow_layers=args.layers, hidden=tuple(args.hidden),
                             batch=args.batch, local_period=args.period, lr=5e-3,
                             steps=10**6, flow_gradient=args.gradient)
    with tempfile.TemporaryDirectory() as tmp:
        options = RunOptions(out=Path(tmp), no_progress=True)
        trainer = flow_trainer.build(settings, options, dist.setup("cpu"))
        trainer.start(None, None)
        for _ in range(args.warm):
            trainer.train_step()
        if args.profile:
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(args.steps):
                    trainer.train_step()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40))
            return
        blocks = []
        for _ in range(args.repeat):
            c0 = time.process_time()
            for _ in range(args.steps):
                trainer.train_step()
            blocks.append((time.process_time() - c0) / args.steps)
    print(json.dumps({"layers": args.layers, "hidden": args.hidden, "batch": args.batch,
                      "period": args.period, "gradient": args.gradient,
                      "cpu_s_best": round(min(blocks), 5),
                      "cpu_s_median": round(statistics.median(blocks), 5)}))


if __name__ == "__main__":
    main()
