"""SU(3) HMC with the leapfrog and the Omelyan integrator: acceptance, cost per unit length.

    .venv/bin/python benchmarks/su3_integrators.py [--lattice 8 8 8 8] [--beta 6.0] [--nlf 10]

Both integrators are second order; Omelyan's minimum-norm coefficients make its energy error
about ten times smaller at equal step size for two force evaluations per step instead of one.
What decides is the cost at equal acceptance: for each integrator this finds (by bisection on
the step size, at fixed N_LF) the step size whose mean acceptance is about ``--target`` on a
thermalized configuration, then reports trajectories per second, force evaluations per unit of
trajectory length, and the acceptance of each integrator at the common setting
``N_LF 10, trajectory length 1`` (issue 11).
"""

from __future__ import annotations

import argparse
import time

import torch
from conditions import describe

from dlhmc.lattice import make_theory
from dlhmc.samplers.hmc import HMC
from dlhmc.samplers.integrators import INTEGRATORS


def acceptance(theory, x, integrator, nlf, eps, n_traj, seed):
    """Mean acceptance and trajectories per second over ``n_traj`` trajectories from ``x``."""
    kernel = HMC(theory, nlf, eps, integrator)
    gen = torch.Generator().manual_seed(seed)
    state = kernel.init(x)
    accept = []
    start = time.perf_counter()
    for _ in range(n_traj):
        state, info = kernel.step(state, gen)
        accept.append(info.accept_prob.mean().item())
    seconds = time.perf_counter() - start
    return sum(accept) / len(accept), n_traj / seconds, state.x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lattice", type=int, nargs=4, default=[8, 8, 8, 8])
    parser.add_argument("--beta", type=float, default=6.0)
    parser.add_argument("--nlf", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--therm", type=int, default=100)
    parser.add_argument("--traj", type=int, default=8, help="trajectories per acceptance estimate")
    args = parser.parse_args()
    print(describe(), flush=True)
    torch.set_grad_enabled(False)
    theory = make_theory("SU3", args.lattice, args.beta, "double")
    gen = torch.Generator().manual_seed(0)
    # Thermalize with Omelyan trajectories of length 1 (accepted almost always from a hot start,
    # so the links reach equilibrium five times faster than with small leapfrog steps).
    _, _, x = acceptance(theory, theory.hot_start(1, gen), "omelyan", 10, 0.1, args.therm, 1)
    print(f"SU(3) {'x'.join(map(str, args.lattice))} beta {args.beta}: thermalized, "
          f"plaquette {theory.plaquette(x).item():.4f}", flush=True)
    for name, integrator in INTEGRATORS.items():
        lo, hi = 0.005, 0.5
        for _ in range(8):  # bisection in log eps on the acceptance
            eps = (lo * hi) ** 0.5
            acc, _, _ = acceptance(theory, x, name, args.nlf, eps, args.traj, 2)
            lo, hi = (eps, hi) if acc > args.target else (lo, eps)
        acc, rate, _ = acceptance(theory, x, name, args.nlf, eps, args.traj, 3)
        forces = integrator.force_evaluations(args.nlf)
        acc_1, _, _ = acceptance(theory, x, name, 10, 0.1, args.traj, 4)
        print(f"{name:8s} eps {eps:.4f} (acceptance {acc:.2f}): {rate:.3f} traj/s, "
              f"{forces} force evaluations per trajectory = {forces / (args.nlf * eps):.0f} per "
              f"unit length; at N_LF 10, length 1: acceptance {acc_1:.2f}", flush=True)


if __name__ == "__main__":
    main()
