"""Local vs dense L2HMC networks (issue 9): training-step seconds, inference trajectories/s.

Cases: U(1) 16x16, batch 256, N_LF 8, float32, at the ``dlhmc train`` default widths
(``--hidden``: MLP units for dense, convolution channels for local), for ``network: dense``
and ``network: local`` with link-mask periods 4 and 2; then the local model (period 4)
moved unchanged to U(1) 64x64 (volume transfer: the same weights, inference only).  SU(3):
4^4, batch 4, N_LF 4, hidden [16, 16] (the widths of configs/su3_cpu.yaml), dense against
local, and the local model's weights sampling 8^4 (inference only).  A training step and an
inference step are those of ``benchmarks/l2hmc_step.py``, timed with a clock that waits for
CUDA kernels; its conventions apply (best and mean wall time, best CPU time).  The parameter
counts show that the local model does not grow with the volume; the dense one does.

    .venv/bin/python benchmarks/local_vs_dense.py [--threads 1] [--repeat 5] [--device cpu]
        [--groups U1 SU3] [--su3-batch 4] [--su3-big-batch 2] [--su3-repeat 3]

``--layer-steps`` prints only the cost of one local layer in HMC leapfrog steps (issue 18):
the time of one L2HMC trajectory / (``N_LF`` x the time of one HMC leapfrog step), same
theory (U(1) 16x16, beta 4), batch 64, ``hidden`` [16, 16], ``local_period`` 2, ``N_LF`` 8
for both samplers, float32, inference, in one process.  The two are timed in alternation
(``--layer-repeat`` rounds), each round giving a ratio from the best of its trajectories,
so that a load change on a shared machine hits both; the median ratio is the figure:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/local_vs_dense.py --threads 1 --layer-steps

``--conv full separable`` measures the local model with each kind of 3x3 convolution
(``local_conv``, :data:`dlhmc.nets.local.CONVS`), all kinds in the same alternating rounds,
one line each.  The default, ``full``, is ``dlhmc train``'s default.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from conditions import describe
from l2hmc_step import train_step_seconds

from dlhmc.allocator import keep_freed_memory
from dlhmc.lattice import make_theory
from dlhmc.samplers.base import sampling_mode
from dlhmc.samplers.hmc import HMC
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics

# A coupling in each group's scaling region, where the benchmarks of the report run.
BETA = {"U1": 4.0, "SU3": 6.0}


def build(group, lattice, batch, config, device, seed=0):
    theory = make_theory(group, lattice, BETA[group], precision="single", device=device)
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


def inference_rate(dyn, gen, x, repeat, now):
    """Transitions of the whole batch per second, chain trajectories per second, and chain
    trajectories per CPU second (what a core would give were it not shared); in the autograd
    mode of ``dlhmc infer`` (:func:`dlhmc.samplers.base.sampling_mode`)."""
    with sampling_mode(dyn):
        state, _ = dyn.step(dyn.init(x), gen)
        t0, c0 = now(), time.process_time()
        for _ in range(repeat):
            state, _ = dyn.step(state, gen)
    seconds = (now() - t0) / repeat
    cpu = (time.process_time() - c0) / repeat
    return 1.0 / seconds, x.shape[0] / seconds, x.shape[0] / cpu


def n_params(dyn) -> int:
    return sum(p.numel() for p in dyn.parameters() if p.requires_grad)


def case(args, group, lattice, batch, config, label, now, repeat):
    theory, dyn, gen, x = build(group, lattice, batch, config, args.device)
    best, mean, cpu = train_step_seconds(theory, dyn, gen, x, repeat, now)
    batches, chains, chains_cpu = inference_rate(dyn, gen, x, repeat, now)
    result = {"case": f"{group} {extents(lattice)} float32 {label}", "batch": batch,
              "nlf": config.nlf, "hidden": list(config.hidden), "parameters": n_params(dyn),
              "train_step_s_best": best, "train_step_s_mean": mean,
              "train_step_cpu_s_best": cpu, "infer_batch_transitions_per_s": batches,
              "infer_chain_trajectories_per_s": chains,
              "infer_chain_trajectories_per_cpu_s": chains_cpu}
    return result, dyn


def transfer_case(args, group, lattice, batch, config, weights, label, now, repeat):
    """A local model's weights, unchanged, sampling the larger ``lattice``."""
    theory, dyn, gen, x = build(group, lattice, batch, config, args.device)
    dyn.load_state_dict(weights)
    batches, chains, chains_cpu = inference_rate(dyn, gen, x, repeat, now)
    return {"case": f"{group} {extents(lattice)} float32 {label}", "batch": batch,
            "nlf": config.nlf, "hidden": list(config.hidden), "parameters": n_params(dyn),
            "infer_batch_transitions_per_s": batches, "infer_chain_trajectories_per_s": chains,
              "infer_chain_trajectories_per_cpu_s": chains_cpu}


def extents(lattice) -> str:
    return "x".join(map(str, lattice))


def u1_cases(args, now):
    hidden = tuple(args.hidden)
    dense = L2HMCConfig(nlf=args.nlf, hidden=hidden)
    print(json.dumps(case(args, "U1", (16, 16), args.batch, dense, "dense", now,
                          args.repeat)[0]), flush=True)
    weights = None
    for period in (4, 2):
        local = L2HMCConfig(nlf=args.nlf, hidden=hidden, network="local", local_period=period)
        result, dyn = case(args, "U1", (16, 16), args.batch, local, f"local (period {period})",
                           now, args.repeat)
        print(json.dumps(result), flush=True)
        if period == 4:
            weights = dyn.state_dict()
    local = L2HMCConfig(nlf=args.nlf, hidden=hidden, network="local", local_period=4)
    print(json.dumps(transfer_case(args, "U1", (64, 64), args.big_batch, local, weights,
                                   "local (period 4), weights of the 16x16 model", now,
                                   args.repeat)), flush=True)


