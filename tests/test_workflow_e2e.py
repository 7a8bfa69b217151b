"""The tiny experiment end to end through Snakemake, then what a config change schedules.

One run of tests/data/tiny_config.yaml (U(1) 4x4, two betas, a few training steps, a two-point HMC
grid) is shared by the module: it must produce every target; a second run must have nothing to do;
adding a beta, a volume, the beta transfer or a variant must schedule only the new jobs and the
experiment's analyze and report (the last two are added together to one copy of the run, and run).
How long the run takes is measured by benchmarks/pipeline_tiny.py, not asserted here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch
from workflow_helpers import (
    BIN,
    SNAKEFILE,
    TINY_CONFIG,
    expected_targets,
    planned_jobs,
    snakemake,
    tiny_config,
    workflow_env,
    write_config,
)

from dlhmc.io import read_chains

# A hang guard for the subprocess, not a performance assertion.
E2E_TIMEOUT_SECONDS = 900


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_run")
    result = snakemake(
        "--cores", "2", "--configfile", str(TINY_CONFIG), cwd=workdir, timeout=E2E_TIMEOUT_SECONDS
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


def test_every_target_is_written(finished_run):
    workdir = finished_run
    missing = [f for f in expected_targets("tiny", tiny_config()) if not (workdir / f).is_file()]
    assert not missing
    assert not list(workdir.glob("results/**/train_work")), "work dirs are removed on success"
    assert not list(workdir.glob("results/**/*.tmp-*")), "no temporary files left behind"
    logs = {p.relative_to(workdir).as_posix() for p in workdir.glob("logs/**/*.log")}
    assert "logs/tiny/4x4/beta2.0/train.log" in logs
    assert "logs/tiny/report.log" in logs
    assert len(logs) == 2 + 2 + 4 + 2  # train, infer, hmc per beta and grid point, analyze, report


def test_ladder_warm_starts_from_previous_beta(finished_run):
    workdir = finished_run
    second = torch.load(workdir / "results/tiny/4x4/beta2.0/model/checkpoint.pt", weights_only=True)
    assert (
        Path(second["config"]["init"]).resolve()
        == (workdir / "results/tiny/4x4/beta1.0/model").resolve()
    )
    assert second["config"]["beta"] == 2.0
    metrics = pd.read_csv(workdir / "results/tiny/4x4/beta2.0/model/metrics.csv")
    steps = tiny_config()["experiments"]["tiny"]["train"]["steps"]
    assert list(metrics["step"]) == list(range(1, steps + 1))


def test_table_covers_every_chain_file(finished_run):
    workdir = finished_run
    table = pd.read_csv(workdir / "results/tiny/tauint.csv")
    charge = table[table["observable"] == "charge"]
    assert set(charge["sampler"]) == {"hmc", "l2hmc"}
    assert len(charge) == 2 * (1 + 2)  # two betas x (trained sampler + two HMC points)
    assert set(table["experiment"]) == {"tiny"}


def test_second_run_has_nothing_to_do(finished_run):
    workdir = finished_run
    result = snakemake("-n", "--configfile", str(TINY_CONFIG), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def test_adding_a_beta_schedules_only_the_new_jobs(finished_run):
    workdir = finished_run
    config = tiny_config()
    config["experiments"]["tiny"]["betas"].append(3.0)
    cfg = write_config(workdir / "more_betas.yaml", config)
    result = snakemake("-n", "--configfile", str(cfg), cwd=workdir)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert Counter(rule for rule, _ in jobs) == {
        "train": 1, "infer": 1, "hmc": 2, "analyze": 1, "report": 1, "all": 1
    }  # fmt: skip
    for rule, wildcards in jobs:
        if rule in ("train", "infer", "hmc"):
            assert wildcards["beta"] == "3.0"
    assert (
        "--init results/tiny/4x4/beta2.0/model"
        in snakemake("-n", "-p", "--configfile", str(cfg), cwd=workdir).stdout
    )


def test_adding_a_volume_schedules_only_its_ladder(finished_run):
    workdir = finished_run
    config = tiny_config()
    config["experiments"]["tiny"]["lattices"].append([6, 6])
    cfg = write_config(workdir / "more_volumes.yaml", config)
    result = snakemake("-n", "--configfile", str(cfg), cwd=workdir)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert Counter(rule for rule, _ in jobs) == {
        "train": 2, "infer": 2, "hmc": 4, "analyze": 1, "report": 1, "all": 1
    }  # fmt: skip
    for rule, wildcards in jobs:
        if rule in ("train", "infer", "hmc"):
            assert wildcards["lattice"] == "6x6"


@pytest.fixture(scope="module")
def extended_run(finished_run, tmp_path_factory):
    """A copy of the finished run with beta_transfer and a variant added to the experiment: the
    plan must hold exactly the new jobs (the transfer model and its two chain files, the variant's
    ladder and its chain files) and the experiment's analyze and report; then it is run once, for
    the two tests below. Returns the copy and its config file."""
    workdir = tmp_path_factory.mktemp("extended") / "run"
    shutil.copytree(finished_run, workdir, symlinks=True)
    config = tiny_config()
    config["experiments"]["tiny"]["beta_transfer"] = 0.5
    config["experiments"]["tiny"]["variants"] = {"wind": {"winding": 1}}
    cfg = write_config(workdir / "extended.yaml", config)
    result = snakemake("-n", "--configfile", str(cfg), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert Counter(rule for rule, _ in planned_jobs(result.stdout)) == {
        "transfer_train": 1, "transfer_infer": 2, "train_variant": 2, "infer_variant": 2,
        "analyze": 1, "report": 1, "all": 1,
    }  # fmt: skip
    result = snakemake("--cores", "2", "--configfile", str(cfg), cwd=workdir, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    again = snakemake("-n", "--configfile", str(cfg), cwd=workdir)
    assert "Nothing to be done" in again.stdout + again.stderr
    return workdir, config


def test_adding_beta_transfer_runs_only_the_transfer_jobs(extended_run):
    """beta_transfer added to the finished experiment (in a copy of it) trains and samples only
    the transfer models; their chain files get their roles and stay out of the comparison."""
    workdir, config = extended_run
    base = workdir / "results/tiny/4x4/beta2.0"
    model = torch.load(base / "transfer/model/checkpoint.pt", weights_only=True)
    steps = round(0.5 * config["experiments"]["tiny"]["train"]["steps"])
    assert model["step"] == steps and model["config"]["beta"] == 2.0
    below = (workdir / "results/tiny/4x4/beta1.0/model").resolve()
    assert Path(model["config"]["init"]).resolve() == below
    assert not (base / "transfer/train_work").exists()
    for kind, train_beta in (("none", 1.0), ("retrained", 2.0)):
        attrs = read_chains(base / f"transfer/{kind}.nc").attrs
        assert attrs["beta"] == 2.0 and attrs["train_beta"] == train_beta, kind
    table = pd.read_csv(workdir / "results/tiny/tauint.csv")
    roles = dict(zip(table.file, table.role, strict=False))
    assert roles["results/tiny/4x4/beta2.0/transfer/none.nc"] == "transfer_none"
    assert roles["results/tiny/4x4/beta2.0/transfer/retrained.nc"] == "transfer_retrained"
    assert {r for f, r in roles.items() if "/transfer/" not in f} == {"main"}
    comparison = pd.read_csv(workdir / "results/tiny/report/comparison.csv")
    assert set(comparison.l2hmc_n_points) == {1}
    assert "<h2>Beta transfer" in (workdir / "results/tiny/report/report.html").read_text()


def test_adding_a_variant_runs_only_its_ladder(extended_run):
    """A variant added to the finished experiment (in a copy of it) trains and samples only its
    own ladder; its chains enter the four-way comparison next to the ladder's model."""
    workdir, _ = extended_run
    model = torch.load(
        workdir / "results/tiny/4x4/beta2.0/learned/wind/model/checkpoint.pt", weights_only=True
    )
    below = (workdir / "results/tiny/4x4/beta1.0/learned/wind/model").resolve()
    assert Path(model["config"]["init"]).resolve() == below
    assert model["config"]["winding"] == 1
    comparison = pd.read_csv(workdir / "results/tiny/report/comparison.csv")
    assert set(comparison.l2hmc_n_points) == {1} and set(comparison.l2hmc_w_n_points) == {1}


