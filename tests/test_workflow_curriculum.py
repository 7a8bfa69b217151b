"""The volume curriculum end to end: a local model trained on 4x4, fine-tuned on 6x6.

One real run of the tiny config checks what a dry run cannot: that the learned row of the
fine-tuned volume samples with the fine-tuned model, that the unchanged transferred model is its
transfer row, and that the training seconds of a fine-tuned row are every run of its --init chain
counted once (the fine-tuning on 6x6 at this beta and the betas below, and the 4x4 run at the
first beta it started from).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from workflow_helpers import planned_jobs, snakemake, tiny_config, write_config

pytestmark = pytest.mark.slow


def curriculum_config() -> dict:
    config = copy.deepcopy(tiny_config())
    exp = config["experiments"]["tiny"]
    exp["lattices"] = [[4, 4], [6, 6]]
    exp["train"].update(
        lattice=[4, 4], network="local", local_period=2, finetune_steps=3, finetune_lr=5.0e-4
    )
    return config


@pytest.fixture(scope="module")
def curriculum_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("curriculum_run")
    cfg = write_config(workdir / "c.yaml", curriculum_config())
    result = snakemake("--cores", "2", "--configfile", str(cfg), cwd=workdir, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


def own_seconds(results: Path, lattice: str, beta: str) -> float:
    state = torch.load(
        results / f"{lattice}/beta{beta}/model/checkpoint.pt", weights_only=True, map_location="cpu"
    )
    return float(state["timing"]["training_seconds"])


def chain_attrs(path: Path) -> dict:
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return dict(ds.attrs)


def test_the_fine_tuned_model_is_the_learned_row_and_its_seconds_add_up(curriculum_run):
    results = Path(curriculum_run, "results/tiny")
    learned = chain_attrs(results / "6x6/beta2.0/l2hmc.nc")
    assert list(np.atleast_1d(learned["train_lattice"])) == [6, 6]
    assert int(learned["training_steps"]) == 3
    assert "6x6/beta2.0/model" in str(learned["checkpoint"])
    chain = [("6x6", "2.0"), ("6x6", "1.0"), ("4x4", "1.0")]
    expected = sum(own_seconds(results, lattice, beta) for lattice, beta in chain)
    assert float(learned["training_seconds"]) == pytest.approx(expected, rel=1e-9)
    assert float(learned["training_seconds"]) > own_seconds(results, "6x6", "2.0") > 0

    transferred = chain_attrs(results / "6x6/beta2.0/transfer/volume.nc")
    assert list(np.atleast_1d(transferred["train_lattice"])) == [4, 4]
    assert list(np.atleast_1d(transferred["lattice"])) == [6, 6]
    small = own_seconds(results, "4x4", "1.0") + own_seconds(results, "4x4", "2.0")
    assert float(transferred["training_seconds"]) == pytest.approx(small, rel=1e-9)
    # The training volume keeps its own model, not fine-tuned and without a transfer row.
    assert not (results / "4x4/beta2.0/transfer").exists()


def test_the_report_shows_the_transfer_row_beside_the_fine_tuned_one(curriculum_run):
    results = Path(curriculum_run, "results/tiny")
    table = pd.read_csv(results / "tauint.csv")
    volume = table[table.role == "transfer_volume"]
    assert sorted(volume.file.unique()) == [
        f"results/tiny/6x6/beta{b}/transfer/volume.nc" for b in ("1.0", "2.0")
    ]
    learners = pd.read_csv(results / "report/learners.csv")
    at_6x6 = learners[(learners.lattice == "6x6") & (learners.beta == 2.0)]
    assert list(at_6x6.role) == ["main", "transfer_volume"]
    assert list(at_6x6.train_lattice) == ["6x6", "4x4"]
    assert "transfer, not fine-tuned" in (results / "report/report.html").read_text()


def test_a_finished_curriculum_has_nothing_to_do(curriculum_run):
    result = snakemake("-n", "--configfile", "c.yaml", cwd=curriculum_run)
    assert result.returncode == 0, result.stderr
    assert [rule for rule, _ in planned_jobs(result.stdout)] == []
