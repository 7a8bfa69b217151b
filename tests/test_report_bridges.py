"""The report's bridges and replica-exchange section (issue 20) from hand-made inputs: derivative
CSVs as ``dlhmc derivative`` writes them, ``dlhmc trex`` directories (chain files, swaps.csv,
round_trips.csv), and the exact derivative the figure draws."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from chain_helpers import ar1, sector_chains, write_chain_file
from scipy.special import i0, i1

from dlhmc.analysis.bridges import (
    BridgeInputError,
    derivative_checks,
    exchange_table,
    read_derivatives,
    read_exchanges,
    swaps_table,
)
from dlhmc.analysis.exact import exact_charge_sq, exact_derivative, exact_plaquette
from dlhmc.cli import main
from dlhmc.lattice.u1_exact import exact_plaquette as u1_exact

LATTICE = (4, 4)
BETAS = (1.0, 1.5)
N_CHAINS, N_TRAJ = 8, 400


# ---- the exact derivative ----------------------------------------------------------------------


@pytest.mark.parametrize("beta", [1.0, 2.0, 3.5, 5.0])
def test_exact_plaquette_derivative_is_the_infinite_volume_formula_on_a_large_torus(beta):
    """``1 - P/beta - P^2`` with ``P = I_1/I_0`` (physics.md); 32x32 is infinite here."""
    p = i1(beta) / i0(beta)
    assert exact_derivative("U1", (32, 32), beta, "plaq") == pytest.approx(
        1 - p / beta - p * p, rel=2e-5
    )


def test_exact_derivatives_integrate_to_the_exact_differences():
    """Simpson's rule over [2, 3] of the derivative is the difference of the exact values: the
    central differences are the derivative of the same sums, for both observables."""
    lattice = (6, 6)
    for observable, lookup in (("plaq", exact_plaquette), ("q2", exact_charge_sq)):
        values = [exact_derivative("U1", lattice, b, observable) for b in (2.0, 2.5, 3.0)]
        simpson = (values[0] + 4 * values[1] + values[2]) / 6
        diff = lookup("U1", lattice, 3.0).value - lookup("U1", lattice, 2.0).value
        assert simpson == pytest.approx(diff, rel=2e-3), observable
    assert exact_derivative("SU3", (2, 2, 2, 2), 5.0, "plaq") is None
    with pytest.raises(ValueError, match="no exact derivative of 'charge'"):
        exact_derivative("U1", lattice, 2.0, "charge")


# ---- inputs ------------------------------------------------------------------------------------


def _derivative_csv(path, lattice=LATTICE, betas=BETAS, flow_offset=0.0):
    """A derivative CSV of one pair: plaq and q2, three estimators around the exact
    difference (the flow estimate shifted by ``flow_offset`` errors)."""
    b1, b2 = betas
    volume = math.prod(lattice)
    exact = {
        "plaq": (u1_exact(b2, volume) - u1_exact(b1, volume)) / (b2 - b1),
        "q2": (exact_charge_sq("U1", lattice, b2).value
               - exact_charge_sq("U1", lattice, b1).value) / (b2 - b1),
    }  # fmt: skip
    rows = []
    for observable, value in exact.items():
        for estimator, error in (("independent", 0.02), ("reweight", 0.01), ("flow", 0.004)):
            shift = flow_offset if estimator == "flow" else 0.5
            rows.append({"observable": observable, "estimator": estimator, "beta_from": b1,
                         "beta_to": b2, "value": value + shift * error, "error": error,
                         "exact": value, "n_configs": 320, "ess": 0.9})  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _exchange_dir(root, kind, rng, acceptance):
    """A dlhmc trex directory: one chain file per beta, swaps.csv and round_trips.csv."""
    directory = root / "results" / "demo" / "4x4" / kind
    directory.mkdir(parents=True)
    extra = {"force_evaluations": 2 * 4, "ladder_size": 2}
    if kind == "trex":
        extra |= {"flow_layers": 4, "flow_passes": 2.0, "force_refreshes": 0.5,
                  "training_seconds": 12.0}
    for beta in BETAS:
        charge = sector_chains(beta, LATTICE, 0.5, N_CHAINS, N_TRAJ, rng)
        plaq = u1_exact(beta, 16) + 0.01 * ar1(0.3, N_CHAINS, N_TRAJ, rng)
        write_chain_file(directory / f"beta{beta!r}.nc", charge, plaq, sampler=kind,
                         lattice=LATTICE, beta=beta, nlf=4, eps=0.25,
                         extra_attrs=extra)  # fmt: skip
    pd.DataFrame([{"pair": "0-1", "beta_from": BETAS[0], "beta_to": BETAS[1], "proposed": 3200,
                   "accepted": int(3200 * acceptance), "acceptance": acceptance,
                   "acceptance_error": 0.01, "accept_prob": acceptance, "divergent": 0}]
                 ).to_csv(directory / "swaps.csv", index=False)  # fmt: skip
    pd.DataFrame([{"ladders": N_CHAINS, "ladder_size": 2, "trajectories": N_TRAJ,
                   "round_trips": 40, "per_1000_trajectories": 12.5}]
                 ).to_csv(directory / "round_trips.csv", index=False)  # fmt: skip
    return directory


def test_read_derivatives_takes_the_volume_from_the_path_and_names_problems(tmp_path):
    path = _derivative_csv(tmp_path / "results" / "x" / "4x4" / "beta1.5" / "bridge" / "d.csv")
    rows = read_derivatives([path])
    assert set(rows.lattice) == {"4x4"} and set(rows.group) == {"U1"} and len(rows) == 6
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"observable": ["plaq"]}).to_csv(bad, index=False)
    with pytest.raises(BridgeInputError, match=r"bad\.csv: missing column 'estimator'"):
        read_derivatives([bad])
    plain = _derivative_csv(tmp_path / "d.csv")
    with pytest.raises(BridgeInputError, match=r"d\.csv: no lattice column and no volume"):
        read_derivatives([plain])
    with pytest.raises(BridgeInputError, match="no such file"):
        read_exchanges([tmp_path / "nothing"])


def test_derivative_checks_use_the_exactness_rule(tmp_path):
    path = tmp_path / "4x4" / "d.csv"
    checks = derivative_checks(read_derivatives([_derivative_csv(path, flow_offset=5.0)]))
    assert len(checks) == 6
    flow = checks[checks.sampler.str.startswith("bridge flow")]
    assert set(flow.status) == {"FAIL"} and set(flow.pull.round(6)) == {5.0}
    assert set(checks[~checks.index.isin(flow.index)].status) == {"pass"}
    frozen = pd.read_csv(path).assign(frozen=1)
    frozen.to_csv(path, index=False)
    assert set(derivative_checks(read_derivatives([path])).status) == {"frozen"}


def test_swaps_table_pairs_pt_with_trex(tmp_path):
    rng = np.random.default_rng(3)
    dirs = [_exchange_dir(tmp_path, k, rng, a) for k, a in (("pt", 0.2), ("trex", 0.5))]
    table = swaps_table(read_exchanges(dirs))
    assert len(table) == 1
    row = table.iloc[0]
    assert (row.lattice, row.pt_acceptance, row.trex_acceptance) == ("4x4", 0.2, 0.5)
    assert row.ratio == pytest.approx(2.5)
    assert row.ratio_err == pytest.approx(2.5 * math.hypot(0.01 / 0.5, 0.01 / 0.2))
    assert row.trex_round_trips_per_1000 == 12.5
    only_pt = swaps_table(read_exchanges(dirs[:1]))
    assert math.isnan(only_pt.iloc[0].ratio)


# ---- the report --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bridge_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("bridges")
    rng = np.random.default_rng(5)
    files = []
    for beta in BETAS:
        for nlf, rho in ((4, 0.9), (8, 0.8)):
            charge = sector_chains(beta, LATTICE, rho, N_CHAINS, N_TRAJ, rng)
            plaq = u1_exact(beta, 16) + 0.01 * ar1(0.5, N_CHAINS, N_TRAJ, rng)
            path = root / f"hmc_b{beta:g}_n{nlf}.nc"
            files.append(write_chain_file(path, charge, plaq, lattice=LATTICE, beta=beta,
                                          nlf=nlf, eps=1.0 / nlf))  # fmt: skip
    dirs = [_exchange_dir(root, k, rng, a) for k, a in (("pt", 0.2), ("trex", 0.5))]
    exchange_chains = sorted(str(p) for d in dirs for p in d.glob("beta*.nc"))
    derivative = _derivative_csv(root / "results" / "demo" / "4x4" / "beta1.5" / "bridge" /
                                 "derivative.csv", flow_offset=0.3)  # fmt: skip
    table = root / "tauint.csv"
    chains = [*map(str, files), *exchange_chains]
    assert main(["analyze", *chains, "--out", str(table), "--experiment", "demo"]) == 0
    out = root / "report"
    code = main(["report", "--table", str(table), "--chains", *chains, "--derivatives",
                 str(derivative), "--exchange", *map(str, dirs), "--experiment", "demo",
                 "--out-dir", str(out)])  # fmt: skip
    assert code == 0
    return {"out": out, "html": (out / "report.html").read_text(), "table": table}


def test_the_report_has_the_bridges_section(bridge_report):
    out, page = bridge_report["out"], bridge_report["html"]
    for name in ("derivatives", "derivative_precision", "swaps", "exchange"):
        assert (out / f"{name}.csv").is_file()
    for ext in ("png", "pdf"):
        assert (out / f"fig6_derivatives.{ext}").stat().st_size > 5_000
    assert 'id="fig6_derivatives"' in page
    assert "Bridges and replica exchange" in page and "Swap acceptance" in page
    assert "The top of the ladder" in page
    derivatives = pd.read_csv(out / "derivatives.csv")
    assert len(derivatives) == 6 and set(derivatives.status) == {"pass"}
    assert list(derivatives.estimator[:3]) == ["independent", "reweight", "flow"]
    # the derivative rows are among the exactness checks
    assert "d⟨plaq⟩/dβ" in page and "bridge flow (β 1 → 1.5)" in page


def test_the_precision_table_gives_each_estimators_error_over_the_bridges(bridge_report):
    """The fixture's errors are 0.02, 0.01 and 0.004 (independent, reweighting, bridge)."""
    precision = pd.read_csv(bridge_report["out"] / "derivative_precision.csv")
    assert list(precision.observable) == ["plaq", "q2"]
    assert np.allclose(precision.independent_over_flow, 5.0)
    assert np.allclose(precision.reweight_over_flow, 2.5)
    assert np.allclose(precision.spacing, BETAS[1] - BETAS[0])
    assert "What the bridge buys" in bridge_report["html"]


