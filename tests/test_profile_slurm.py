"""The Slurm profile (profiles/slurm) against a real one-node Slurm cluster on loopback.

`.ci/start-slurm.sh` starts it (Debian slurm-wlm + munge, slurmd -N localhost, 4 stand-in GPUs,
no accounting database). Where no cluster answers, the tests that need one are skipped with the
reason; the dry runs need only the profile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from workflow_helpers import REPO, TINY_CONFIG, expected_targets, tiny_config

BIN = Path(sys.executable).parent
CONFIGS = [None, *sorted((REPO / "configs").glob("*.yaml"))]


def slurm_missing() -> str | None:
    """Why the cluster cannot be used, or None when sbatch can run jobs."""
    for tool in ("sbatch", "squeue", "sinfo", "srun"):
        if shutil.which(tool) is None:
            return f"`{tool}` not installed"
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        return "slurmctld does not answer (sinfo timed out)"
    if done.returncode != 0:
        return f"slurmctld does not answer: {done.stderr.strip()}"
    if not {"idle", "mixed", "allocated"} & set(done.stdout.split()):
        return f"no usable node (states: {done.stdout.split()})"
    return None


@pytest.fixture(scope="module")
def cluster():
    reason = slurm_missing()
    if reason:
        pytest.skip(f"no Slurm cluster: {reason}; start one with `bash .ci/start-slurm.sh` (root)")


def env() -> dict[str, str]:
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")


def profile_run(workdir: Path, *args: str, timeout: float):
    """`snakemake --profile <repo>/slurm`, polling Slurm from the first second on."""
    return subprocess.run(
        [
            str(BIN / "snakemake"),
            "--profile",
            str(REPO / "slurm"),
            "--slurm-init-seconds-before-status-checks",
            "1",
            *args,
        ],
        cwd=workdir,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# Rules named like the workflow's, so the profile's set-resources apply: hmc gets one GPU,
# train launches two MPI ranks itself inside a two-task allocation; rank 0 prints what both
# report (two ranks printing to one forwarded stdout can interleave within a line).
GPU_AND_MPI_WORKFLOW = """
rule all:
    input:
        "hmc.txt",
        "train.txt",


rule hmc:
    output:
        "hmc.txt",
    shell:
        "echo $SLURM_JOB_ID $SLURM_GPUS_ON_NODE > {output}"


rule train:
    output:
        "train.txt",
    resources:
        tasks=2,
        mpi="mpiexec",
    shell:
        "{resources.mpi} -n {resources.tasks} python -c "
        "'from mpi4py import MPI; c = MPI.COMM_WORLD; lines = c.gather((c.rank, c.size)); "
        "c.rank or [print(r, n) for r, n in lines]' > {output}"
"""

FAILING_WORKFLOW = """
rule hmc:
    output:
        "never.txt",
    shell:
        "exit 3"
"""


def test_gpu_and_mpi_jobs_through_sbatch(cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(GPU_AND_MPI_WORKFLOW)
    done = profile_run(tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr
    jobid, gpus = (tmp_path / "hmc.txt").read_text().split()
    assert jobid.isdigit() and gpus == "1"
    ranks = sorted(line.split() for line in (tmp_path / "train.txt").read_text().splitlines())
    assert ranks == [["0", "2"], ["1", "2"]]


def test_failed_job_stops_the_workflow(cluster, tmp_path):
    """squeue (no accounting database) must report the failure; Snakemake stops promptly."""
    (tmp_path / "Snakefile").write_text(FAILING_WORKFLOW)
    start = time.time()
    done = profile_run(tmp_path, "--retries", "0", timeout=240)
    assert done.returncode != 0
    assert "Error in rule hmc" in done.stderr
    assert time.time() - start < 120


def test_tiny_workflow_through_sbatch(cluster, tmp_path):
    done = profile_run(
        tmp_path, "-s", str(REPO / "Snakefile"), "--configfile", str(TINY_CONFIG), timeout=900
    )
    assert done.returncode == 0, done.stderr
    missing = [p for p in expected_targets("tiny", tiny_config()) if not (tmp_path / p).exists()]
    assert missing == [], done.stderr
    # 2 train, 2 infer, 4 hmc, analyze, report: each its own sbatch job
    assert done.stderr.count("has been submitted with SLURM jobid") == 10


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name if c else "config.yaml")
def test_dry_run_from_repository_root(config):
    """`snakemake --profile slurm` as the README says: found from the repository root."""
    args = ["--configfile", str(config)] if config else []
    done = subprocess.run(
        [str(BIN / "snakemake"), "--profile", "slurm", "-n", "--nolock", "--forceall", *args],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Using profiles slurm and workflow specific profile profiles/default" in done.stderr
    assert "gpu=1" in done.stdout + done.stderr
