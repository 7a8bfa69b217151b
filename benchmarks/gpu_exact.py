"""Exactness checks of ``gpu_check.py``, run on any device: exact plaquettes, round-off, Jacobians.

The checks of the test suite, made device-agnostic (every tensor and generator on the
device under test) and sized by the caller.  Statistical checks compare with exact
values by a pull below 4, the error of the mean from the spread of per-chain means of
independent chains (so autocorrelations are included).  Each check returns
``(passed, numbers)`` and never prints.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

from dlhmc.lattice import make_theory
from dlhmc.lattice.su3 import SU3Theory
from dlhmc.lattice.u1 import U1Theory
from dlhmc.samplers.hmc import HMC
from dlhmc.samplers.integrators import INTEGRATORS, integrate
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics

ROOT = Path(__file__).resolve().parent.parent


def pull(chain_means: torch.Tensor, exact: float, exact_err: float = 0.0):
    """Mean, its error from the spread of independent per-chain means, and the pull."""
    mean = chain_means.mean().item()
    err = math.hypot(chain_means.std().item() / math.sqrt(chain_means.numel()), exact_err)
    return mean, err, (mean - exact) / err


def hmc_plaquette(theory, exact, chains, burn, traj, device, nlf=10, eps=0.1):
    gen = torch.Generator(device=device).manual_seed(1)
    kernel = HMC(theory, nlf, eps)
    plaq, accept = [], []
    with torch.no_grad():
        state = kernel.init(theory.hot_start(chains, gen))
        for t in range(burn + traj):
            state, info = kernel.step(state, gen)
            if t >= burn:
                plaq.append(theory.plaquette(state.x))
                accept.append(info.accept_prob.mean())
    mean, err, z = pull(torch.stack(plaq).mean(0), exact.value, exact.error)
    acc = torch.stack(accept).mean().item()
    return abs(z) < 4 and acc > 0.3, (f"{mean:.6f} +- {err:.6f} vs exact {exact.value:.6f}, "
                                      f"pull {z:+.2f}, accept {acc:.3f}, {chains}x{traj} traj")


def exact_u1_hmc(sizes, device):
    lattice, chains, burn, traj = sizes["u1_hmc"]
    theory = U1Theory(lattice, 2.0, device=device)
    return hmc_plaquette(theory, U1Theory.exact_plaquette(lattice, 2.0), chains, burn, traj, device)


def exact_su3_hmc(sizes, device):
    lattice, chains, burn, traj = sizes["su3_hmc"]
    theory = SU3Theory(lattice, 1.0, device=device)
    return hmc_plaquette(theory, SU3Theory.exact_plaquette(lattice, 1.0), chains, burn, traj,
                         device)


def link_diff(theory, a, b):
    if isinstance(theory, U1Theory):
        return (torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi).abs().max().item()
    return (a - b).abs().max().item()


def reversibility(theory, integrator, device, nlf=10, eps=0.05):
    """Forward ``nlf`` steps, flip the momenta, ``nlf`` steps back: the start to round-off."""
    gen = torch.Generator(device=device).manual_seed(2)
    x, p = theory.hot_start(4, gen), theory.sample_momentum(4, gen)
    scheme = INTEGRATORS[integrator]
    x1, p1, _ = integrate(theory, x, p, theory.force(x), nlf, eps, scheme)
    x0, p0, _ = integrate(theory, x1, -p1, theory.force(x1), nlf, eps, scheme)
    moved, dx, dp = link_diff(theory, x1, x), link_diff(theory, x0, x), (p0 + p).abs().max().item()
    return moved > 1e-2 and max(dx, dp) < 1e-10, (f"moved {moved:.2f}, back: links {dx:.1e}, "
                                                  f"momenta {dp:.1e}")


def randomized(theory, config, tune, seed):
    """Random weights drawn on the CPU (the tests' helper), then loaded on ``theory.device``."""
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    from l2hmc_helpers import randomize

    cpu = U1Theory(theory.lattice, theory.beta)
    base = randomize(L2HMCDynamics(cpu, config), scale=tune["scale"], seed=seed)
    with torch.no_grad():
        tune["bias"](base)
    dyn = L2HMCDynamics(theory, config).to(theory.device)
    dyn.load_state_dict(base.state_dict())
    return dyn


def dense_bias(dyn):
    for name, p in dyn.named_parameters():
        if name.endswith("head.s.bias"):
            p.fill_(3.0)  # every update rescales tan(x/2): the Jacobian matters


def local_bias(dyn):
    for k in range(dyn.config.nlf):
        dyn.layers.xnets[k].head.lambda_s.fill_(1.0)
        dyn.layers.xnets[k].head.conv.bias[:2].fill_(0.4)  # the s channels


NETS = {
    "dense": (2.0, L2HMCConfig(nlf=3, hidden=(16,)), {"scale": 0.05, "bias": dense_bias}),
    "local": (1.5, L2HMCConfig(network="local", nlf=2, hidden=(8,), eps_init=0.25),
              {"scale": 0.1, "bias": local_bias}),
}


def exact_l2hmc(sizes, device, network):
    """An untrained random sampler hits the exact plaquette only with ``sum log|J|`` right."""
    beta, config, tune = NETS[network]
    lattice, chains, burn, steps = sizes[f"l2_{network}"]
    theory = U1Theory(lattice, beta, device=device)
    dyn = randomized(theory, config, tune, seed=13)
    gen = torch.Generator(device=device).manual_seed(14)
    plaq, accept, logdet = [], [], []
    with torch.no_grad():
        state = dyn.init(theory.hot_start(chains, gen))
        for step in range(burn + steps):
            state, info = dyn.step(state, gen)
            if step >= burn:
                plaq.append(theory.plaquette(state.x))
                accept.append(info.accept_prob.mean())
                logdet.append(info.extras["sumlogdet"].abs().mean())
    exact = U1Theory.exact_plaquette(lattice, beta).value
    mean, err, z = pull(torch.stack(plaq).mean(0), exact)
    acc, jac = torch.stack(accept).mean().item(), torch.stack(logdet).mean().item()
    ok = abs(z) < 4 and 0.05 < acc < 0.99 and jac > 0.1
    return ok, (f"{mean:.6f} +- {err:.6f} vs exact {exact:.6f}, pull {z:+.2f}, accept {acc:.3f}, "
                f"<|sum log J|> {jac:.2f}, {chains}x{steps} steps")


def logdet_autograd(device, network, direction):
    """``sum log|J|`` of a whole trajectory against ``log|det|`` of its autograd Jacobian."""
    beta, config, tune = NETS[network]
    theory = U1Theory((4, 4), beta, device=device)
    dyn = randomized(theory, config, tune, seed=8)
    gen = torch.Generator(device=device).manual_seed(6)
    x, v = theory.hot_start(1, gen), theory.sample_momentum(1, gen)
    n = x.numel()

    def flow(z):
        x1, v1, _, _ = dyn.trajectory(z[:n].view(x.shape), z[n:].view(v.shape), direction)
        return torch.cat([x1.flatten(), v1.flatten()])

    jac = torch.autograd.functional.jacobian(flow, torch.cat([x.flatten(), v.flatten()]))
    logabsdet = torch.linalg.slogdet(jac)[1].item()
    with torch.no_grad():
        sumlogdet = dyn.trajectory(x, v, direction)[2].item()
    diff = abs(sumlogdet - logabsdet)
    return abs(sumlogdet) > 1e-2 and diff < 1e-10, (f"sum log|J| {sumlogdet:+.6f}, autograd "
                                                    f"{logabsdet:+.6f}, diff {diff:.1e}")


def stage_exact(sizes, device, check):
    """Every exactness check, reported through ``check(name, fn, *args)``."""
    check("exact U(1) HMC plaquette, beta 2", exact_u1_hmc, sizes, device)
    for group, lattice, beta in (("U1", (8, 8), 2.0), ("SU3", (2, 2, 2, 2), 5.5)):
        theory = make_theory(group, lattice, beta, device=device)
        for integrator in INTEGRATORS:
            check(f"reversible {integrator} {group} {'x'.join(map(str, lattice))}",
                  reversibility, theory, integrator, device)
    check("SU(3) HMC strong coupling, beta 1", exact_su3_hmc, sizes, device)
    for network in NETS:
        check(f"exact U(1) plaquette, random L2HMC {network}", exact_l2hmc, sizes, device,
              network)
        for direction in (1, -1):
            check(f"sum log|J| = autograd, {network}, direction {direction:+d}",
                  logdet_autograd, device, network, direction)
