"""One thread per process for the test session and every command it starts.

The tests sample small lattices (4x4 to 4^4): an intra-op thread pool only adds synchronization to
operations that small, and on the two cores the suite is sized for it competes with the commands
the workflow tests start (Snakemake runs two jobs at once, each with OMP_NUM_THREADS=1). Measured
on the shared 2-core machine: tests/test_instanton.py's ten default-run statistical tests took
137 s with torch's default of one thread per core and 37 s with one thread (under a heavier load).
A value set in the environment is kept.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402  (after the environment: torch reads it when loaded)

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
