#!/usr/bin/env python3
"""Submit one Snakemake job to PBS Pro on ALCF Polaris (the cluster-generic submit command).

Snakemake runs `pbs-submit.py JOBSCRIPT` and reads the PBS job id from the first line we print.
The job's rule, wildcards and resources are taken from the `# properties = {...}` line Snakemake
writes into every job script, not from `{resources.x}` placeholders in the submit command: a
placeholder naming a resource some rule lacks aborts the submission, and a bare script path lets
Snakemake resolve the script inside the profile directory from any working directory.

Resources read (all optional):
  runtime      minutes -> `-l walltime` (raised to Polaris' 5 minute minimum)
  tasks        MPI ranks; one A100 per rank, 4 per node
  gpu          GPUs the job needs (4 per node)
  nodes        nodes at least; the job gets max(nodes, ceil(tasks/4), ceil(gpu/4))
  pbs_queue    queue override (also DLHMC_PBS_QUEUE); otherwise chosen from nodes and walltime
  pbs_account  project for `-A` (also DLHMC_PBS_ACCOUNT); required
Environment on the compute node: ALCF's conda module (`module load conda; conda activate`), then
the virtualenv DLHMC_VENV, or the one active when Snakemake was started (VIRTUAL_ENV).
"""

import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

GPUS_PER_NODE = 4
MIN_WALLTIME_MINUTES = 5
FILESYSTEMS = "home:eagle"


class SubmitError(Exception):
    """A problem the user must fix before anything can be submitted."""


def job_properties(jobscript):
    """The JSON properties Snakemake embeds in its job script."""
    for line in Path(jobscript).read_text().splitlines():
        if line.startswith("# properties = "):
            return json.loads(line.removeprefix("# properties = "))
    raise SubmitError(f"{jobscript}: no '# properties = ' line (not a Snakemake job script?)")


def node_count(resources):
    """Whole nodes: PBS on Polaris allocates nodes, each with 4 A100s, one per MPI rank."""
    nodes = int(resources.get("nodes", 1))
    by_tasks = math.ceil(int(resources.get("tasks", 1)) / GPUS_PER_NODE)
    by_gpus = math.ceil(int(resources.get("gpu", 0)) / GPUS_PER_NODE)
    return max(nodes, by_tasks, by_gpus, 1)


def walltime_minutes(resources):
    return max(int(resources.get("runtime", 60)), MIN_WALLTIME_MINUTES)


def walltime(minutes):
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def choose_queue(nodes, minutes):
    """debug takes 1-2 nodes for up to 1 h; prod (a routing queue) starts at 10 nodes; below that
    preemptable runs up to 72 h and may kill the job, which is why jobs are rerunnable (`-r y`)
    and training resumes from its checkpoint."""
    if nodes >= 10:
        return "prod"
    if nodes <= 2 and minutes <= 60:
        return "debug"
    return "preemptable"


def account(resources):
    value = resources.get("pbs_account") or os.environ.get("DLHMC_PBS_ACCOUNT")
    if not value:
        raise SubmitError(
            "no PBS project for -A: export DLHMC_PBS_ACCOUNT=<project> or add "
            "pbs_account: \"'<project>'\" to default-resources (docs/profiles.md)"
        )
    return str(value)


def job_name(props):
    """`smk-<rule>-<wildcards>`: starts with a letter, no characters PBS rejects."""
    parts = [props.get("rule") or props.get("groupid") or "job"]
    parts += [str(v) for v in (props.get("wildcards") or {}).values()]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "-".join(["smk", *parts]))[:200]


def qsub_args(props, workdir):
    """The qsub command line (without the script) for one job."""
    resources = props.get("resources", {})
    nodes = node_count(resources)
    minutes = walltime_minutes(resources)
    queue = (
        resources.get("pbs_queue")
        or os.environ.get("DLHMC_PBS_QUEUE")
        or choose_queue(nodes, minutes)
    )
    name = job_name(props)
    log = workdir / "logs" / "pbs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return [
        "qsub",
        "-A", account(resources),
        "-q", str(queue),
        "-l", f"select={nodes}:system=polaris",
        "-l", "place=scatter",
        "-l", f"walltime={walltime(minutes)}",
        "-l", f"filesystems={FILESYSTEMS}",
        "-r", "y",
        "-N", name,
        "-j", "oe",
        "-o", str(log),
    ]  # fmt: skip


def batch_script(jobscript, workdir):
    """PBS starts jobs in $HOME with a login shell and no inherited environment: change to the
    workflow directory, load ALCF's PyTorch (conda module) and the project's virtualenv, then run
    Snakemake's job script. MPI ranks bind their GPU from PMI_LOCAL_RANK (dlhmc.distributed)."""
    venv = os.environ.get("DLHMC_VENV") or os.environ.get("VIRTUAL_ENV", "")
    body = Path(jobscript).read_text().split("\n", 1)[1]
    return f"""#!/bin/bash -l
cd {shlex.quote(str(workdir))} || exit 1
if [ -d /soft/modulefiles ]; then
    module use /soft/modulefiles
    module load conda
    conda activate
fi
venv={shlex.quote(venv)}
if [ -n "$venv" ]; then
    source "$venv/bin/activate"
fi
{body}"""


def main(argv):
    if len(argv) != 2:
        print("usage: pbs-submit.py JOBSCRIPT", file=sys.stderr)
        return 2
    jobscript = argv[1]
    workdir = Path.cwd()
    try:
        args = qsub_args(job_properties(jobscript), workdir)
    except SubmitError as err:
        print(f"pbs-submit.py: {err}", file=sys.stderr)
        return 1
    script = Path(f"{jobscript}.pbs")
    script.write_text(batch_script(jobscript, workdir))
    done = subprocess.run([*args, str(script)], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"pbs-submit.py: {' '.join(args)} failed: {done.stderr.strip()}", file=sys.stderr)
        return done.returncode
    print(done.stdout.strip().splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
