"""The Polaris profile (profiles/polaris) against stand-in PBS Pro commands (tests/fakepbs).

The stand-ins answer in PBS Pro's formats and enforce Polaris' submission rules, so these tests
check what qsub receives (project, queue by node count and walltime, select, place, walltime,
filesystems), what the status script answers for every kind of finished job, and that Snakemake
driven by the profile finishes a workflow and gives up promptly on a job PBS kills.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from workflow_helpers import REPO, expected_targets, one_beta_config, write_config

# The profile's dry run from the repository root, with config.yaml and with the multi-rank cluster
# config in the default run; every shipped config's plan is dry-run there as well (with the default
# profile, tests/test_workflow_config.py), so its dry run through this profile is in the slow run.
PROFILE_DEFAULT_CONFIGS = (None, REPO / "configs" / "su3.yaml")
CONFIGS = [
    c if c in PROFILE_DEFAULT_CONFIGS else pytest.param(c, marks=pytest.mark.slow)
    for c in [None, *sorted((REPO / "configs").glob("*.yaml"))]
]

PROFILE = REPO / "profiles" / "polaris"
SUBMIT = PROFILE / "pbs-submit.py"
STATUS = PROFILE / "pbs-status.py"
FAKEPBS = REPO / "tests" / "fakepbs"
BIN = Path(sys.executable).parent
JOBID = re.compile(r"^\d+\.polaris-pbs-01\.hsn\.cm\.polaris\.alcf\.anl\.gov$")


@pytest.fixture
def pbs_env(tmp_path) -> dict[str, str]:
    """Stand-in PBS first on PATH, a project, this virtualenv for the jobs."""
    env = dict(os.environ)
    env.pop("DLHMC_PBS_QUEUE", None)
    env |= {
        "PATH": f"{FAKEPBS}{os.pathsep}{BIN}{os.pathsep}{env['PATH']}",
        "FAKEPBS_DIR": str(tmp_path / "pbs"),
        "FAKEPBS_QUEUE_SECONDS": "0.2",
        "DLHMC_PBS_ACCOUNT": "LatticeQCD_aesp",
        "DLHMC_VENV": sys.prefix,
        "OMP_NUM_THREADS": "1",
    }
    return env


def write_jobscript(directory: Path, resources: dict, body: str = "true", rule: str = "hmc"):
    """A job script as Snakemake writes it: the properties line carries rule and resources."""
    props = {
        "type": "single",
        "rule": rule,
        "wildcards": {"exp": "tiny", "beta": "1.0"},
        "resources": resources,
        "jobid": 1,
    }
    path = directory / f"snakejob.{rule}.1.sh"
    path.write_text(f"#!/bin/sh\n# properties = {json.dumps(props)}\n{body}\n")
    return path


def submitted(env) -> list[dict]:
    """The stand-in server's job records in submission order, each with its sequence number."""
    jobs = sorted((Path(env["FAKEPBS_DIR"]) / "jobs").glob("*.json"), key=lambda p: int(p.stem))
    return [{"seq": p.stem, **json.loads(p.read_text())} for p in jobs]


def qsub_options(argv: list[str]) -> dict[str, list[str]]:
    """qsub's options, each with all its values (-l repeats)."""
    options: dict[str, list[str]] = {}
    for flag, value in zip(argv[1:-1:2], argv[2:-1:2], strict=True):
        options.setdefault(flag, []).append(value)
    return options


