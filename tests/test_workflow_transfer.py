"""`train.lattice`: one local model trained on a small volume samples every volume of the config.

The jobs this plans are the point: a model per beta on the training volume only, and inference on
each sampled volume from that model (with `--lattice` where the volumes differ); adding a larger
volume to `lattices` then costs inference and HMC only. One real run (one beta, one HMC point:
the dry run above covers the ladder) checks what the chain files record about where their model
came from.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from workflow_helpers import (
    one_beta_config,
    planned_jobs,
    snakemake,
    tiny_config,
    write_config,
)


def transfer_config(lattices, base=tiny_config):
    config = copy.deepcopy(base())
    exp = config["experiments"]["tiny"]
    exp["lattices"] = lattices
    exp["train"].update(lattice=[4, 4], network="local", local_period=2)
    return config


def test_local_model_of_one_volume_is_planned_for_every_volume(tmp_path):
    cfg = write_config(tmp_path / "t.yaml", transfer_config([[4, 4], [8, 8], [6, 4]]))
    result = snakemake("-n", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert {w["lattice"] for rule, w in jobs if rule == "train"} == {"4x4"}
    assert sorted(w["lattice"] for rule, w in jobs if rule == "infer") == sorted(
        ["4x4", "8x8", "6x4"] * 2
    )
    assert "--checkpoint results/tiny/4x4/beta2.0/model --lattice 8 8" in result.stdout
    assert "--checkpoint results/tiny/4x4/beta2.0/model  --chains" in result.stdout


@pytest.fixture(scope="module")
def transfer_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("transfer_run")
    cfg = write_config(workdir / "t.yaml", transfer_config([[4, 4], [8, 8]], one_beta_config))
    result = snakemake("--cores", "2", "--configfile", str(cfg), cwd=workdir, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


def test_chains_of_every_volume_come_from_the_one_model(transfer_run):
    results = Path(transfer_run, "results/tiny")
    assert not (results / "8x8/beta1.0/model").exists()
    attrs = {}
    for lattice in ("4x4", "8x8"):
        with xr.open_dataset(results / f"{lattice}/beta1.0/l2hmc.nc", engine="h5netcdf") as ds:
            attrs[lattice] = dict(ds.attrs)
    assert list(attrs["8x8"]["lattice"]) == [8, 8]
    for a in attrs.values():
        assert a["network"] == "local" and list(np.atleast_1d(a["train_lattice"])) == [4, 4]
    assert attrs["4x4"]["n_params"] == attrs["8x8"]["n_params"]
    assert Path(results, "report/comparison.csv").is_file()


def test_adding_a_volume_runs_no_training(transfer_run):
    lattices = [[4, 4], [8, 8], [6, 4]]
    cfg = write_config(transfer_run / "t2.yaml", transfer_config(lattices, one_beta_config))
    result = snakemake("-n", "--configfile", str(cfg), cwd=transfer_run)
    assert result.returncode == 0, result.stderr
    jobs = [(rule, w) for rule, w in planned_jobs(result.stdout) if rule != "all"]
    assert sorted(rule for rule, _ in jobs) == ["analyze", "hmc", "infer", "report"]
    assert {w["lattice"] for rule, w in jobs if rule in ("infer", "hmc")} == {"6x4"}
