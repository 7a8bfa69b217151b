"""The Slurm profile (profiles/slurm) against a real one-node Slurm cluster on loopback.

`.ci/start-slurm.sh` starts it (Debian slurm-wlm + munge, slurmd -N localhost, 4 stand-in GPUs,
no accounting database). Where no cluster answers, the tests that need one are skipped with the
reason; the dry runs need only the profile.

The three workflows that go through sbatch are started together by one fixture: each spends most
of its time waiting for the executor plugin's next status check (its interval grows by 10 s after
every check that finds no job finished), so side by side they cost the longest of them, not the
sum. The real workflow runs the tiny experiment at one beta (every rule once).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from workflow_helpers import REPO, expected_targets, one_beta_config, write_config

BIN = Path(sys.executable).parent
# The profile's dry run from the repository root, with config.yaml and with the multi-rank cluster
# config in the default run; every shipped config's plan is dry-run there as well (with the default
# profile, tests/test_workflow_config.py), so its dry run through this profile is in the slow run.
PROFILE_DEFAULT_CONFIGS = (None, REPO / "configs" / "su3.yaml")
CONFIGS = [
    c if c in PROFILE_DEFAULT_CONFIGS else pytest.param(c, marks=pytest.mark.slow)
    for c in [None, *sorted((REPO / "configs").glob("*.yaml"))]
]


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


def profile_command(*args: str) -> list[str]:
    """`snakemake --profile <repo>/slurm`, polling Slurm from the first second on."""
    return [
        str(BIN / "snakemake"),
        "--profile",
        str(REPO / "slurm"),
        "--slurm-init-seconds-before-status-checks",
        "1",
        *args,
    ]


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


@dataclass
class Started:
    """A workflow running through sbatch: its directory, process and start time."""

    workdir: Path
    proc: subprocess.Popen
    start: float

    def finish(self, timeout: float) -> tuple[int, str, float]:
        """Exit status, Snakemake's log (stdout and stderr) and seconds from the start."""
        self.proc.wait(timeout=max(1.0, self.start + timeout - time.time()))
        seconds = time.time() - self.start
        return self.proc.returncode, (self.workdir / "snakemake.log").read_text(), seconds


@pytest.fixture(scope="module")
def sbatch_runs(cluster, tmp_path_factory):
    """Start the three workflows at once (each test waits for its own): the GPU and MPI probe,
    the failing job and the tiny experiment at one beta."""
    runs = {}
    for name, snakefile, args in (
        ("gpu_mpi", GPU_AND_MPI_WORKFLOW, ()),
        ("failing", FAILING_WORKFLOW, ("--retries", "0")),
        ("tiny", None, ("-s", str(REPO / "Snakefile"), "--configfile", "one_beta.yaml")),
    ):
        workdir = tmp_path_factory.mktemp(f"sbatch_{name}")
        if snakefile:
            (workdir / "Snakefile").write_text(snakefile)
        else:
            write_config(workdir / "one_beta.yaml", one_beta_config())
        with open(workdir / "snakemake.log", "w") as log:
            proc = subprocess.Popen(profile_command(*args), cwd=workdir, env=env(), stdout=log,
                                    stderr=subprocess.STDOUT, text=True)  # fmt: skip
        runs[name] = Started(workdir, proc, time.time())
    yield runs
    for run in runs.values():  # a test that failed early: Snakemake cancels its Slurm jobs
        if run.proc.poll() is None:
            run.proc.terminate()
            run.proc.wait(timeout=60)


def test_gpu_and_mpi_jobs_through_sbatch(sbatch_runs):
    run = sbatch_runs["gpu_mpi"]
    code, log, _ = run.finish(timeout=240)
    assert code == 0, log
    jobid, gpus = (run.workdir / "hmc.txt").read_text().split()
    assert jobid.isdigit() and gpus == "1"
    ranks = sorted(line.split() for line in (run.workdir / "train.txt").read_text().splitlines())
    assert ranks == [["0", "2"], ["1", "2"]]


def test_failed_job_stops_the_workflow(sbatch_runs):
    """squeue (no accounting database) must report the failure; Snakemake stops promptly."""
    code, log, seconds = sbatch_runs["failing"].finish(timeout=240)
    assert code != 0
    assert "Error in rule hmc" in log
    assert seconds < 120


def test_tiny_workflow_through_sbatch(sbatch_runs):
    run = sbatch_runs["tiny"]
    code, log, _ = run.finish(timeout=900)
    assert code == 0, log
    config = one_beta_config()
    missing = [p for p in expected_targets("tiny", config) if not (run.workdir / p).exists()]
    assert missing == [], log
    # train, infer, hmc, analyze, report: each its own sbatch job
    assert log.count("has been submitted with SLURM jobid") == 5


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