def submit(tmp_path, env, resources, body="true"):
    script = write_jobscript(tmp_path, resources, body)
    return subprocess.run(
        [str(SUBMIT), str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )


def status(jobid: str, env) -> str:
    done = subprocess.run([str(STATUS), jobid], env=env, capture_output=True, text=True, check=True)
    return done.stdout


# Polaris: debug 1-2 nodes up to 1 h; prod from 10 nodes; preemptable up to 10 nodes, 72 h;
# 4 A100 per node, one rank each; walltime at least 5 minutes.
@pytest.mark.parametrize(
    ("resources", "queue", "nodes", "walltime"),
    [
        ({"runtime": 20, "gpu": 1}, "debug", 1, "00:20:00"),
        ({"runtime": 60, "tasks": 8}, "debug", 2, "01:00:00"),
        ({"runtime": 61, "tasks": 1}, "preemptable", 1, "01:01:00"),
        ({"runtime": 240, "tasks": 12}, "preemptable", 3, "04:00:00"),
        ({"runtime": 30, "nodes": 3}, "preemptable", 3, "00:30:00"),
        ({"runtime": 90, "tasks": 40}, "prod", 10, "01:30:00"),
        ({"runtime": 30, "gpu": 9}, "preemptable", 3, "00:30:00"),
        ({"runtime": 2}, "debug", 1, "00:05:00"),
        ({"runtime": 30, "nodes": 4, "pbs_queue": "debug-scaling"}, "debug-scaling", 4, "00:30:00"),
    ],
)
def test_qsub_arguments(tmp_path, pbs_env, resources, queue, nodes, walltime):
    done = submit(tmp_path, pbs_env, resources)
    assert done.returncode == 0, done.stderr
    assert JOBID.match(done.stdout.strip()), done.stdout
    (job,) = submitted(pbs_env)
    options = qsub_options(job["_argv"])
    assert options["-A"] == ["LatticeQCD_aesp"]
    assert options["-q"] == [queue]
    assert sorted(options["-l"]) == sorted(
        [
            f"select={nodes}:system=polaris",
            "place=scatter",
            f"walltime={walltime}",
            "filesystems=home:eagle",
        ]
    )
    assert options["-r"] == ["y"]
    assert options["-N"] == ["smk-hmc-tiny-1.0"]
    assert Path(options["-o"][0]).parent == tmp_path / "logs" / "pbs"


def test_queue_and_account_from_environment(tmp_path, pbs_env):
    pbs_env |= {"DLHMC_PBS_QUEUE": "capacity", "DLHMC_PBS_ACCOUNT": "other_project"}
    assert submit(tmp_path, pbs_env, {"runtime": 600}).returncode == 0
    options = qsub_options(submitted(pbs_env)[0]["_argv"])
    assert options["-q"] == ["capacity"]
    assert options["-A"] == ["other_project"]


def test_account_from_resource(tmp_path, pbs_env):
    del pbs_env["DLHMC_PBS_ACCOUNT"]
    assert submit(tmp_path, pbs_env, {"runtime": 30, "pbs_account": "from_profile"}).returncode == 0
    assert qsub_options(submitted(pbs_env)[0]["_argv"])["-A"] == ["from_profile"]


def test_missing_account_is_a_clear_error(tmp_path, pbs_env):
    del pbs_env["DLHMC_PBS_ACCOUNT"]
    done = submit(tmp_path, pbs_env, {"runtime": 30})
    assert done.returncode != 0
    assert done.stdout == ""
    assert "DLHMC_PBS_ACCOUNT" in done.stderr and "pbs_account" in done.stderr
    assert submitted(pbs_env) == []


def test_batch_script_sets_up_polaris_environment(tmp_path, pbs_env):
    """PBS starts the job in $HOME with a fresh environment: the script must change directory,
    load ALCF's conda module and the virtualenv before Snakemake's own job script runs."""
    body = 'echo "pwd=$(pwd) dlhmc=$(command -v dlhmc) nodes=$(wc -l < $PBS_NODEFILE)"'
    done = submit(tmp_path, pbs_env, {"runtime": 10, "tasks": 8}, body=body)
    assert done.returncode == 0, done.stderr
    script = (tmp_path / "snakejob.hmc.1.sh.pbs").read_text()
    setup = ["module use /soft/modulefiles", "module load conda", "conda activate"]
    positions = [script.index(line) for line in setup]
    assert positions == sorted(positions)
    assert f"venv={sys.prefix}" in script
    assert script.rstrip().endswith(body)
    log = Path(qsub_options(submitted(pbs_env)[0]["_argv"])["-o"][0])
    deadline = time.time() + 20
    while status(done.stdout.strip(), pbs_env) == "running\n" and time.time() < deadline:
        time.sleep(0.2)
    assert log.read_text().split() == [f"pwd={tmp_path}", f"dlhmc={BIN / 'dlhmc'}", "nodes=2"]


def qstat_document(job_state: str, exit_status) -> dict:
    """`qstat -x -f -F json ID` for one job, as PBS Pro 2022 on Polaris prints it."""
    job = {
        "Job_Name": "smk-train-tiny-4x4-1.0",
        "Job_Owner": "user@polaris-login-02.hsn.cm.polaris.alcf.anl.gov",
        "job_state": job_state,
        "queue": "preemptable",
        "server": "polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov",
        "Account_Name": "LatticeQCD_aesp",
        "Resource_List": {
            "filesystems": "home:eagle",
            "ncpus": 64,
            "ngpus": 4,
            "nodect": 1,
            "place": "scatter",
            "select": "1:system=polaris",
            "walltime": "04:00:00",
        },
        "Rerunable": "True",
        "substate": {"Q": 10, "H": 20, "R": 42, "E": 51, "F": 92, "X": 93}[job_state],
    }
    if exit_status is not None:
        job["Exit_status"] = exit_status
    return {
        "timestamp": 1795441228,
        "pbs_version": "2022.1.1.20220926110806",
        "pbs_server": "polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov",
        "Jobs": {"4242.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov": job},
    }


def canned_qstat(tmp_path, env, stdout: str, stderr: str = "", code: int = 0) -> dict:
    """A `qstat` on PATH that prints the given answer and exits with the given code."""
    bindir = tmp_path / "canned"
    bindir.mkdir(exist_ok=True)
    (bindir / "out").write_text(stdout)
    (bindir / "err").write_text(stderr)
    qstat = bindir / "qstat"
    qstat.write_text(f'#!/bin/sh\ncat "{bindir}/out"; cat "{bindir}/err" >&2; exit {code}\n')
    qstat.chmod(0o755)
    return env | {"PATH": f"{bindir}{os.pathsep}{env['PATH']}"}


@pytest.mark.parametrize(
    ("job_state", "exit_status", "expected"),
    [
        ("Q", None, "running"),
        ("H", None, "running"),
        ("R", None, "running"),
        ("E", 0, "running"),
        ("F", 0, "success"),
        ("F", "0", "success"),
        ("X", 0, "success"),
        ("F", 1, "failed"),
        ("F", 271, "failed"),  # killed by SIGTERM (qdel; walltime on older PBS)
        ("F", -29, "failed"),  # JOB_EXEC_KILL_WALLTIME
        ("F", None, "failed"),  # deleted before it ran
    ],
)
def test_status_of_canned_qstat(tmp_path, pbs_env, job_state, exit_status, expected):
    answer = json.dumps(qstat_document(job_state, exit_status), indent=4)
    env = canned_qstat(tmp_path, pbs_env, answer)
    assert status("4242.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov", env) == f"{expected}\n"


def test_status_of_unknown_job_is_failed(tmp_path, pbs_env):
    header = '{"timestamp":1795441228,"pbs_version":"2022.1.1","pbs_server":"polaris-pbs-01"}'
    err = "qstat: Unknown Job Id 4242.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov\n"
    env = canned_qstat(tmp_path, pbs_env, header, err, 153)
    assert status("4242.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov", env) == "failed\n"


def test_status_survives_unreachable_server(tmp_path, pbs_env):
    """A PBS server blip must not fail the workflow: retried, then `running` (ask again)."""
    err = "Connection refused\nqstat: cannot connect to server polaris-pbs-01 (errno=15010)\n"
    env = canned_qstat(tmp_path, pbs_env, "", err, 255)
    assert status("4242.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov", env) == "running\n"


def wait_finished(jobid, env, timeout=30) -> str:
    deadline = time.time() + timeout
    while (answer := status(jobid, env)) == "running\n" and time.time() < deadline:
        time.sleep(0.2)
    return answer


def test_walltime_kill_is_failed(tmp_path, pbs_env):
    """Through the stand-in server: a job over its walltime is killed with Exit_status -29."""
    pbs_env["FAKEPBS_TIME_SCALE"] = "300"  # the 5 minute minimum walltime passes in 1 s
    done = submit(tmp_path, pbs_env, {"runtime": 5}, body="sleep 60")
    jobid = done.stdout.strip()
    assert wait_finished(jobid, pbs_env) == "failed\n"
    (job,) = submitted(pbs_env)
    assert job["job_state"] == "F" and job["Exit_status"] == -29


def test_finished_job_is_success_and_failing_job_failed(tmp_path, pbs_env):
    ok = submit(tmp_path, pbs_env, {"runtime": 10}, body="exit 0").stdout.strip()
    bad = submit(tmp_path, pbs_env, {"runtime": 10}, body="exit 3").stdout.strip()
    assert wait_finished(ok, pbs_env) == "success\n"
    assert wait_finished(bad, pbs_env) == "failed\n"


TWO_STEP_WORKFLOW = """
rule all:
    input:
        "b.txt",


rule a:
    output:
        "a.txt",
    resources:
        runtime=10,
    shell:
        "echo $PBS_JOBID > {output}"


rule b:
    input:
        "a.txt",
    output:
        "b.txt",
    shell:
        "cat {input} > {output}; echo $PBS_QUEUE >> {output}"
"""

SLOW_WORKFLOW = """
rule slow:
    output:
        "never.txt",
    shell:
        "sleep 300; touch {output}"
"""


def profile_run(workdir: Path, env, *args: str, snakefile: Path | None = None, **kwargs):
    """`snakemake --profile <repo>/polaris` with quick status polling for the test."""
    command = [str(BIN / "snakemake"), "--profile", str(REPO / "polaris")]
    if snakefile is not None:
        command += ["-s", str(snakefile)]
    command += ["--seconds-between-status-checks", "1", "--latency-wait", "10", *args]
    return subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_workflow_runs_through_pbs(tmp_path, pbs_env):
    (tmp_path / "Snakefile").write_text(TWO_STEP_WORKFLOW)
    proc = profile_run(tmp_path, pbs_env)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    jobs = submitted(pbs_env)
    assert [job["Job_Name"] for job in jobs] == ["smk-a", "smk-b"]
    assert all(job["Exit_status"] == 0 and job["queue"] == "debug" for job in jobs)
    first_id, queue = (tmp_path / "b.txt").read_text().split()
    assert JOBID.match(first_id) and queue == "debug"


def test_killed_job_fails_the_workflow_promptly(tmp_path, pbs_env):
    """Every attempt (1 + the profile's retries) is deleted while running: Snakemake must
    notice each one through the status script and stop with an error, not wait forever."""
    (tmp_path / "Snakefile").write_text(SLOW_WORKFLOW)
    start = time.time()
    proc = profile_run(tmp_path, pbs_env)
    deleted = []
    while proc.poll() is None and time.time() - start < 120:
        for job in submitted(pbs_env):
            if job["job_state"] == "R" and job["seq"] not in deleted:
                subprocess.run(["qdel", job["seq"]], env=pbs_env, check=True)
                deleted.append(job["seq"])
        time.sleep(0.3)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode != 0, out
    assert len(deleted) == 3, out  # the first attempt and the profile's two retries
    assert time.time() - start < 90, out
    assert all(job["Exit_status"] == 271 for job in submitted(pbs_env))


def test_tiny_workflow_through_pbs(tmp_path, pbs_env):
    """Every rule of the real workflow as a PBS job: train, infer, hmc, analyze, report (the tiny
    experiment at one beta: each rule once)."""
    config = one_beta_config()
    cfg = write_config(tmp_path / "one_beta.yaml", config)
    proc = profile_run(tmp_path, pbs_env, "--configfile", str(cfg), snakefile=REPO / "Snakefile")
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    missing = [p for p in expected_targets("tiny", config) if not (tmp_path / p).exists()]
    assert missing == [], out
    jobs = submitted(pbs_env)
    assert all(job["Exit_status"] == 0 for job in jobs)
    names = sorted(job["Job_Name"].split("-")[1] for job in jobs)
    assert names == ["analyze", "hmc", "infer", "report", "train"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name if c else "config.yaml")
def test_dry_run_from_repository_root(config):
    """`snakemake --profile polaris` as the README says: found from the repository root."""
    args = ["--configfile", str(config)] if config else []
    done = subprocess.run(
        [str(BIN / "snakemake"), "--profile", "polaris", "-n", "--nolock", "--forceall", *args],
        cwd=REPO,
        env=dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Using profiles polaris and workflow specific profile profiles/default" in done.stderr
    log = done.stdout + done.stderr
    assert "mpi=mpiexec --ppn 4 --depth 16 --cpu-bind depth" in log
