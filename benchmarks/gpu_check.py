"""GPU check for a short device lease: exactness on the device, a training step under MPI, rates.

    python benchmarks/gpu_check.py --device cuda [--quick] [--stage env|exact|mpi|bench|all]

Every check prints one ``PASS`` or ``FAIL`` line with its numbers and never stops the
others: a lease is too short to rerun after the first failure.  The exactness checks
are those of the test suite, made device-agnostic (every tensor and generator on
``--device``) and sized so that a statistical failure is visible: a random-network L2HMC
sampler and HMC must reproduce exact plaquettes (pull below 4, the error of the mean from
the spread of per-chain means of independent chains, so autocorrelations are included),
integrators must be reversible to round-off, ``sum log|J|`` must equal autograd's
``log|det J|``.  Why on the device: CUDA kernels (complex matrix products, convolutions,
reductions) are other code than the CPU ones, and a wrong kernel shows up as a biased
plaquette, not as a crash.

``--quick`` shrinks every size so that the whole script runs in about a minute on a CPU
(the proof that it works before a lease is spent).  The shell wrapper
``benchmarks/gpu_check.sh`` installs carried wheels and puts each stage under ``timeout``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hmc_throughput import measure
from l2hmc_step import inference_rate, train_step_seconds

from dlhmc.allocator import keep_freed_memory
from dlhmc.lattice import make_theory
from dlhmc.lattice.su3 import SU3Theory
from dlhmc.lattice.u1 import U1Theory
from dlhmc.samplers.hmc import HMC
from dlhmc.samplers.integrators import INTEGRATORS, integrate
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics

ROOT = Path(__file__).resolve().parent.parent
FULL = {
    "u1_hmc": ((8, 8), 1024, 50, 250), "su3_hmc": ((4, 4, 4, 4), 128, 30, 150),
    "l2_dense": ((4, 4), 1024, 30, 150), "l2_local": ((8, 8), 512, 30, 150),
    "train": ("8", "8", 3, 16), "mpi_timeout": 55,
    "u1_bench": ((16, 16), (1024, 8192, 65536)), "su3_bench": ((8, 8, 8, 8), (1, 16, 64)),
    "l2_bench": ((16, 16), (256, 2048), (22, 22, 22), 5), "seconds": 2.0,
}
QUICK = {
    "u1_hmc": ((4, 4), 128, 20, 80), "su3_hmc": ((2, 2, 2, 2), 16, 10, 50),
    "l2_dense": ((4, 4), 128, 20, 60), "l2_local": ((4, 4), 64, 20, 60),
    "train": ("4", "4", 2, 4), "mpi_timeout": 55,
    "u1_bench": ((8, 8), (16, 64)), "su3_bench": ((2, 2, 2, 2), (1,)),
    "l2_bench": ((8, 8), (16,), (8, 8), 1), "seconds": 0.2,
}
RESULTS: list[bool] = []


def check(name, fn, *args):
    """Run one check; print ``PASS|FAIL name: numbers (seconds)``, whatever it raises."""
    t0 = time.perf_counter()
    try:
        ok, message = fn(*args)
    except Exception as exc:  # a check must never stop the next one
        ok, message = False, f"{type(exc).__name__}: {exc}"
    RESULTS.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name}: {message} ({time.perf_counter() - t0:.1f}s)",
          flush=True)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pull(chain_means: torch.Tensor, exact: float, exact_err: float = 0.0):
    """Mean, its error from the spread of independent per-chain means, and the pull."""
    mean = chain_means.mean().item()
    err = math.hypot(chain_means.std().item() / math.sqrt(chain_means.numel()), exact_err)
    return mean, err, (mean - exact) / err


# ---- a. environment -------------------------------------------------------------------------

def env_torch(device):
    info = (f"python {platform.python_version()}, torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda}, device {device}")
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info += (f", {props.name}, {props.total_memory / 2**30:.1f} GiB, "
                 f"cc {props.major}.{props.minor}, cudnn {torch.backends.cudnn.version()}")
    a = torch.randn(64, 3, 3, dtype=torch.complex128, device=device)
    unitary = torch.linalg.qr(a)[0]
    eye = torch.eye(3, dtype=a.dtype, device=device)
    err = (unitary.mH @ unitary - eye).abs().max().item()
    return err < 1e-12, f"{info}; complex128 QR unitarity error {err:.1e}"


def env_packages():
    versions = []
    for name in ("numpy", "scipy", "xarray", "h5netcdf", "pyerrors", "mpi4py", "yaml"):
        module = __import__(name)
        versions.append(f"{name} {getattr(module, '__version__', '?')}")
    import dlhmc.analysis.table  # noqa: F401  (pyerrors through the analysis)
    import dlhmc.io  # noqa: F401  (h5netcdf through the chain files)

    return True, ", ".join(versions) + f"; mpiexec {shutil.which('mpiexec')}"


# ---- b. exactness ---------------------------------------------------------------------------

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
        dyn.local.xnets[k].head.lambda_s.fill_(1.0)
        dyn.local.xnets[k].head.conv.bias[:2].fill_(0.4)  # the s channels


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


def stage_exact(sizes, device):
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


# ---- c. a training step under mpiexec -n 1 --------------------------------------------------

def mpi_child(device_name):
    """Under ``mpiexec -n 1``: what ``dlhmc.distributed.setup`` picks, then the backend the
    library would use for several ranks (nccl on CUDA, gloo on CPU) on a one-rank group."""
    import torch.distributed as dist

    from dlhmc.distributed import launched_by_mpi, setup, shutdown

    ctx = setup(device_name)
    print(f"setup: launched_by_mpi {launched_by_mpi()}, world {ctx.world_size}, "
          f"device {ctx.device}, backend {ctx.backend}")
    shutdown(ctx)
    device = ctx.device
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {}
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        kwargs["device_id"] = device
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(backend, init_method="env://", rank=0, world_size=1, **kwargs)
    t = torch.arange(4.0, device=device)
    dist.all_reduce(t)
    dist.broadcast(t, src=0)
    dist.barrier()
    print(f"process group: backend {dist.get_backend()}, all_reduce sum {t.sum().item():g}")
    dist.destroy_process_group()


def run(cmd, timeout):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    tail = (r.stdout + r.stderr).strip().splitlines()[-3:]
    return r.returncode, r.stdout, " | ".join(tail)


def mpi_train(sizes, device):
    nt, nx, steps, batch = sizes["train"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = ["mpiexec", "-n", "1", sys.executable, "-m", "dlhmc.cli", "train", "--group", "U1",
               "--lattice", nt, nx, "--beta", "2", "--steps", str(steps), "--batch", str(batch),
               "--nlf", "2", "--hidden", "8", "--device", device.type, "--out", str(out),
               "--no-progress"]
        rc, _, tail = run(cmd, sizes["mpi_timeout"])
        rows = len((out / "metrics.csv").read_text().splitlines()) - 1 if rc == 0 else 0
        files = sorted(p.name for p in out.iterdir()) if out.exists() else []
    return rc == 0 and rows == steps, f"rc {rc}, {rows} metric rows, files {files}; {tail}"


def mpi_backend(sizes, device):
    cmd = ["mpiexec", "-n", "1", sys.executable, __file__, "--mpi-child", "--device", device.type]
    rc, stdout, tail = run(cmd, sizes["mpi_timeout"])
    want = "nccl" if device.type == "cuda" else "gloo"
    return rc == 0 and f"backend {want}," in stdout, f"rc {rc}: {stdout.strip() or tail}"


def stage_mpi(sizes, device):
    if shutil.which("mpiexec") is None:
        check("mpiexec on PATH", lambda: (False, "no mpiexec (carry the mpich wheel)"))
        return
    check("dlhmc train under mpiexec -n 1", mpi_train, sizes, device)
    check("distributed backend under mpiexec -n 1", mpi_backend, sizes, device)


# ---- d. benchmarks --------------------------------------------------------------------------

def peak(device):
    """Peak CUDA memory since the last ``reset_peak`` (nothing to say on the CPU)."""
    if device.type != "cuda":
        return ""
    return f", peak {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def bench_hmc(group, lattice, batch, seconds, device):
    reset_peak(device)
    r = measure(group, lattice, batch, 10, seconds, device)
    return r["accept"] > 0.05, (f"{r['link_updates_per_s']:.3e} link upd/s, "
                                f"{r['traj_per_s']:.2f} traj/s, accept {r['accept']:.3f}"
                                f"{peak(device)}")


def synced_seconds(device, fn, *args):
    sync(device)
    t0 = time.perf_counter()
    fn(*args)
    sync(device)
    return time.perf_counter() - t0


def bench_l2hmc(lattice, batch, hidden, repeat, network, device):
    """One training step (propose, loss, backward, Adam) and one inference step, synced."""
    theory = make_theory("U1", lattice, 4.0, "single", device)
    torch.manual_seed(0)
    dyn = L2HMCDynamics(theory, L2HMCConfig(nlf=8, hidden=hidden, network=network)).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    x = theory.hot_start(batch, gen)
    n_params = sum(p.numel() for p in dyn.parameters())
    train_step_seconds(theory, dyn, gen, x, 1)  # warm-up: kernels, allocator, Adam state
    reset_peak(device)
    train = synced_seconds(device, train_step_seconds, theory, dyn, gen, x, repeat) / (repeat + 1)
    with torch.no_grad():
        infer = synced_seconds(device, inference_rate, dyn, gen, x, repeat) / (repeat + 1)
    return True, (f"train step {1e3 * train:.1f} ms, inference step {1e3 * infer:.1f} ms "
                  f"({batch / infer:.3g} chain traj/s), {n_params} parameters"
                  f"{peak(device)}")


def stage_bench(sizes, device):
    keep_freed_memory()
    seconds = sizes["seconds"]
    for group, (lattice, batches) in (("U1", sizes["u1_bench"]), ("SU3", sizes["su3_bench"])):
        for batch in batches:
            check(f"bench HMC {group} {'x'.join(map(str, lattice))} batch {batch} N_LF 10 "
                  "float64", bench_hmc, group, lattice, batch, seconds, device)
    lattice, batches, hidden, repeat = sizes["l2_bench"]
    for network in ("dense", "local"):
        for batch in batches:
            check(f"bench L2HMC {network} U1 {'x'.join(map(str, lattice))} batch {batch} N_LF 8 "
                  f"hidden {list(hidden)} float32", bench_l2hmc, lattice, batch, hidden, repeat,
                  network, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a CPU dry run)")
    parser.add_argument("--stage", choices=("env", "exact", "mpi", "bench", "all"), default="all")
    parser.add_argument("--mpi-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mpi_child:
        mpi_child(args.device)
        return
    device = torch.device(args.device)
    sizes = QUICK if args.quick else FULL
    stages = ("env", "exact", "mpi", "bench") if args.stage == "all" else (args.stage,)
    for stage in stages:
        print(f"== stage {stage} on {device}{' (quick)' if args.quick else ''}", flush=True)
        if stage == "env":
            check("environment: torch and device", env_torch, device)
            check("environment: packages", env_packages)
        elif stage == "exact":
            stage_exact(sizes, device)
        elif stage == "mpi":
            stage_mpi(sizes, device)
        else:
            stage_bench(sizes, device)
    print(f"== {RESULTS.count(True)} passed, {RESULTS.count(False)} failed", flush=True)
    sys.exit(1 if False in RESULTS else 0)


if __name__ == "__main__":
    main()
