"""Flows in the comparison (issue 19 item 4), from synthetic chain files: the kinds flow_imh and
flow_hmc, their cost in leapfrog steps by the fixed rule of analysis/move_costs.py (a pass
through K coupling layers = K, a force through the flow = 2 K + 1), never by their measured time,
and their rows in the tau_int table, comparison.csv, the learners and headline tables and the
exactness checks, against plain HMC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from chain_helpers import ar1, sector_chains, write_chain_file

from dlhmc.analysis.chains import KINDS, load_chain_set
from dlhmc.analysis.checks import charge_checks, plaquette_checks, sector_checks
from dlhmc.analysis.move_costs import MOVES
from dlhmc.cli import main
from dlhmc.lattice.u1_exact import exact_plaquette

LATTICE = (8, 8)
BETA = 3.0
N_CHAINS, N_TRAJ = 8, 1000
K, NLF = 16, 10
FLOW = {"network": "flow", "n_params": 3000, "train_lattice": np.array(LATTICE),
        "flow_layers": K, "flow_passes": 1}  # fmt: skip
IMH = {**FLOW, "flow_forces": 0, "ess": 0.6}
FLOW_HMC = {**FLOW, "flow_forces": NLF, "integrator": "leapfrog"}
# (path, sampler, nlf, eps, attrs, rho of the charges, training seconds, trajectories per second)
FILES = (
    ("hmc/a.nc", "hmc", 5, 0.2, {}, 0.97, None, 50.0),
    ("hmc/b.nc", "hmc", 10, 0.2, {}, 0.95, None, 30.0),
    ("hmc/w.nc", "hmc", 10, 0.2, {"instanton_hits": 10}, 0.6, None, 20.0),
    ("learned/flow/flow_imh.nc", "flow_imh", 1, 1.0, IMH, 0.2, 120.0, 40.0),
    ("learned/flow/flow_hmc.nc", "flow_hmc", NLF, 0.1, FLOW_HMC, 0.1, 120.0, 3.0),
)


def _write(path, sampler, nlf, eps, attrs, rho, seconds, rate, rng):
    plaq = exact_plaquette(BETA, LATTICE[0] * LATTICE[1]) + 0.002 * ar1(0.5, N_CHAINS, N_TRAJ, rng)
    return write_chain_file(
        path,
        sector_chains(BETA, LATTICE, rho, N_CHAINS, N_TRAJ, rng),
        plaq,
        sampler=sampler,
        lattice=LATTICE,
        beta=BETA,
        nlf=nlf,
        eps=eps,
        charge_real=0.25 * ar1(rho, N_CHAINS, N_TRAJ, rng),
        training_seconds=seconds,
        traj_per_second=rate,
        extra_attrs=attrs,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("flows")
    rng = np.random.default_rng(19)
    files = []
    for path, *spec in FILES:
        target = tmp_path / "results" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        files.append(_write(target, *spec, rng))
    table_path = tmp_path / "tauint.csv"
    assert main(["analyze", *map(str, files), "--out", str(table_path), "--experiment", "e"]) == 0
    out_dir = tmp_path / "report"
    argv = ["report", "--table", str(table_path), "--chains", *map(str, files)]
    assert main([*argv, "--experiment", "e", "--out-dir", str(out_dir)]) == 0
    return {
        "table": pd.read_csv(table_path),
        "out": out_dir,
        "comparison": pd.read_csv(out_dir / "comparison.csv"),
        "learners": pd.read_csv(out_dir / "learners.csv"),
        "headline": pd.read_csv(out_dir / "headline.csv"),
        "html": (out_dir / "report.html").read_text(encoding="utf-8"),
    }


# ---- the cost rule -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sampler", "nlf", "attrs", "expected"),
    [
        ("flow_imh", 1, IMH, K),  # one proposal through K layers
        ("flow_hmc", NLF, FLOW_HMC, NLF * (2 * K + 1) + K),  # N forces and the final pass
        ("flow_hmc", 4, {**FLOW_HMC, "flow_layers": 2, "flow_forces": 4}, 4 * 5 + 2),
    ],
)
def test_a_flow_costs_its_layers_by_the_fixed_rule(tmp_path, sampler, nlf, attrs, expected):
    """The same chains cost the same leapfrog steps at any measured speed; the file's nlf is
    no leapfrog step of its own (an IMH file says 1, a flow-HMC step is a force through the
    flow)."""
    rng = np.random.default_rng(0)
    costs = set()
    for i, rate in enumerate((0.5, 500.0)):
        spec = (sampler, nlf, 0.1, attrs, 0.5, 10.0, rate)
        chains = load_chain_set(_write(tmp_path / f"{i}.nc", *spec, rng))
        assert chains.category == sampler
        costs.add(chains.lf_per_traj)
    assert costs == {float(expected)}


def test_the_flow_moves_are_stated_once_and_count_nothing_elsewhere(tmp_path):
    assert {"flow_proposal", "flow_force"} <= set(MOVES)
    rng = np.random.default_rng(1)
    hmc = load_chain_set(_write(tmp_path / "h.nc", "hmc", 7, 0.1, {}, 0.5, None, 9.0, rng))
    assert hmc.lf_per_traj == 7.0  # no flow attribute: no flow move
    broken = {k: v for k, v in IMH.items() if k != "flow_layers"}
    chains = load_chain_set(_write(tmp_path / "f.nc", "flow_imh", 1, 1.0, broken, 0.5, 1.0,
                                   9.0, rng))  # fmt: skip
    with pytest.raises(ValueError, match="missing attribute 'flow_layers'"):
        _ = chains.lf_per_traj


def test_the_flow_kinds_are_learned_against_plain_hmc():
    assert KINDS["flow_imh"].label == "flow IMH" and KINDS["flow_hmc"].label == "flow HMC"
    for kind in ("flow_imh", "flow_hmc"):
        assert KINDS[kind].baseline == "hmc" and not KINDS[kind].integrates


# ---- the rows ----------------------------------------------------------------------------------


def test_the_tau_table_counts_the_flows_by_the_rule(report):
    table = report["table"]
    lf = table.groupby("file").lf_per_traj.first()
    by_name = {f.split("results/")[-1]: v for f, v in lf.items()}
    assert by_name["learned/flow/flow_imh.nc"] == K
    assert by_name["learned/flow/flow_hmc.nc"] == NLF * (2 * K + 1) + K
    categories = table.groupby("file").category.first()
    assert set(categories) == {"hmc", "whmc", "flow_imh", "flow_hmc"}


def test_comparison_has_flow_columns_against_plain_hmc(report):
    comparison = report["comparison"]
    row = comparison[comparison.observable == "charge"].iloc[0]
    table = report["table"]
    charge = table[table.observable == "charge"]
    best_hmc = charge[charge.category == "hmc"].cost_lf.min()
    for kind in ("flow_imh", "flow_hmc"):
        cost = charge[charge.category == kind].cost_lf.iloc[0]
        assert row[f"{kind}_cost_lf"] == pytest.approx(cost)
        assert row[f"ratio_{kind}_vs_hmc"] == pytest.approx(best_hmc / cost)
        assert row[f"{kind}_break_even_baseline"].startswith("HMC N_LF ")
    assert row["flow_hmc_lf_per_traj"] == NLF * (2 * K + 1) + K


def test_learners_and_headline_tables_have_a_row_per_flow_sampler(report):
    learners = report["learners"]
    flows = learners[learners.learner == "flow"].set_index("category")
    assert sorted(flows.index) == ["flow_hmc", "flow_imh"]
    assert set(flows.network) == {"flow"}
    assert flows.loc["flow_hmc", "training_seconds"] == pytest.approx(120.0)
    assert flows.charge_baseline_point.str.startswith("HMC ").all()
    headline = report["headline"]
    labels = set(headline.label)
    assert {"flow IMH", "flow HMC", "HMC", "winding HMC"} <= labels
    html = report["html"]
    assert "flow IMH" in html and "flow HMC" in html
    assert (report["out"] / "fig1_cost_vs_beta.png").stat().st_size > 0


def test_flow_rows_get_the_exactness_checks(report):
    """Plaquette, <Q_Z^2> and the sector weights are checked for each flow file as for the
    other rows; these chains are exact, so nothing fails."""
    table = report["table"]
    for checks in (plaquette_checks(table), charge_checks(table), sector_checks(table)):
        flows = checks[checks.category.isin(["flow_imh", "flow_hmc"])]
        assert set(flows.category) == {"flow_imh", "flow_hmc"}
        assert "FAIL" not in set(flows.status)
    plaq = plaquette_checks(table)
    assert set(plaq[plaq.category.str.startswith("flow")].status) == {"pass"}


def test_flow_rows_name_their_layers_and_the_imh_ess(report):
    """A flow's point is its coupling layers (and flow HMC's N_LF, eps), not the placeholder
    ``N_LF 1, eps 1`` of an independence sampler's file; the learners table carries the IMH
    file's ESS and leaves it empty for flow HMC."""
    headline = report["headline"].set_index("label")
    assert headline.loc["flow IMH", "point"] == f"flow, {K} layers"
    assert headline.loc["flow HMC", "point"] == f"{NLF}, 0.1; flow, {K} layers"
    flows = report["learners"][report["learners"].learner == "flow"].set_index("category")
    assert flows.loc["flow_imh", "ess"] == pytest.approx(IMH["ess"])
    assert np.isnan(flows.loc["flow_hmc", "ess"])
    assert ">ESS<" in report["html"]