def _flagged_derivatives(tmp_path, estimator: str) -> pd.DataFrame:
    """A pair's derivative rows with ``estimator``'s flagged (``frozen`` 1), as read."""
    path = _derivative_csv(tmp_path / "4x4" / "beta1.5" / "bridge" / "derivative.csv")
    frame = pd.read_csv(path)
    frame["frozen"] = (frame.estimator == estimator).astype(int)
    frame.to_csv(path, index=False)
    return read_derivatives([path])


def test_a_frozen_bridge_estimate_has_no_ratio(tmp_path):
    from dlhmc.analysis.derivative_precision import precision_table

    table = precision_table(_flagged_derivatives(tmp_path, "flow"))
    assert table.flow_error.isna().all() and table.independent_over_flow.isna().all()
    assert np.allclose(table.independent_error, 0.02)


def test_flagged_estimates_are_drawn_hollow(tmp_path):
    from dlhmc.analysis.figures_bridges import fig_derivatives

    fig = fig_derivatives(_flagged_derivatives(tmp_path, "reweight"))
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "reweighting (flagged)" in labels and "bridge flow" in labels
    assert "reweighting" not in labels and "bridge flow (flagged)" not in labels


def test_the_exchange_table_compares_the_top_beta_with_hmc(bridge_report):
    exchange = pd.read_csv(bridge_report["out"] / "exchange.csv")
    assert list(exchange.kind) == ["hmc", "pt", "trex"]
    assert set(exchange.beta) == {BETAS[-1]}
    table = pd.read_csv(bridge_report["table"])
    charge = table[(table.observable == "charge") & np.isclose(table.beta, BETAS[-1])]
    best = charge[charge.category == "hmc"].cost_lf.min()
    hmc, pt, trex = (exchange.iloc[i] for i in range(3))
    assert hmc.cost_lf == pytest.approx(best)
    assert pt.ratio_cost == pytest.approx(best / pt.cost_lf)
    # the ladder's force evaluations (2 rungs x 4 steps) and T-REX's passes are counted
    lf = charge.set_index("category").lf_per_traj
    assert lf["pt"] == pytest.approx(8.0) and lf["trex"] > lf["pt"]
    # the bridges' training is shown apart (the fixture's T-REX files say 12 s), none for HMC
    assert trex.training_seconds == 12.0 and hmc.training_seconds == 0.0
    assert "training s (bridges)" in bridge_report["html"]
    assert exchange_table(table[table.category == "hmc"]).empty


def test_report_refuses_unreadable_bridge_inputs(bridge_report, tmp_path, capsys):
    code = main(["report", "--table", str(bridge_report["table"]), "--derivatives",
                 str(tmp_path / "none.csv"), "--experiment", "demo", "--out-dir",
                 str(tmp_path / "out")])  # fmt: skip
    assert code == 2
    assert "--derivatives: " in capsys.readouterr().err
