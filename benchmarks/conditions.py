"""The conditions a benchmark ran under, printed before its figures.

Throughput on a shared machine depends on how many cores were free, not only on
the code: a figure without its thread count, core count and load is not comparable
with another day's.  Every benchmark prints this line first, and reports CPU
seconds next to wall seconds so that waiting for a core shows up as
``cpu/wall`` below the thread count.
"""

from __future__ import annotations

import os
import platform

import torch


def processor() -> str:
    """The CPU model and its widest vector instructions (``/proc/cpuinfo`` on Linux).

    Why: the learned samplers' small convolutions and the thousands of small tensor operations
    of a trajectory run at different rates on different processors: on an AVX2-only AMD EPYC
    the default pipeline took 2.1x the CPU time of an earlier session's run while the HMC
    benchmark moved by 1.2x (docs/results.md, 2026-12-07, tenth session; the earlier
    processors were not recorded).  A figure is comparable only on the same model."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine()
    fields = {key.strip(): value.strip() for key, _, value in
              (line.partition(":") for line in info.splitlines()[:40])}
    model = fields.get("model name") or platform.machine()
    flags = fields.get("flags", "").split()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{model} ({vector})"


def describe() -> str:
    """One line: torch build, threads, cores, 1-minute load average, processor."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cuda = torch.version.cuda or "none"
    return (
        f"conditions: torch {torch.__version__} (CUDA {cuda}), {torch.get_num_threads()} torch "
        f"threads, {os.cpu_count()} cores, load average {load:.2f} before the run, "
        f"{processor()}"
    )
