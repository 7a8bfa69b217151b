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


def describe() -> str:
    """One line: torch build, threads, cores, 1-minute load average, processor."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cuda = torch.version.cuda or "none"
    return (
        f"conditions: torch {torch.__version__} (CUDA {cuda}), {torch.get_num_threads()} torch "
        f"threads, {os.cpu_count()} cores, load average {load:.2f} before the run, "
        f"{platform.processor() or platform.machine()}"
    )
