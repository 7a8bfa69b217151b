"""End to end (slow, ~1.5 min on 2 cores): the tiny experiment with bridges and trex runs every
rule for real (the ensembles, a bridge, its derivatives, PT and T-REX), the report has its
bridges section, and a second run has nothing to do."""

from __future__ import annotations

import pandas as pd
import pytest
from workflow_helpers import snakemake, tiny_config, write_config

pytestmark = pytest.mark.slow

BRIDGES = {"steps": 4, "flow_layers": 2, "hidden": [4], "batch": 8, "save_every": 4,
           "checkpoint_every": 2}  # fmt: skip
TREX = {"nlf": 2, "eps": 0.25, "chains": 4, "trajectories": 24, "therm": 4}


def test_bridges_and_trex_end_to_end(tmp_path):
    config = tiny_config()
    config["experiments"]["tiny"] |= {"bridges": BRIDGES, "trex": TREX}
    cfg = write_config(tmp_path / "bridges.yaml", config)
    result = snakemake("--configfile", str(cfg), "--cores", "2", cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    base = tmp_path / "results" / "tiny"
    for kind in ("pt", "trex"):
        assert {p.name for p in (base / "4x4" / kind).iterdir()} >= {
            "beta1.0.nc", "beta2.0.nc", "swaps.csv"
        }
    assert (base / "4x4" / "beta2.0" / "bridge" / "model" / "checkpoint.pt").is_file()
    report = base / "report"
    derivatives = pd.read_csv(report / "derivatives.csv")
    assert set(derivatives.estimator) == {"independent", "reweight", "flow"}
    assert set(derivatives.observable) == {"plaq", "q2"}
    swaps = pd.read_csv(report / "swaps.csv")
    assert len(swaps) == 1 and swaps.pt_acceptance.notna().all()
    assert swaps.trex_acceptance.notna().all()
    exchange = pd.read_csv(report / "exchange.csv")
    assert list(exchange.kind) == ["hmc", "pt", "trex"]
    table = pd.read_csv(base / "tauint.csv")
    assert {"pt", "trex"} <= set(table.category)
    assert (report / "fig6_derivatives.png").is_file()
    again = snakemake("-n", "--configfile", str(cfg), cwd=tmp_path)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout, again.stdout