def test_snakemake_report_collects_the_outputs(finished_run):
    workdir = finished_run
    result = snakemake(
        "--configfile", str(TINY_CONFIG), "--report", "snakemake_report.html", cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    assert (workdir / "snakemake_report.html").stat().st_size > 0
    for name in ("fig1_cost_vs_beta.png", "fig5_training.png", "comparison.csv", "tauint.csv"):
        assert f"Adding {name}" in result.stdout + result.stderr


def _train_checkpoint_step(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["step"])


def test_killed_training_job_resumes(tmp_path):
    """Kill Snakemake and its training job after the first checkpoint: the work directory survives
    the incomplete-output cleanup and the rerun resumes from it. Steps: enough that the kill,
    0.2 s after the first checkpoint (step 5), lands well before the end, even on a loaded
    machine."""
    steps = 80
    config = tiny_config()
    config["experiments"]["tiny"]["betas"] = [1.0]
    config["experiments"]["tiny"]["train"].update(steps=steps, checkpoint_every=5)
    cfg = write_config(tmp_path / "long.yaml", config)
    target = "results/tiny/4x4/beta1.0/model/checkpoint.pt"
    work = tmp_path / "results/tiny/4x4/beta1.0/train_work"
    proc = subprocess.Popen(
        [str(BIN / "snakemake"), "-s", str(SNAKEFILE), target, "--cores", "1",
         "--configfile", str(cfg)],
        cwd=tmp_path, env=workflow_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (work / "checkpoint.pt").is_file():
            assert proc.poll() is None, "training finished or failed before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    step = _train_checkpoint_step(work / "checkpoint.pt")
    assert 0 < step < steps
    assert snakemake("--unlock", "--configfile", str(cfg), cwd=tmp_path).returncode == 0
    result = snakemake(target, "--cores", "1", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "logs/tiny/4x4/beta1.0/train.log").read_text()
    assert log.startswith("resuming the run in")
    assert _train_checkpoint_step(tmp_path / target) == steps
    metrics = pd.read_csv(tmp_path / "results/tiny/4x4/beta1.0/model/metrics.csv")
    assert list(metrics["step"]) == list(range(1, steps + 1))
    assert not work.exists()


def test_stale_work_dir_of_another_command_is_discarded(tmp_path):
    """A work directory left by a different command (e.g. other settings) is not resumed."""
    config = tiny_config()
    config["experiments"]["tiny"]["betas"] = [1.0]
    cfg = write_config(tmp_path / "one.yaml", config)
    work = tmp_path / "results/tiny/4x4/beta1.0/train_work"
    work.mkdir(parents=True)
    (work / "command").write_text("dlhmc train --steps 999")
    (work / "checkpoint.pt").write_bytes(b"not a checkpoint")
    target = "results/tiny/4x4/beta1.0/model/checkpoint.pt"
    result = snakemake(target, "--cores", "1", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "logs/tiny/4x4/beta1.0/train.log").read_text()
    assert log.startswith("discarding")
    steps = config["experiments"]["tiny"]["train"]["steps"]
    assert _train_checkpoint_step(tmp_path / target) == steps


@pytest.mark.skipif(not (BIN / "mpiexec").exists(), reason="no mpiexec next to python")
def test_training_on_two_ranks(tmp_path):
    """train.ranks = 2 launches `mpiexec -n 2 dlhmc train` and checkpoints a 2-rank run."""
    config = tiny_config()
    config["experiments"]["tiny"]["betas"] = [1.0]
    config["experiments"]["tiny"]["train"]["ranks"] = 2
    cfg = write_config(tmp_path / "two_ranks.yaml", config)
    target = "results/tiny/4x4/beta1.0/model/checkpoint.pt"
    result = snakemake(target, "--cores", "2", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mpiexec -n 2 dlhmc train" in result.stdout + result.stderr
    assert torch.load(tmp_path / target, weights_only=True)["world_size"] == 2