def su3_cases(args, now):
    """Dense against local on 4^4, then the local weights on 8^4.  The dense networks read
    every link of 4^4 (18 reals each), so their size is tied to that volume; the local ones
    read gauge-invariant loops through 3x3 convolutions and run anywhere."""
    hidden = tuple(args.su3_hidden)
    small, big = (4, 4, 4, 4), tuple(args.su3_big_lattice)
    dense = L2HMCConfig(nlf=args.su3_nlf, hidden=hidden)
    print(json.dumps(case(args, "SU3", small, args.su3_batch, dense, "dense", now,
                          args.su3_repeat)[0]), flush=True)
    local = L2HMCConfig(nlf=args.su3_nlf, hidden=hidden, network="local")
    result, dyn = case(args, "SU3", small, args.su3_batch, local, "local", now, args.su3_repeat)
    print(json.dumps(result), flush=True)
    print(json.dumps(transfer_case(args, "SU3", big, args.su3_big_batch, local, dyn.state_dict(),
                                   "local, weights of the 4^4 model", now,
                                   args.su3_repeat)), flush=True)


def best_step_seconds(kernel, state, gen, n, now):
    """The fastest of ``n`` transitions of the whole batch (after one untimed) and the CPU
    seconds per wall second over them, in the autograd mode of ``dlhmc infer``."""
    with sampling_mode(kernel):
        state, _ = kernel.step(state, gen)
        best, wall, c0 = float("inf"), 0.0, time.process_time()
        for _ in range(n):
            t0 = now()
            state, _ = kernel.step(state, gen)
            seconds = now() - t0
            best, wall = min(best, seconds), wall + seconds
    return best, (time.process_time() - c0) / wall, state


def layer_steps(args, now):
    """One local layer in HMC leapfrog steps: L2HMC trajectory seconds / (N_LF x HMC
    leapfrog step seconds) at the same theory, batch, N_LF and precision; one result per
    convolution kind of ``args.conv``, every kind timed in each round."""
    nlf, batch = 8, 64
    models = {}
    for conv in args.conv:
        config = L2HMCConfig(nlf=nlf, hidden=(16, 16), network="local", local_period=2,
                             local_conv=conv)
        theory, dyn, gen, x = build("U1", (16, 16), batch, config, args.device)
        models[conv] = (dyn, dyn.init(x))
    hmc = HMC(theory, nlf, 0.1)
    hmc_state = hmc.init(x)
    ratios = {conv: [] for conv in models}
    local_s = {conv: [] for conv in models}
    hmc_s, cpu = [], []
    for _ in range(args.layer_repeat):
        t_hmc, c_hmc, hmc_state = best_step_seconds(hmc, hmc_state, gen, 40, now)
        hmc_s.append(t_hmc)
        for conv, (dyn, state) in models.items():
            t_local, c_local, state = best_step_seconds(dyn, state, gen, 6, now)
            models[conv] = (dyn, state)
            ratios[conv].append(t_local / t_hmc)
            local_s[conv].append(t_local)
            cpu.append(min(c_hmc, c_local))
    return [{"case": f"U1 16x16 float32 local (period 2, {conv} 3x3 convolutions), one layer "
                     f"in HMC leapfrog steps",
             "batch": batch, "nlf": nlf, "hidden": list(config.hidden), "conv": conv,
             "parameters": n_params(models[conv][0]),
             "layer_in_leapfrog_steps": statistics.median(ratios[conv]),
             "layer_in_leapfrog_steps_rounds": [round(r, 1) for r in ratios[conv]],
             "l2hmc_trajectory_s_best": min(local_s[conv]), "hmc_trajectory_s_best": min(hmc_s),
             "hmc_leapfrog_step_s_best": min(hmc_s) / nlf,
             "cpu_per_wall_min": min(cpu)} for conv in models]


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
    parser.add_argument("--groups", nargs="+", choices=["U1", "SU3"], default=["U1", "SU3"])
    parser.add_argument("--su3-batch", type=int, default=4, help="SU(3) chains at 4^4")
    parser.add_argument("--su3-big-batch", type=int, default=2, help="SU(3) chains at 8^4")
    parser.add_argument("--su3-big-lattice", type=int, nargs=4, default=[8, 8, 8, 8])
    parser.add_argument("--su3-nlf", type=int, default=4)
    parser.add_argument("--su3-hidden", type=int, nargs="+", default=[16, 16])
    parser.add_argument("--su3-repeat", type=int, default=3)
    parser.add_argument("--layer-steps", action="store_true",
                        help="only the cost of one local layer in HMC leapfrog steps")
    parser.add_argument("--layer-repeat", type=int, default=5,
                        help="alternating rounds of the --layer-steps measure")
    parser.add_argument("--conv", nargs="+", choices=["full", "separable"], default=["full"],
                        help="--layer-steps: kinds of the local 3x3 convolutions to time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    print(describe(), flush=True)
    now = synchronized(args.device)
    if args.layer_steps:
        for result in layer_steps(args, now):
            print(json.dumps(result), flush=True)
        print(describe().replace("before the run", "after the run"), flush=True)
        return
    if "U1" in args.groups:
        u1_cases(args, now)
    if "SU3" in args.groups:
        su3_cases(args, now)


if __name__ == "__main__":
    main()
