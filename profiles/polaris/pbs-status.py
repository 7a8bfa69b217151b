#!/usr/bin/env python3
"""Tell Snakemake (cluster-generic status command) whether a PBS Pro job is running, succeeded or
failed: prints exactly one of `running`, `success`, `failed`.

Without this, Snakemake waits for a marker file the job writes when its command ends, and a job
that PBS kills (walltime, preemption, qdel, node failure) never writes one: Snakemake would wait
forever. `qstat -x -f -F json ID` also reports finished jobs (job history):
  job_state F (or X, a finished array subjob): Exit_status 0 -> success; anything else -> failed
    (a job's own exit code 1-255; 256+N for a job killed by signal N, e.g. 271 = SIGTERM from
    qdel or from older PBS on walltime; negative JOB_EXEC_* codes, e.g. -29 walltime exceeded);
    no Exit_status at all (deleted before it ran) -> failed
  any other state (Q queued, H held, W waiting, T transit, M moved, R running, E exiting,
    S/U suspended, B array begun) -> running; a preempted rerunnable job goes back to Q.
An id PBS does not know (`Unknown Job Id`) is failed: with job history a finished job stays
visible, so an unknown job can never finish. Other qstat failures (server briefly unreachable)
are retried, and answered `running` if they persist, so that Snakemake asks again next round
instead of abandoning the whole workflow over a blip of the PBS server.
"""

import json
import subprocess
import sys
import time

FINISHED_STATES = ("F", "X")
ATTEMPTS = 3
RETRY_SECONDS = 2


def status_of(job):
    """running/success/failed for one job's qstat record."""
    if job.get("job_state") not in FINISHED_STATES:
        return "running"
    return "success" if str(job.get("Exit_status")) == "0" else "failed"


def find_job(report, jobid):
    """The record of jobid; qstat keys jobs by the full id (`123.polaris-pbs-01...`)."""
    jobs = report.get("Jobs", {})
    if jobid in jobs:
        return jobs[jobid]
    seq = jobid.split(".", 1)[0]
    return next((job for key, job in jobs.items() if key.split(".", 1)[0] == seq), None)


def query(jobid):
    """(status, diagnostic) from one qstat call; status None means try again."""
    done = subprocess.run(
        ["qstat", "-x", "-f", "-F", "json", jobid], capture_output=True, text=True
    )
    if "Unknown Job Id" in done.stderr:
        return "failed", done.stderr.strip()
    if done.returncode != 0:
        return None, f"qstat exit {done.returncode}: {done.stderr.strip()}"
    try:
        job = find_job(json.loads(done.stdout), jobid)
    except json.JSONDecodeError as err:
        return None, f"unreadable qstat output ({err})"
    if job is None:
        return "failed", f"job {jobid} not in qstat output"
    return status_of(job), ""


def main(argv):
    if len(argv) != 2:
        print("usage: pbs-status.py JOBID", file=sys.stderr)
        return 2
    jobid = argv[1]
    for attempt in range(ATTEMPTS):
        status, why = query(jobid)
        if status is not None:
            break
        if attempt + 1 < ATTEMPTS:
            time.sleep(RETRY_SECONDS)
    else:
        status = "running"
    if why:
        print(f"pbs-status.py: {jobid}: {why} -> {status}", file=sys.stderr)
    print(status)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
