"""The learners table: every learned sampler's own row (network, parameters, training volume and
seconds, costs against the same-move baseline), from synthetic chain files through `dlhmc analyze`
and `dlhmc report`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from chain_helpers import ar1, sector_chains, write_chain_file

from dlhmc.analysis.learners import learners_table
from dlhmc.analysis.runs import learner_name
from dlhmc.cli import main
from dlhmc.lattice.u1_exact import exact_plaquette

LATTICE = (8, 8)
BETA = 3.0
N_CHAINS, N_TRAJ = 8, 1000
DENSE, LOCAL = 4096, 512
# (path, sampler, attrs, nlf, rho of the charges, training seconds); rho 1: a frozen charge.
FILES = (
    ("hmc/a.nc", "hmc", {}, 5, 0.97, None),
    ("hmc/b.nc", "hmc", {}, 10, 0.95, None),
    ("hmc/w.nc", "hmc", {"instanton_hits": 10, "hit_cost_lf": 0.25}, 10, 0.6, None),
    (
        "l2hmc.nc",
        "l2hmc",
        {"winding": 1, "network": "dense", "n_params": DENSE, "train_lattice": [8, 8]},
        8,
        0.3,
        200.0,
    ),
    (
        "learned/plain/l2hmc.nc",
        "l2hmc",
        {"network": "dense", "n_params": DENSE, "train_lattice": [8, 8]},
        8,
        0.8,
        210.0,
    ),
    (
        "learned/local/l2hmc.nc",
        "l2hmc",
        {"network": "local", "n_params": LOCAL, "train_lattice": [4, 4]},
        8,
        0.5,
        190.0,
    ),
    (
        "learned/stuck/l2hmc.nc",
        "l2hmc",
        {"network": "local", "n_params": LOCAL, "train_lattice": [4, 4]},
        8,
        1.0,
        190.0,
    ),
)


# Chain throughput (trajectories per second) where it differs from the helper's default: the
# local learner is slow, so it never pays off in seconds although it is cheaper in steps.
RATES = {"learned/local/l2hmc.nc": 2.0}
DEFAULT_RATE = 50.0


def _charges(rho, rng):
    if rho == 1.0:  # every chain stuck in the sector it started in
        return np.ones((N_CHAINS, N_TRAJ)), np.full((N_CHAINS, N_TRAJ), 0.98)
    charge_real = 0.25 * ar1(rho, N_CHAINS, N_TRAJ, rng)  # within V/(2 pi), as Q_R is
    return sector_chains(BETA, LATTICE, rho, N_CHAINS, N_TRAJ, rng), charge_real


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("learners")
    rng = np.random.default_rng(11)
    plaq_exact = exact_plaquette(BETA, LATTICE[0] * LATTICE[1])
    files = []
    for path, sampler, attrs, nlf, rho, seconds in FILES:
        target = tmp_path / "results" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        attrs = {k: np.asarray(v, dtype=np.int64) if isinstance(v, list) else v
                 for k, v in attrs.items()}  # fmt: skip
        charge, charge_real = _charges(rho, rng)
        files.append(
            write_chain_file(
                target,
                charge,
                plaq_exact + 0.002 * ar1(0.5, N_CHAINS, N_TRAJ, rng),
                sampler=sampler,
                lattice=LATTICE,
                beta=BETA,
                nlf=nlf,
                charge_real=charge_real,
                training_seconds=seconds,
                traj_per_second=RATES.get(path, DEFAULT_RATE),
                extra_attrs=attrs,
            )
        )
    table_path = tmp_path / "tauint.csv"
    assert main(["analyze", *map(str, files), "--out", str(table_path), "--experiment", "e"]) == 0
    out_dir = tmp_path / "report"
    argv = ["report", "--table", str(table_path), "--chains", *map(str, files)]
    assert main([*argv, "--experiment", "e", "--out-dir", str(out_dir)]) == 0
    return {
        "table": pd.read_csv(table_path),
        "learners": pd.read_csv(out_dir / "learners.csv"),
        "html": (out_dir / "report.html").read_text(encoding="utf-8"),
    }


def test_learner_names_come_from_the_workflow_paths():
    assert learner_name("results/x/8x8/beta3.0/learned/local/l2hmc.nc") == "local"
    assert learner_name("results/x/8x8/beta3.0/learned/plain/model") == "plain"
    assert learner_name("results/x/8x8/beta3.0/l2hmc.nc") == ""
    assert learner_name("results/x/8x8/beta3.0/model") == ""


def test_one_row_per_learned_file_with_its_model(report):
    learners = report["learners"].set_index("learner")
    assert sorted(learners.index) == ["local", "plain", "stuck", "train"]
    assert learners.loc["train", "network"] == "dense"
    assert learners.loc["train", "winding"] == 1
    assert learners.loc["local", "n_params"] == LOCAL
    assert learners.loc["plain", "n_params"] == DENSE
    assert learners.loc["local", "train_lattice"] == "4x4"
    assert learners.loc["plain", "train_lattice"] == "8x8"
    assert learners.loc["local", "training_seconds"] == pytest.approx(190.0)
    assert set(learners.charge_observable) == {"charge_real"}
    assert set(learners.plaq_observable) == {"plaq"}


@pytest.mark.parametrize("prefix,observable", [("charge", "charge_real"), ("plaq", "plaq")])
def test_ratio_is_the_same_move_baseline_over_the_learner(report, prefix, observable):
    table = report["table"]
    rows = table[table.observable == observable]
    best = {c: rows[rows.category == c].cost_lf.min() for c in ("hmc", "whmc")}
    learners = report["learners"].set_index("learner")
    for name, baseline in (("train", "whmc"), ("plain", "hmc"), ("local", "hmc")):
        mine = rows[rows.file.str.endswith("results/l2hmc.nc" if name == "train"
                                           else f"{name}/l2hmc.nc")]  # fmt: skip
        r = learners.loc[name]
        assert r[f"{prefix}_cost_lf"] == pytest.approx(mine.cost_lf.iloc[0])
        assert r[f"{prefix}_baseline_cost_lf"] == pytest.approx(best[baseline])
        assert r[f"{prefix}_ratio"] == pytest.approx(best[baseline] / mine.cost_lf.iloc[0])
        assert r[f"{prefix}_ratio_err"] > 0
        assert r[f"{prefix}_baseline_point"].startswith(
            "winding HMC" if baseline == "whmc" else "HMC"
        )


def test_seconds_and_break_even_against_the_fastest_same_move_point(report):
    """Seconds per independent Q_R = tau_int / (throughput x chains); break-even = training
    seconds / (fastest same-move baseline - learner), ``never`` where the learner is slower, a
    lower bound where the learner is frozen."""
    table = report["table"]
    rows = table[table.observable == "charge_real"]
    learners = report["learners"].set_index("learner")
    kinds = set()
    for name, path, baseline in (
        ("train", "l2hmc.nc", "whmc"),
        ("plain", "learned/plain/l2hmc.nc", "hmc"),
        ("local", "learned/local/l2hmc.nc", "hmc"),
        ("stuck", "learned/stuck/l2hmc.nc", "hmc"),
    ):
        mine = rows[rows.file.str.endswith(f"results/{path}")].iloc[0]
        rate = RATES.get(path, DEFAULT_RATE) * mine.n_chains
        training = next(t for p, *_, t in FILES if p == path)
        seconds = mine.tau_int / rate
        r = learners.loc[name]
        assert r.charge_seconds == pytest.approx(seconds)
        assert r.charge_seconds_err == pytest.approx(mine.tau_int_err / rate, nan_ok=True)
        base = rows[rows.category == baseline]
        per_sample = base.tau_int / (DEFAULT_RATE * base.n_chains)
        fastest = base.loc[per_sample.idxmin()]
        saving = per_sample[fastest.name] - seconds
        assert r.charge_break_even_baseline.startswith(
            f"{'winding HMC' if baseline == 'whmc' else 'HMC'} N_LF {int(fastest.nlf)},"
        )
        if saving > 0:
            kind = "lower bound" if mine.frozen else "value"
            assert r.charge_break_even == pytest.approx(training / saving)
        else:
            kind = "never"
            assert np.isinf(r.charge_break_even)
        assert r.charge_break_even_kind == kind
        kinds.add(kind)
    assert {"value", "never"} <= kinds
    assert "s / indep., charge" in report["html"] and "never (vs HMC N_LF" in report["html"]


def test_a_frozen_learner_gives_an_upper_bound(report):
    stuck = report["learners"].set_index("learner").loc["stuck"]
    assert bool(stuck.charge_frozen)
    assert stuck.charge_ratio_kind == "upper bound"
    assert "≤ " in report["html"]


def test_the_report_shows_the_table(report):
    assert "Learned samplers, one row each" in report["html"]
    assert f"{LOCAL:,}" in report["html"]


def test_without_learned_files_the_table_is_empty(report):
    table = report["table"]
    assert learners_table(table[table.sampler == "hmc"]).empty
