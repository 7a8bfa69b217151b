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

# The slowest modules, longest first (wall seconds per module from a JUnit report of the whole
# suite on 2 cores with the loopback Slurm running, as CI runs it, 2026-12-07: e2e pipelines 217,
# the sbatch pipeline 180, the dry runs 140, the fake qsub 109, then 59 ... 15). Collected in this
# order, and kept in it by pytest-xdist (`--no-loadscope-reorder` in the Makefile, whose default
# would order files by their number of tests), whole files go to the workers longest first: the
# last file to finish is a short one, not a pipeline module started late on one worker while the
# other sits idle.
FIRST = ("test_workflow_e2e.py", "test_profile_slurm.py", "test_workflow_config.py",
         "test_profile_polaris.py", "test_transfer_su3.py", "test_l2hmc_local_su3.py",
         "test_workflow_transfer.py", "test_workflow_su3.py", "test_instanton.py", "test_infer.py",
         "test_l2hmc_local.py", "test_chain_integrity.py", "test_mpi.py", "test_su3_lattice.py",
         "test_transfer.py", "test_resume.py", "test_hmc_u1.py", "test_hypothesis_cli.py",
         "test_flow_samplers.py", "test_plan_flows.py", "test_toy_gmm.py")


def pytest_collection_modifyitems(config, items):
    """Run the modules of :data:`FIRST` first, in that order; the rest keep theirs."""
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))
