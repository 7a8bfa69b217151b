"""Local vs dense L2HMC networks (issue 9): training-step seconds, inference trajectories/s.

Cases: U(1) 16x16, batch 256, N_LF 8, float32, at the ``dlhmc train`` default widths
(``--hidden``: MLP units for dense, convolution channels for local), for ``network: dense``
and ``network: local`` with link-mask periods 4 and 2; then the local model (period 4)
moved unchanged to U(1) 64x64 (volume transfer: the same weights, inference only).  A
training step and an inference step are those of ``benchmarks/l2hmc_step.py``, timed with
a clock that waits for CUDA kernels; its conventions apply (best and mean wall time, best
CPU time).  The parameter counts show that the local model does not grow with the volume.

    .venv/bin/python benchmarks/local_vs_dense.py [--threads 1] [--repeat 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from conditions import describe
from l2hmc_step import train_step_seconds

from dlhmc.allocator import keep_freed_memory
from dlhmc.lattice import make_theory
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics


def build(lattice, batch, config, device, seed=0):
    theory = make_theory("U1", lattice, 4.0, precision="single", device=device)
    torch.manual_seed(seed)
    dyn = L2HMCDynamics(theory, config)
    gen = torch.Generator(device=theory.device).manual_seed(seed)
    return theory, dyn, gen, theory.hot_start(batch, gen)


def synchronized(device: torch.device):
    """A clock that waits for the device's queued kernels (CUDA runs asynchronously)."""

    def now():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    return now


@torch.no_grad()
def inference_rate(dyn, gen, x, repeat, now):
    """Transitions of the whole batch per second, and chain trajectories per second."""
    state, _ = dyn.step(dyn.init(x), gen)
    t0 = now()
    for _ in range(repeat):
        state, _ = dyn.step(state, gen)
    seconds = (now() - t0) / repeat
    return 1.0 / seconds, x.shape[0] / seconds


def n_params(dyn) -> int:
    return sum(p.numel() for p in dyn.parameters() if p.requires_grad)


def case(args, config, label, now):
    theory, dyn, gen, x = build((16, 16), args.batch, config, args.device)
    best, mean, cpu = train_step_seconds(theory, dyn, gen, x, args.repeat, now)
    batches, chains = inference_rate(dyn, gen, x, args.repeat, now)
    result = {"case": f"U1 16x16 float32 {label}", "batch": args.batch, "nlf": config.nlf,
              "hidden": list(config.hidden), "parameters": n_params(dyn),
              "train_step_s_best": best, "train_step_s_mean": mean,
              "train_step_cpu_s_best": cpu, "infer_batch_transitions_per_s": batches,
              "infer_chain_trajectories_per_s": chains}
    return result, dyn


def transfer_case(args, config, weights, now):
    """The 16x16 local model's weights, unchanged, sampling 64x64."""
    theory, dyn, gen, x = build((64, 64), args.big_batch, config, args.device)
    dyn.load_state_dict(weights)
    batches, chains = inference_rate(dyn, gen, x, args.repeat, now)
    return {"case": "U1 64x64 float32 local (period 4), weights of the 16x16 model",
            "batch": args.big_batch, "nlf": config.nlf, "hidden": list(config.hidden),
            "parameters": n_params(dyn), "infer_batch_transitions_per_s": batches,
            "infer_chain_trajectories_per_s": chains}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads (default: OMP_NUM_THREADS or all cores)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--big-batch", type=int, default=64, help="chains at 64x64")
    parser.add_argument("--nlf", type=int, default=8)
    parser.add_argument("--hidden", type=int, nargs="+",
                        default=list(L2HMCConfig.__dataclass_fields__["hidden"].default))
    parser.add_argument("--device", type=torch.device, default=torch.device("cpu"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    print(describe(), flush=True)
    now = synchronized(args.device)
    hidden = tuple(args.hidden)
    dense = L2HMCConfig(nlf=args.nlf, hidden=hidden)
    print(json.dumps(case(args, dense, "dense", now)[0]), flush=True)
    weights = None
    for period in (4, 2):
        local = L2HMCConfig(nlf=args.nlf, hidden=hidden, network="local", local_period=period)
        result, dyn = case(args, local, f"local (period {period})", now)
        print(json.dumps(result), flush=True)
        if period == 4:
            weights = dyn.state_dict()
    local = L2HMCConfig(nlf=args.nlf, hidden=hidden, network="local", local_period=4)
    print(json.dumps(transfer_case(args, local, weights, now)), flush=True)


if __name__ == "__main__":
    main()
