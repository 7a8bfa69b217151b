"""A stand-in PBS Pro server for tests: qsub, qstat and qdel on one machine, in PBS's formats.

`qsub` checks what ALCF Polaris checks (project, walltime, filesystems, queue limits), answers
`<seq>.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov` and runs the job script in the background: in
$HOME (so the script must change to its directory), PBS_* variables set, output in the `-o` file.
`qstat -x -f -F json ID` reports job_state Q, R, E, F and Exit_status as PBS Pro does: the
script's exit code, 256 + N for a job killed by signal N (qdel sends SIGTERM: 271), -29
(JOB_EXEC_KILL_WALLTIME) for a job over its walltime; an unknown id gives
`qstat: Unknown Job Id ID` and exit 153.
`qdel ID` kills every process of a running job, as the MoM does.

State lives in $FAKEPBS_DIR (one JSON record per job). $FAKEPBS_TIME_SCALE > 1 makes walltime pass
faster (walltime seconds / scale), so walltime kills can be tested in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SERVER = "polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov"
PBS_VERSION = "2022.1.1.20220926110806"
JOB_EXEC_KILL_WALLTIME = -29
UNKNOWN_JOB_EXIT = 153  # PBSE_UNKJOBID 15001, as an exit code
FILESYSTEMS = {"home", "eagle"}
# queue: (min nodes, max nodes, max walltime hours), from ALCF's Polaris documentation.
QUEUES = {
    "debug": (1, 2, 1),
    "debug-scaling": (1, 10, 1),
    "preemptable": (1, 10, 72),
    "prod": (10, 496, 24),
    "capacity": (1, 4, 168),
}
MIN_WALLTIME_SECONDS = 300


def state_dir() -> Path:
    path = Path(os.environ["FAKEPBS_DIR"])
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked():
    with open(state_dir() / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def record_path(seq: str) -> Path:
    return state_dir() / "jobs" / f"{seq}.json"


def load(seq: str) -> dict | None:
    path = record_path(seq)
    return json.loads(path.read_text()) if path.exists() else None


def save(seq: str, job: dict) -> None:
    path = record_path(seq)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(job, indent=4))
    os.replace(tmp, path)


def update(seq: str, **fields) -> dict:
    with locked():
        job = load(seq)
        job.update(fields)
        save(seq, job)
        return job


def full_id(seq: str) -> str:
    return f"{seq}.{SERVER}"


def seconds(hms: str) -> int:
    h, m, s = (int(x) for x in hms.split(":"))
    return 3600 * h + 60 * m + s


def fail(command: str, message: str, code: int = 1) -> int:
    print(f"{command}: {message}", file=sys.stderr)
    return code


def qsub(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="qsub")
    parser.add_argument("-A", dest="account")
    parser.add_argument("-q", dest="queue", default="prod")
    parser.add_argument("-l", dest="resources", action="append", default=[])
    parser.add_argument("-N", dest="name")
    parser.add_argument("-o", dest="output")
    parser.add_argument("-j", dest="join")
    parser.add_argument("-r", dest="rerunable", choices=["y", "n"], default="y")
    parser.add_argument("script")
    args = parser.parse_args(argv)

    resources = dict(item.split("=", 1) for item in args.resources)
    if not args.account:
        return fail("qsub", "Account_Name is required to be set (-A <project>)")
    if "walltime" not in resources:
        return fail("qsub", "Resource walltime is required to be set")
    if not set(resources.get("filesystems", "").split(":")) <= FILESYSTEMS:
        return fail("qsub", f"filesystems must be a ':' list of {sorted(FILESYSTEMS)}")
    select = dict(
        part.split("=", 1) if "=" in part else ("nodes", part)
        for part in resources.get("select", "").split(":")
    )
    if not select.get("nodes", "").isdigit() or select.get("system") != "polaris":
        return fail("qsub", "expected -l select=N:system=polaris")
    nodes, walltime = int(select["nodes"]), seconds(resources["walltime"])
    if args.queue not in QUEUES:
        return fail("qsub", f"Unknown queue {args.queue}")
    lo, hi, hours = QUEUES[args.queue]
    if not lo <= nodes <= hi or not MIN_WALLTIME_SECONDS <= walltime <= 3600 * hours:
        return fail("qsub", f"Job violates queue and/or server resource limits ({args.queue})")

    with locked():
        counter = state_dir() / "seq"
        seq = str(int(counter.read_text()) + 1 if counter.exists() else 1000)
        counter.write_text(seq)
        host = socket.gethostname()
        script = state_dir() / "jobs" / f"{seq}.sh"
        script.write_text(Path(args.script).read_text())  # PBS keeps its own copy
        save(
            seq,
            {
                "Job_Name": args.name or Path(args.script).name,
                "Job_Owner": f"{os.environ.get('USER', 'root')}@{host}",
                "job_state": "Q",
                "queue": args.queue,
                "server": SERVER,
                "Account_Name": args.account,
                "ctime": time.ctime(),
                "Join_Path": args.join or "n",
                "Output_Path": f"{host}:{args.output or Path.cwd() / f'{args.name}.o{seq}'}",
                "Rerunable": "True" if args.rerunable == "y" else "False",
                "Resource_List": {
                    **resources,
                    "ncpus": 64 * nodes,
                    "ngpus": 4 * nodes,
                    "nodect": nodes,
                },
                "substate": 10,
                "Variable_List": {"PBS_O_WORKDIR": str(Path.cwd()), "PBS_O_HOST": host},
                "_argv": ["qsub", *argv],
                "_deleted": False,
            },
        )
    subprocess.Popen(
        [sys.executable, __file__, "run", seq],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(full_id(seq))
    return 0


def job_marker(seq: str) -> str:
    """Unique across state directories, unlike job ids (every stand-in server counts from 1000)."""
    return str(state_dir() / "jobs" / seq)


def kill_job_processes(seq: str, sig: int) -> None:
    """Every process started for the job inherits FAKEPBS_JOB (the MoM tracks them likewise)."""
    marker = f"FAKEPBS_JOB={job_marker(seq)}".encode() + b"\0"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker in (proc / "environ").read_bytes():
                os.kill(int(proc.name), sig)


def run(seq: str) -> None:
    """Queue briefly, run the script like a PBS MoM, record the exit status."""
    time.sleep(float(os.environ.get("FAKEPBS_QUEUE_SECONDS", "1")))
    job = load(seq)
    if job["_deleted"]:
        update(seq, job_state="F", substate=91)
        return
    nodes = int(job["Resource_List"]["nodect"])
    nodefile = state_dir() / "jobs" / f"{seq}.nodes"
    nodefile.write_text("localhost\n" * nodes)
    # Like PBS without `qsub -V`: a fresh environment; the job script sets up its own.
    env = {key: os.environ[key] for key in ("HOME", "USER", "LOGNAME", "LANG") if key in os.environ}
    env |= {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PBS_JOBID": full_id(seq),
        "FAKEPBS_JOB": job_marker(seq),
        "PBS_JOBNAME": job["Job_Name"],
        "PBS_QUEUE": job["queue"],
        "PBS_NODEFILE": str(nodefile),
        "PBS_O_WORKDIR": job["Variable_List"]["PBS_O_WORKDIR"],
    }
    output = Path(job["Output_Path"].split(":", 1)[1])
    limit = seconds(job["Resource_List"]["walltime"]) / float(
        os.environ.get("FAKEPBS_TIME_SCALE", "1")
    )
    with open(output, "w") as out:
        proc = subprocess.Popen(
            ["bash", str(state_dir() / "jobs" / f"{seq}.sh")],
            cwd=Path.home(),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        update(seq, job_state="R", substate=42, exec_host="localhost/0*64", stime=time.ctime())
        try:
            code = proc.wait(timeout=limit)
            exit_status = code if code >= 0 else 256 - code
        except subprocess.TimeoutExpired:
            kill_job_processes(seq, signal.SIGKILL)
            proc.wait()
            limit_s = seconds(job["Resource_List"]["walltime"])
            out.write(f"=>> PBS: job killed: walltime {limit_s + 1} exceeded limit {limit_s}\n")
            exit_status = JOB_EXEC_KILL_WALLTIME
    update(seq, job_state="E", substate=51, Exit_status=exit_status)
    kill_job_processes(seq, signal.SIGKILL)  # leftovers of the job die with it
    time.sleep(0.2)
    update(seq, job_state="F", substate=92, obittime=time.ctime())


def seq_of(jobid: str) -> str:
    return jobid.split(".", 1)[0]


def qstat(argv: list[str]) -> int:
    ids = [a for a in argv if not a.startswith("-") and a != "json"]
    flags = [a for a in argv if a.startswith("-") or a == "json"]
    if sorted(flags) != sorted(["-x", "-f", "-F", "json"]) or not ids:
        return fail("qstat", "this stand-in supports only `qstat -x -f -F json ID...`", 2)
    jobs, code = {}, 0
    for jobid in ids:
        job = load(seq_of(jobid))
        if job is None:
            print(f"qstat: Unknown Job Id {jobid}", file=sys.stderr)
            code = UNKNOWN_JOB_EXIT
            continue
        jobs[full_id(seq_of(jobid))] = {k: v for k, v in job.items() if not k.startswith("_")}
    report = {"timestamp": int(time.time()), "pbs_version": PBS_VERSION, "pbs_server": SERVER}
    if jobs:
        report["Jobs"] = jobs
    print(json.dumps(report, indent=4, separators=(",", ":")))  # PBS prints "key":value
    return code


def qdel(argv: list[str]) -> int:
    code = 0
    for jobid in argv:
        seq = seq_of(jobid)
        with locked():
            job = load(seq)
            if job is None:
                print(f"qdel: Unknown Job Id {jobid}", file=sys.stderr)
                code = UNKNOWN_JOB_EXIT
                continue
            if job["job_state"] == "F":
                print(f"qdel: Job has finished {jobid}", file=sys.stderr)
                code = 35
                continue
            job["_deleted"] = True
            save(seq, job)
        if job["job_state"] in ("R", "E"):
            kill_job_processes(seq, signal.SIGTERM)
    return code


if __name__ == "__main__" and sys.argv[1:2] == ["run"]:
    run(sys.argv[2])
