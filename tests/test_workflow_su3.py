"""The tiny SU(3) experiment end to end: train -> infer -> hmc -> analyze -> report.

SU(3) goes through the same rules as U(1); what differs is what the group has: no winding HMC, a
charge measured after Wilson flow, the strong-coupling series as the exact plaquette at small
beta. One run of tests/data/tiny_su3_config.yaml (2^4) at its first beta, 0.5 (every rule once; the
ladder's warm start is the same rule as U(1)'s, run end to end in test_workflow_e2e.py), checks that
every target is written and that the report's exactness table holds the strong-coupling comparison.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import REPO, expected_targets, snakemake, write_config

from dlhmc.analysis.checks import plaquette_checks

SU3_CONFIG = REPO / "tests" / "data" / "tiny_su3_config.yaml"


def su3_config() -> dict:
    config = yaml.safe_load(SU3_CONFIG.read_text())
    config["experiments"]["tiny_su3"]["betas"] = [0.5]
    return config


@pytest.fixture(scope="module")
def su3_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_su3")
    cfg = write_config(workdir / "su3.yaml", su3_config())
    result = snakemake("--cores", "2", "--configfile", str(cfg), cwd=workdir, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


def test_every_su3_target_is_written(su3_run):
    config = su3_config()
    missing = [f for f in expected_targets("tiny_su3", config) if not (su3_run / f).is_file()]
    assert not missing


def test_su3_table_has_both_integrators_and_the_learned_sampler(su3_run):
    table = pd.read_csv(su3_run / "results/tiny_su3/tauint.csv")
    plaq = table[table["observable"] == "plaq"]
    assert set(plaq["sampler"]) == {"hmc", "l2hmc"}
    assert set(plaq.loc[plaq["sampler"] == "hmc", "integrator"]) == {"leapfrog", "omelyan"}
    assert len(plaq) == 3  # L2HMC and two HMC points
    assert Path(su3_run, "results/tiny_su3/report/comparison.csv").is_file()


def test_su3_plaquettes_agree_with_the_strong_coupling_series(su3_run):
    """Every sampler's plaquette at beta 0.5 is checked against beta/18 + ...; with these short
    chains a pass means agreement within 4 standard errors."""
    checks = plaquette_checks(pd.read_csv(su3_run / "results/tiny_su3/tauint.csv"))
    assert len(checks) == 3
    assert set(checks["status"]) == {"pass"}, checks[["sampler", "beta", "pull", "status"]]
    html = Path(su3_run, "results/tiny_su3/report/report.html").read_text()
    assert "0 FAIL" in html
