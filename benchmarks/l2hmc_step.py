"""Throughput of the L2HMC sampler: training-step seconds, inference trajectories/s, peak memory.

Cases (issue 3): U(1) 16x16, batch 256, N_LF 8, float32, hidden [256, 256, 256] (24
networks, 16.8M parameters) and hidden [22, 22, 22] (1.22M parameters in all, the
"~1.2M parameter" size of the performance target); one training step = propose + loss
``-E[A dQ_R^2]`` + backward + Adam; inference = one ``step`` (no gradients) of the
whole batch; SU(3) 4^4, batch 4, double.  The peak resident memory of a batch-2048 U(1)
training step is measured in a fresh process so that earlier cases do not count.
Training steps report the best and mean wall time and the best CPU time
(``time.process_time``): on a shared machine the CPU time shows the cost of a step,
the wall time adds the waiting for a core.  The allocator is set up as ``dlhmc`` does.

    .venv/bin/python benchmarks/l2hmc_step.py [--threads 2] [--repeat 5]

On a shared, loaded machine use ``--threads 1``: OpenMP threads that wait for a
descheduled partner make two-thread numbers meaningless there.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from conditions import describe

from dlhmc.allocator import keep_freed_memory
from dlhmc.lattice import make_theory
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics


def build(group, lattice, beta, precision, batch, config, seed=0):
    theory = make_theory(group, lattice, beta, precision=precision)
    torch.manual_seed(seed)
    dyn = L2HMCDynamics(theory, config)
    gen = torch.Generator().manual_seed(seed)
    return theory, dyn, gen, theory.hot_start(batch, gen)


def train_step_seconds(theory, dyn, gen, x, repeat, now=time.perf_counter):
    """Best and mean wall seconds of a training step, and the best CPU seconds; ``now`` is the
    clock (one that synchronizes a CUDA device for GPU timings)."""
    opt = torch.optim.Adam(dyn.parameters(), lr=1e-4, fused=True)  # as dlhmc train

    def step():
        prop = dyn.propose(x, gen)
        dq = theory.charge_real(prop.x) - theory.charge_real(x)
        loss = -(prop.accept_prob * dq.square()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = now(), time.process_time()
        step()
        times.append(now() - t0)
        cpu.append(time.process_time() - c0)
    return min(times), sum(times) / len(times), min(cpu)


def inference_rate(dyn, gen, x, repeat):
    state, _ = dyn.step(dyn.init(x), gen)
    t0 = time.perf_counter()
    for _ in range(repeat):
        state, _ = dyn.step(state, gen)
    seconds = (time.perf_counter() - t0) / repeat
    return 1.0 / seconds, x.shape[0] / seconds


def u1_config(nlf, hidden):
    return L2HMCConfig(nlf=nlf, hidden=tuple(hidden))


def case_u1(args, hidden):
    theory, dyn, gen, x = build("U1", (16, 16), 4.0, "single", args.batch,
                                u1_config(8, hidden))
    n_params = sum(p.numel() for p in dyn.parameters())
    best, mean, cpu = train_step_seconds(theory, dyn, gen, x, args.repeat)
    batches, chains = inference_rate(dyn, gen, x, args.repeat)
    return {"case": "U1 16x16 float32", "batch": args.batch, "nlf": 8, "hidden": hidden,
            "parameters": n_params, "train_step_s_best": best, "train_step_s_mean": mean,
            "train_step_cpu_s_best": cpu, "infer_batch_transitions_per_s": batches,
            "infer_chain_trajectories_per_s": chains}


def case_su3(args):
    config = L2HMCConfig(nlf=args.su3_nlf, hidden=tuple(args.su3_hidden))
    theory, dyn, gen, x = build("SU3", (4, 4, 4, 4), 6.0, "double", 4, config)
    n_params = sum(p.numel() for p in dyn.parameters())
    best, mean, cpu = train_step_seconds(theory, dyn, gen, x, max(2, args.repeat // 2))
    batches, chains = inference_rate(dyn, gen, x, max(2, args.repeat // 2))
    return {"case": "SU3 4^4 complex128", "batch": 4, "nlf": args.su3_nlf,
            "hidden": args.su3_hidden, "parameters": n_params, "train_step_s_best": best,
            "train_step_s_mean": mean, "train_step_cpu_s_best": cpu,
            "infer_batch_transitions_per_s": batches, "infer_chain_trajectories_per_s": chains}


def memory_child(args):
    theory, dyn, gen, x = build("U1", (16, 16), 4.0, "single", args.batch,
                                u1_config(8, args.hidden))
    best, _, _ = train_step_seconds(theory, dyn, gen, x, 1)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"case": f"U1 16x16 float32 batch {args.batch} peak memory",
                      "peak_rss_mib": peak_mib, "train_step_s": best}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads (default: OMP_NUM_THREADS or all cores)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256])
    parser.add_argument("--small-hidden", type=int, nargs="+", default=[22, 22, 22],
                        help="second U(1) case: about 1.2M parameters in all")
    parser.add_argument("--su3-nlf", type=int, default=4)
    parser.add_argument("--su3-hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--memory-batch", type=int, default=2048)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    if args.memory_child:
        memory_child(args)
        return
    print(describe(), flush=True)
    for result in (case_u1(args, args.small_hidden), case_u1(args, args.hidden), case_su3(args)):
        print(json.dumps(result), flush=True)
    child = [sys.executable, __file__, "--memory-child", "--threads", str(args.threads),
             "--batch", str(args.memory_batch), "--hidden", *map(str, args.hidden)]
    print(subprocess.run(child, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
