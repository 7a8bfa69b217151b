"""Running the Snakemake workflow from tests: the command, its environment, the planned jobs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TINY_CONFIG = REPO / "tests" / "data" / "tiny_config.yaml"
BIN = Path(sys.executable).parent
FIGURES = (
    "fig1_cost_vs_beta",
    "fig2_charge_history",
    "fig3_layer_diagnostics",
    "fig4_plaquette",
    "fig5_training",
    "fig6_derivatives",
)


def workflow_env() -> dict[str, str]:
    """This venv first on PATH (the rules call `dlhmc`), one thread per job."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    return env


def snakemake(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`snakemake -s <repo>/Snakefile ARGS` in ``cwd``; the default profile is found beside the
    Snakefile, so runs in a temporary directory behave as runs from the repository root."""
    return subprocess.run(
        [str(BIN / "snakemake"), "-s", str(SNAKEFILE), *args],
        cwd=cwd,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def tiny_config() -> dict:
    return yaml.safe_load(TINY_CONFIG.read_text())


def one_beta_config() -> dict:
    """The tiny experiment at its first beta with one HMC point: every rule (train, infer, hmc,
    analyze, report) runs once, four jobs deep. The cluster-profile tests run it: there each job
    is a batch job, and each level of the job graph costs the scheduler's polling."""
    config = tiny_config()
    exp = config["experiments"]["tiny"]
    exp["betas"] = exp["betas"][:1]
    exp["hmc"]["length"] = exp["hmc"]["length"][-1:]
    return config


def planned_jobs(dry_run_output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job listed by `snakemake -n` (without --quiet)."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_output):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if not head:
            continue
        found = re.search(r"^    wildcards: (.*)$", block, flags=re.MULTILINE)
        wildcards = dict(item.split("=", 1) for item in found.group(1).split(", ")) if found else {}
        jobs.append((head.group(1), wildcards))
    return jobs


def expected_targets(name: str, config: dict) -> list[str]:
    """Every file a finished run of experiment ``name`` must hold (paths of docs/pipeline.md)."""
    exp = config["experiments"][name]
    files = [f"results/{name}/tauint.csv"]
    out = f"results/{name}/report"
    files += [f"{out}/report.html", f"{out}/comparison.csv", f"{out}/learners.csv"]
    files += [f"{out}/{fig}.{ext}" for fig in FIGURES for ext in ("png", "pdf")]
    for shape in exp["lattices"]:
        lattice = "x".join(map(str, shape))
        for beta in exp["betas"]:
            base = f"results/{name}/{lattice}/beta{float(beta)!r}"
            files += [f"{base}/model/{f}" for f in ("checkpoint.pt", "metrics.csv", "config.yaml")]
            files.append(f"{base}/l2hmc.nc")
            hmc = exp["hmc"]
            points = [(n, f"{length / n:.6g}") for n in hmc.get("nlf", []) for length in
                      hmc.get("length", [])]  # fmt: skip
            points += [(p["nlf"], f"{p['eps']:.6g}") for p in hmc.get("points", [])]
            for integrator in hmc.get("integrator", ["leapfrog"]):
                suffix = "" if integrator == "leapfrog" else f"_{integrator}"
                files += [f"{base}/hmc/nlf{n}_eps{e}{suffix}.nc" for n, e in points]
    return files
