"""HMC throughput: trajectories per second and link updates per second.

    python benchmarks/hmc_throughput.py [--group U1|SU3] [--nlf 10] [--seconds 3]

A trajectory advances every chain of the batch by ``N_LF`` leapfrog steps;
link updates per second = batch * links per configuration * N_LF *
trajectories per second.  Each case runs for at least ``--seconds`` of wall
time after two warm-up trajectories.  ``cpu/wall`` is the process CPU time
per wall second: about the number of torch threads on an idle machine, lower
when other processes compete for the cores (the wall-clock rates are then
low too; link updates per CPU second stay meaningful for one thread).  With
more torch threads than free cores every operation waits at an OpenMP barrier
for a descheduled thread and the rates collapse (10-100x measured here on a
shared 2-core machine): compare with ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from conditions import describe

from dlhmc.allocator import keep_freed_memory
from dlhmc.lattice import make_theory
from dlhmc.samplers.base import sampling_mode
from dlhmc.samplers.hmc import HMC

CASES = {
    "U1": [((16, 16), batch) for batch in (64, 256, 1024)],
    "SU3": [(lattice, batch) for lattice in ((4, 4, 4, 4), (8, 8, 8, 8)) for batch in (1, 4)],
}
STEP_SIZE = {"U1": 0.1, "SU3": 0.02}
BETA = {"U1": 4.0, "SU3": 6.0}


def measure(group: str, lattice, batch: int, nlf: int, seconds: float, device) -> dict:
    theory = make_theory(group, lattice, BETA[group], device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    eps = STEP_SIZE[group]
    kernel = HMC(theory, nlf, eps)
    with sampling_mode(kernel):  # as dlhmc hmc runs its chains
        state = kernel.init(theory.hot_start(batch, generator))
        for _ in range(2):
            state, info = kernel.step(state, generator)
        n_traj = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while True:
            state, info = kernel.step(state, generator)
            n_traj += 1
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            wall = time.perf_counter() - wall0
            if wall >= seconds and n_traj >= 3:
                break
        cpu = time.process_time() - cpu0
    links = len(lattice) * math.prod(lattice)
    rate = n_traj / wall
    return {
        "group": group,
        "lattice": "x".join(map(str, lattice)),
        "batch": batch,
        "traj_per_s": rate,
        "link_updates_per_s": batch * links * nlf * rate,
        "cpu_per_wall": cpu / wall,
        "link_updates_per_cpu_s": batch * links * nlf * n_traj / cpu,
        "accept": info.accept_prob.mean().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=tuple(CASES), action="append")
    parser.add_argument("--nlf", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum wall time per case")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    keep_freed_memory()
    device = torch.device(args.device)
    print(describe())
    print(f"device {device}, N_LF {args.nlf}, float64/complex128")
    print(
        f"{'group':5} {'lattice':>8} {'batch':>5} {'traj/s':>9} {'link upd/s':>11} "
        f"{'cpu/wall':>8} {'upd/cpu-s':>10} {'accept':>6}"
    )
    for group in args.group or tuple(CASES):
        for lattice, batch in CASES[group]:
            r = measure(group, lattice, batch, args.nlf, args.seconds, device)
            print(
                f"{r['group']:5} {r['lattice']:>8} {r['batch']:>5} {r['traj_per_s']:9.2f} "
                f"{r['link_updates_per_s']:11.3e} {r['cpu_per_wall']:8.2f} "
                f"{r['link_updates_per_cpu_s']:10.3e} {r['accept']:6.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
