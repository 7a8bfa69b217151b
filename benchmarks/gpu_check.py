"""GPU check for a short device lease: exactness on the device, a training step under MPI, rates.

    python benchmarks/gpu_check.py --device cuda [--quick] [--stage env|exact|mpi|bench|all]

Every check prints one ``PASS`` or ``FAIL`` line with its numbers and never stops the
others: a lease is too short to rerun after the first failure.  Stages: ``env`` (torch,
device, packages), ``exact`` (:mod:`gpu_exact`: HMC and random-network L2HMC must
reproduce exact plaquettes, integrators be reversible to round-off, ``sum log|J|`` equal
autograd's ``log|det J|``), ``mpi`` (``dlhmc train`` under ``mpiexec -n 1``, and the
collective backend), ``bench`` (HMC link updates/s, L2HMC step times).  Why exactness
on the device: CUDA kernels (complex matrix products, convolutions, reductions) are other
code than the CPU ones, and a wrong kernel shows up as a biased plaquette, not as a crash.

The MPI stage: under ``mpiexec -n 1`` ``dlhmc.distributed.setup`` joins a one-member process
group with the backend it uses for several ranks (nccl on CUDA, gloo on CPU; NCCL cannot put
two ranks on one GPU), so ``dlhmc train`` there runs the multi-rank code path; a child under
``mpiexec -n 1`` reports the backend ``setup`` chose and runs its collectives.

``--quick`` shrinks every size so that the whole script runs in about a minute on a CPU
(the proof that it works before a lease is spent).  The shell wrapper
``benchmarks/gpu_check.sh`` installs carried wheels and puts each stage under ``timeout``.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from gpu_exact import stage_exact
from hmc_throughput import measure
from l2hmc_step import inference_rate, train_step_seconds

from dlhmc.allocator import keep_freed_memory
from dlhmc.lattice import make_theory
from dlhmc.samplers.l2hmc import L2HMCConfig, L2HMCDynamics

FULL = {
    "u1_hmc": ((8, 8), 1024, 50, 250), "su3_hmc": ((4, 4, 4, 4), 128, 30, 150),
    "l2_dense": ((4, 4), 1024, 30, 150), "l2_local": ((4, 4), 1024, 30, 150),
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


# ---- environment -------------------------------------------------------------------------

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


# ---- a training step under mpiexec -n 1 --------------------------------------------------

def mpi_child(device_name):
    """Under ``mpiexec -n 1``: the process group ``dlhmc.distributed.setup`` joins, and its
    collectives (all_reduce, broadcast, barrier) on a tensor of the rank's device."""
    import torch.distributed as dist

    from dlhmc.distributed import launched_by_mpi, setup, shutdown

    ctx = setup(device_name)
    t = torch.arange(4.0, device=ctx.device)
    dist.all_reduce(t)
    dist.broadcast(t, src=0)
    dist.barrier()
    print(f"setup: launched_by_mpi {launched_by_mpi()}, world {ctx.world_size}, "
          f"device {ctx.device}, backend {ctx.backend}, all_reduce sum {t.sum().item():g}")
    shutdown(ctx)


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


# ---- benchmarks --------------------------------------------------------------------------

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
            stage_exact(sizes, device, check)
        elif stage == "mpi":
            stage_mpi(sizes, device)
        else:
            stage_bench(sizes, device)
    print(f"== {RESULTS.count(True)} passed, {RESULTS.count(False)} failed", flush=True)
    sys.exit(1 if False in RESULTS else 0)


if __name__ == "__main__":
    main()
