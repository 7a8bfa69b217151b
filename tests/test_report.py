"""The report: comparison, exactness checks, five figures and one HTML page from synthetic runs."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from chain_helpers import ar1, sector_chains, write_chain_file

from dlhmc.analysis.checks import plaquette_checks
from dlhmc.analysis.comparison import comparison_table
from dlhmc.analysis.exact import exact_plaquette, exact_sectors
from dlhmc.analysis.registry import REPORT_FIGURES, REPORT_TABLES, resolve
from dlhmc.cli import main
from dlhmc.lattice.u1_exact import exact_plaquette as u1_exact

LATTICE = (8, 8)
BETAS = (2.0, 3.0)
HMC_GRID = ((5, 0.2), (10, 0.1))
# rho of the synthetic charge series: the trained sampler decorrelates fastest
RHO = {("l2hmc", 10, 0.1): 0.6, ("hmc", 5, 0.2): 0.97, ("hmc", 10, 0.1): 0.95}
N_CHAINS, N_TRAJ = 8, 1500
FAILING = ("hmc", 3.0, 10)  # this chain set gets a plaquette 10 sigma off its exact value
FROZEN = ("hmc", 3.0, 5)  # this one never changes its charge


def _experiment(tmp_path):
    rng = np.random.default_rng(12)
    files = []
    for beta in BETAS:
        exact = u1_exact(beta, 64)
        for (sampler, nlf, eps), rho in RHO.items():
            # Every sector with its exact weight, so that the <Q_Z^2> checks pass.
            charge = sector_chains(beta, LATTICE, rho, N_CHAINS, N_TRAJ, rng)
            if (sampler, beta, nlf) == FROZEN:
                charge = np.repeat(charge[:, :1], N_TRAJ, axis=1)
            plaq = exact + 0.002 * ar1(0.5, N_CHAINS, N_TRAJ, rng)
            if (sampler, beta, nlf) == FAILING:
                plaq += 0.002  # the Gamma-method error of the mean is ~2e-5
            trained = sampler == "l2hmc"
            layers = None
            if trained:
                lf = np.arange(nlf + 1)
                layers = {
                    "lf_plaq_dev": 0.01 * np.sin(lf) / beta,
                    "lf_energy": 100 + 0.1 * beta * lf,
                    "lf_charge_real": 0.05 * np.cos(lf / beta),
                }
            files.append(
                write_chain_file(
                    tmp_path / f"{sampler}_b{beta:g}_n{nlf}.nc",
                    charge,
                    plaq,
                    sampler=sampler,
                    lattice=LATTICE,
                    beta=beta,
                    nlf=nlf,
                    eps=eps,
                    traj_per_second=20.0 if trained else 40.0,
                    charge_real=0.25 * ar1(rho, N_CHAINS, N_TRAJ, rng),
                    training_seconds=600.0 * beta if trained else None,
                    layers=layers,
                )
            )
    runs = []
    for beta in BETAS:
        run = tmp_path / f"run_b{beta:g}"
        run.mkdir()
        step = np.arange(200)
        pd.DataFrame(
            {
                "step": step,
                "loss": -1 / beta + np.exp(-step / 50) + 0.05 * rng.standard_normal(200),
                "accept": 0.9 - 0.1 * beta + 0.001 * step,
                "dq2": (1 - np.exp(-step / 40)) / beta,
                "plaq": 0.7,
                "eps_x_mean": 0.1 + 1e-4 * beta * step,
                "eps_v_mean": 0.1 + 2e-4 * step,
                "sumlogdet": 0.01,
                "seconds": 0.5 * step,
                "beta": beta,
                "skipped": 0,
            }
        ).to_csv(run / "metrics.csv", index=False)
        (run / "config.yaml").write_text(yaml.safe_dump({"beta": beta, "nlf": 10, "steps": 200}))
        runs.append(run)
    return files, runs


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("report")
    files, runs = _experiment(tmp_path)
    table_path = tmp_path / "tauint.csv"
    assert (
        main(
            [
                "analyze",
                *map(str, files),
                "--out",
                str(table_path),
                "--experiment",
                "demo",
                "--amortize-samples",
                "1000",
            ]
        )
        == 0
    )
    out_dir = tmp_path / "report"
    assert (
        main(
            [
                "report",
                "--table",
                str(table_path),
                "--chains",
                *map(str, files),
                "--runs",
                *map(str, runs),
                "--experiment",
                "demo",
                "--out-dir",
                str(out_dir),
            ]
        )
        == 0
    )
    return {
        "table": pd.read_csv(table_path),
        "comparison": pd.read_csv(out_dir / "comparison.csv"),
        "headline": pd.read_csv(out_dir / "headline.csv"),
        "html": (out_dir / "report.html").read_text(encoding="utf-8"),
        "out_dir": out_dir,
    }


def test_all_figures_written(report):
    names = [
        "fig1_cost_vs_beta",
        "fig2_charge_history",
        "fig3_layer_diagnostics",
        "fig4_plaquette",
        "fig5_training",
    ]
    for name in names:
        png = (report["out_dir"] / f"{name}.png").read_bytes()
        pdf = (report["out_dir"] / f"{name}.pdf").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
        assert pdf.startswith(b"%PDF") and len(pdf) > 5_000
        assert f'id="{name}"' in report["html"]
    assert report["html"].count("data:image/png;base64,") == len(REPORT_FIGURES)
    assert not list(report["out_dir"].glob("*.tmp-*"))


# The inputs build_report hands to the registry's builders, besides the tables built before.
REPORT_INPUTS = {"table", "chain_sets", "runs", "checks", "main", "main_plaq", "derivative_rows",
                 "swap_rows"}


def test_every_registered_table_and_figure_is_built_with_the_inputs_it_names(report):
    """Adding a table or figure is a builder plus a registry line: the entry names its builder
    and inputs, and the report writes it (and the workflow declares it: tests/test_plan.py)."""
    known = set(REPORT_INPUTS)
    for item in (*REPORT_TABLES, *REPORT_FIGURES):
        parameters = inspect.signature(resolve(item.builder)).parameters.values()
        assert len([p for p in parameters if p.default is p.empty]) == len(item.inputs), item
        assert set(item.inputs) <= known, item
        if item in REPORT_TABLES:
            known.add(item.name)
            assert (report["out_dir"] / f"{item.name}.csv").is_file()
            assert item.html is None or callable(resolve(item.html))
        else:
            assert (report["out_dir"] / f"{item.name}.pdf").is_file()


def test_comparison_picks_best_hmc(report):
    table, comp = report["table"], report["comparison"]
    assert set(comp.observable) == {"charge", "charge_real"}
    for observable in ("charge", "charge_real"):
        rows = table[table.observable == observable]
        block = comp[comp.observable == observable]
        assert len(block) == len(BETAS)
        for _, row in block.iterrows():
            at_beta = rows[np.isclose(rows.beta, row.beta)]
            hmc = at_beta[at_beta.sampler == "hmc"]
            best = hmc.loc[hmc.cost_lf.idxmin()]
            trained = at_beta[at_beta.sampler == "l2hmc"].iloc[0]
            assert (row.hmc_nlf, row.hmc_eps) == (best.nlf, best.eps)
            ratio = row.ratio_learned_vs_hmc
            assert ratio == pytest.approx(best.cost_lf / trained.cost_lf)
            rel = np.hypot(best.cost_lf_err / best.cost_lf, trained.cost_lf_err / trained.cost_lf)
            assert row.ratio_learned_vs_hmc_err == pytest.approx(ratio * rel)
            assert row.ratio_learned_vs_hmc_seconds == pytest.approx(
                best.seconds_per_indep / trained.seconds_per_indep
            )
            amortized = trained.tau_int / (20.0 * N_CHAINS) + 600.0 * row.beta / 1000
            assert row.ratio_learned_vs_hmc_seconds_amortized == pytest.approx(
                best.seconds_per_indep / amortized
            )
            assert row.ratio_learned_vs_hmc_kind == "value"
            assert row.hmc_n_points == len(HMC_GRID)
            # No winding sampler in this experiment: its categories and ratio stay empty.
            assert row.whmc_n_points == 0 and row.l2hmc_w_n_points == 0
            assert np.isnan(row.whmc_cost_lf) and np.isnan(row.ratio_learned_w_vs_whmc)


def test_report_opens_with_figure_1_then_the_headline(report):
    """Figure 1 and the headline table come first; the long tables and the other figures follow."""
    body = report["html"].split("</h1>", 1)[1]
    sections = re.findall(r'<figure id="([^"]+)"|<h2>([^<]*)</h2>', body)
    opening = [figure or heading for figure, heading in sections[:3]]
    assert opening[0] == "fig1_cost_vs_beta"
    assert opening[1].startswith("Headline")
    assert opening[2].startswith("Four-way comparison")


def test_headline_picks_the_best_of_each_kind_per_beta(report):
    """Per beta and kind: the lowest N_LF tau_int of Q_R, its seconds (tau_int / (throughput x
    chains)) and,
    for the learned kind, its training seconds and break-even against the fastest HMC point."""
    table, headline = report["table"], report["headline"]
    rows = table[table.observable == "charge_real"]
    assert len(headline) == len(BETAS) * 2
    assert set(headline.observable) == {"charge_real"}
    for beta in BETAS:
        mine = headline[np.isclose(headline.beta, beta)]
        assert list(mine.kind) == ["hmc", "l2hmc"]  # the kinds' own order
        at_beta = rows[np.isclose(rows.beta, beta)]
        for _, r in mine.iterrows():
            points = at_beta[at_beta.category == r.kind]
            best = points.loc[points.cost_lf.idxmin()]
            rate = (20.0 if r.kind == "l2hmc" else 40.0) * N_CHAINS
            assert r.cost_lf == pytest.approx(best.cost_lf)
            assert bool(r.frozen) == bool(best.frozen)
            assert r.seconds == pytest.approx(best.tau_int / rate)
            assert r.seconds_err == pytest.approx(best.tau_int_err / rate, nan_ok=True)
        learned = mine[mine.kind == "l2hmc"].iloc[0]
        hmc = at_beta[at_beta.category == "hmc"]
        fastest = hmc.loc[hmc.tau_int.idxmin()]  # one throughput for every HMC point
        saving = fastest.tau_int / (40.0 * N_CHAINS) - learned.seconds
        assert saving > 0 and not fastest.frozen  # the synthetic learner pays off
        assert learned.training_seconds == pytest.approx(600.0 * beta)
        assert learned.break_even_kind == "value"
        assert learned.break_even == pytest.approx(600.0 * beta / saving)
        assert f"{learned.break_even:.4g} ± {learned.break_even_err:.2g}" in report["html"]
        assert mine[mine.kind == "hmc"].break_even.isna().all()


@pytest.mark.parametrize(
    ("hmc_frozen", "trained_frozen", "kind"),
    [
        (False, False, "value"),
        (True, False, "lower bound"),
        (False, True, "upper bound"),
        (True, True, "undetermined"),
    ],
)
def test_comparison_with_lower_bounds(hmc_frozen, trained_frozen, kind):
    """A frozen best HMC point makes the improvement a lower bound, a frozen trained one an
    upper bound; a frozen point with a bound above a measured one is simply not the best."""
    rows = [
        ("hmc", 4, 0.2, 50.0, hmc_frozen),
        ("hmc", 8, 0.1, 400.0, False),
        ("hmc", 12, 0.1, 60.0, True),
        ("l2hmc", 8, 0.1, 2.0, trained_frozen),
    ]
    table = pd.DataFrame(
        [
            {
                "experiment": "e",
                "group": "U1",
                "lattice": "8x8",
                "beta": 4.0,
                "sampler": s,
                "category": s,
                "nlf": n,
                "eps": e,
                "observable": "charge",
                "tau_int": t,
                "tau_int_err": 0.1 * t,
                "cost_lf": n * t,
                "cost_lf_err": 0.1 * n * t,
                "seconds_per_indep": t / 10,
                "seconds_per_indep_err": t / 100,
                "seconds_per_indep_amortized": np.nan,
                "frozen": f,
            }
            for s, n, e, t, f in rows
        ]
    )
    comp = comparison_table(table).iloc[0]
    assert comp.ratio_learned_vs_hmc_kind == kind
    assert comp.hmc_nlf == 4
    if kind == "undetermined":
        assert np.isnan(comp.ratio_learned_vs_hmc)
    else:
        assert comp.ratio_learned_vs_hmc == pytest.approx(comp.hmc_cost_lf / 16.0)


def test_report_contains_table_values(report):
    html, table = report["html"], report["table"]

    def expected(value, error, bound):
        error = "" if np.isnan(error) else f" ± {error:.2g}"
        return f"{'≥ ' if bound else ''}{value:.4g}{error}"

    for _, row in table.iterrows():
        assert expected(row.tau_int, row.tau_int_err, row.frozen) in html
        assert expected(row.cost_lf, row.cost_lf_err, row.frozen) in html
        assert expected(row.tau_int_free_mean, row.tau_int_free_mean_err, row.frozen) in html
    frozen = table[table.frozen]
    assert set(zip(frozen.sampler, frozen.beta, frozen.nlf, strict=True)) == {FROZEN}
    for _, row in report["comparison"].iterrows():
        prefix = "≥ " if row.ratio_learned_vs_hmc_kind == "lower bound" else ""
        ratio, error = row.ratio_learned_vs_hmc, row.ratio_learned_vs_hmc_err
        assert f"{prefix}{ratio:.4g} ± {error:.2g}" in html
    assert "seed" in html and "steps: 200" in html  # run settings and training config


def test_failing_plaquette_check_is_shown_failing(report):
    html, table = report["html"], report["table"]
    failing = re.findall(r'<tr class="fail">(.*?)</tr>', html, flags=re.S)
    assert len(failing) == 1  # the <Q_Z^2> checks pass: the charges have the exact weights
    row = table[
        (table.observable == "plaq")
        & (table.sampler == FAILING[0])
        & (table.beta == FAILING[1])
        & (table.nlf == FAILING[2])
    ].iloc[0]
    pull = (row["mean"] - u1_exact(FAILING[1], 64)) / row.mean_err
    assert pull > 4
    assert "FAIL" in failing[0] and f"{pull:.4g}" in failing[0]
    # 6 plaquette checks (1 FAIL), 6 <Q_Z^2> checks, one of them frozen (not a FAIL), and the
    # sector weights the chains resolve (all pass: the charges have the exact weights).
    sectors = len(re.findall(r'<td class="text">P\(\|Q_Z\| = \d+\)</td>', html))
    assert f"{10 + sectors} of {11 + sectors} checks with an exact value pass, 1 FAIL" in html
    assert "1 not checked (frozen charge" in html


def test_sector_weights_are_checked_where_the_chains_resolve_them(report):
    """Every chain file has a ``sector_q`` row per sector of the exact distribution; the report
    lists the sector checks of the chain sets whose charge tunnels (all pass: the charges have
    the exact weights) and none of the frozen set, which is only counted."""
    html, table = report["html"], report["table"]
    sectors = table[table.observable.str.startswith("sector_")]
    assert sectors.file.nunique() == len(BETAS) * len(RHO)
    for (beta, _), rows in sectors.groupby(["beta", "file"]):
        assert set(rows.observable) == {f"sector_{q}" for q in exact_sectors("U1", LATTICE, beta)}
    cells = [
        re.findall(r"<td[^>]*>(.*?)</td>", row)
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, flags=re.S)
    ]
    listed = [c for c in cells if len(c) > 6 and c[1].startswith("P(|Q_Z| = ")]
    assert listed and all(c[0] == "pass" for c in listed)
    # Sectors 0 and 1 hold most of the weight: every chain set that tunnels resolves them.
    for q in (0, 1):
        assert sum(c[1] == f"P(|Q_Z| = {q})" for c in listed) == len(BETAS) * len(RHO) - 1
    _, beta, nlf = FROZEN
    assert not [c for c in listed if (c[4], c[6]) == (f"{beta:g}", str(nlf))]
    unlisted = int(re.search(r"(\d+) sector weights P\(\|Q_Z\| = q\) not checked", html)[1])
    frozen_sectors = len(exact_sectors("U1", LATTICE, beta))
    assert unlisted == len(sectors) - len(listed) and unlisted >= frozen_sectors


def test_su3_checks_use_strong_coupling_only_at_small_beta():
    table = pd.DataFrame(
        {
            "observable": "plaq",
            "group": "SU3",
            "lattice": "4x4x4x4",
            "beta": [0.5, 1.0, 5.5],
            "sampler": "hmc",
            "nlf": 10,
            "eps": 0.1,
            "mean": [0.0289, 0.0700, 0.55],
            "mean_err": 1e-4,
        }
    )
    checks = plaquette_checks(table).set_index("beta")
    assert list(checks.status) == ["pass", "FAIL", "no exact value"]
    assert checks.loc[0.5, "exact"] == pytest.approx(0.5 / 18 + 0.25 / 216)


def test_su3_series_within_its_stated_error_of_the_one_plaquette_integral():
    """The truncation error of beta/18 + beta^2/216 covers the exact one-plaquette value.

    ``(1/3)<Re Tr U>`` with weight ``exp((beta/3) Re Tr U)`` by Weyl's integration formula over
    the eigenphases of SU(3) (the 4D lattice corrections, O(u^5), are below 1e-5 here).
    """
    phases = np.linspace(-np.pi, np.pi, 300, endpoint=False)
    a, b = np.meshgrid(phases, phases)
    z = np.exp(1j * np.stack([a, b, -a - b]))
    haar = (np.abs(z[0] - z[1]) * np.abs(z[0] - z[2]) * np.abs(z[1] - z[2])) ** 2
    re_tr = np.cos(a) + np.cos(b) + np.cos(a + b)
    for beta in (0.3, 0.7, 1.0):
        weight = haar * np.exp(beta / 3 * re_tr)
        exact = float((weight * re_tr / 3).sum() / weight.sum())
        series = exact_plaquette("SU3", (4, 4, 4, 4), beta)
        assert abs(series.value - exact) < 1.5 * series.error
        assert abs(series.value - exact) > 0.5 * series.error  # the error is not inflated


def test_report_bad_inputs(tmp_path, report, capsys):
    table = tmp_path / "t.csv"
    report["table"].to_csv(table, index=False)
    cases = [
        (["--table", str(tmp_path / "none.csv")], "none.csv: no such file"),
        (["--table", str(table), "--experiment", "other"], "no rows for 'other'"),
        (["--table", str(table), "--runs", str(tmp_path)], "metrics.csv: no such file"),
        (["--table", str(table), "--chains", str(table)], "not a NetCDF chain file"),
        (["--table", str(table), "--out-dir", str(table)], "--out-dir"),
    ]
    for args, words in cases:
        if "--experiment" not in args:
            args = [*args, "--experiment", "demo"]
        if "--out-dir" not in args:
            args = [*args, "--out-dir", str(tmp_path / "out")]
        assert main(["report", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err


def test_cost_figure_keeps_every_point_and_bound_arrow_in_view(report):
    """Log axes hold every point, and a frozen point's arrow (up to 1.8x its bound) fits."""
    from dlhmc.analysis.figures import fig_cost_vs_beta

    table = report["table"]
    fig = fig_cost_vs_beta(table, report["comparison"])
    for ax, observable in zip(fig.axes, ("charge_real", "charge"), strict=True):
        rows = table[table.observable == observable]
        bottom, top = ax.get_ylim()
        assert ax.get_yscale() == "log"
        assert 0 < bottom <= rows.cost_lf.min()
        bounds = rows.cost_lf[rows.frozen]
        assert top >= 1.8 * (bounds.max() if len(bounds) else rows.cost_lf.max())


def test_tunnelling_counts_every_chain_file_and_bounds_tau_int(report):
    """The analyze table's charge rows carry the counted changes; the report ranks every file by
    them. The synthetic charges are a monotone map of a reversible AR(1) chain, so tau_lag1 is a
    lower bound of tau_int there too; the frozen file has no change at all."""
    table = report["table"]
    charge = table[table.observable == "charge"]
    assert charge.tau_lag1.notna().all()
    assert table[table.observable != "charge"].charge_events.isna().all()
    moves = pd.read_csv(report["out_dir"] / "tunnelling.csv")
    assert sorted(moves.file) == sorted(charge.file)
    for _, row in moves.iterrows():
        frozen = (row.category, row.beta, row.nlf) == FROZEN
        assert (row.charge_events == 0) == frozen
        if not frozen:
            assert row.tau_lag1 <= row.tau_int + 3 * np.hypot(row.tau_int_err, row.tau_lag1_err)
    assert "Charge changes: what frozen chains still measure" in report["html"]
