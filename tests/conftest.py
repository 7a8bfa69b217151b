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

# Modules whose tests mostly wait (workflows through sbatch and the fake qsub, whose Snakemake
# polls the queue at growing intervals) or start pipelines of many short processes. Collected
# first, their waits overlap the thousand short tests on the other worker instead of forming the
# suite's tail on one worker while the other sits idle.
FIRST = ("test_profile_slurm.py", "test_profile_polaris.py", "test_workflow_e2e.py",
         "test_workflow_su3.py", "test_workflow_transfer.py")


def pytest_collection_modifyitems(config, items):
    """Run the modules of :data:`FIRST` first, in that order; the rest keep theirs."""
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))
