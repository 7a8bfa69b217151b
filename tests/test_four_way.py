"""The four-way comparison (plain / winding HMC, L2HMC without / with winding), break-even,
the paper's points in figure 1 and the <Q_Z^2> exactness check, from synthetic chain files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from chain_helpers import ar1, sector_chains, write_chain_file

from dlhmc.analysis.chains import load_chain_set
from dlhmc.analysis.checks import charge_checks
from dlhmc.analysis.comparison import comparison_table
from dlhmc.analysis.costs import break_even
from dlhmc.analysis.exact import exact_charge_sq
from dlhmc.analysis.figures import fig_charge_history, fig_cost_vs_beta
from dlhmc.analysis.paper import paper_points
from dlhmc.cli import main
from dlhmc.lattice.u1_exact import exact_plaquette

# The kinds this experiment has files of: the four-way comparison (no flows).
CATEGORIES = ("hmc", "whmc", "l2hmc", "l2hmc_w")

LATTICE = (16, 16)
BETAS = (2.0, 3.0)
N_CHAINS, N_TRAJ = 8, 1000
HITS = 10
# A measured hit cost, as files written before the fixed rule carry: the analysis ignores it.
MEASURED_HIT_COST = 0.25
# (name, category attrs, nlf, eps, rho of the charge, traj_per_second)
POINTS = (
    ("hmc_a", {}, 5, 0.2, 0.97, 40.0),
    ("hmc_b", {}, 10, 0.1, 0.95, 20.0),
    # Fastest winding HMC in seconds, not in leapfrog steps (10 delocalized hits per trajectory).
    ("whmc_a", {"instanton_hits": HITS, "hit_cost_lf": MEASURED_HIT_COST}, 10, 0.1, 0.6, 60.0),
    ("whmc_b", {"instanton_hits": HITS, "instanton_size": 4}, 5, 0.2, 0.8, 36.0),
    ("l2hmc", {}, 10, 0.1, 0.7, 10.0),
    ("l2hmc_w", {"winding": 1, "network": "local"}, 10, 0.1, 0.3, 10.0),
)
CATEGORY = {"hmc_a": "hmc", "hmc_b": "hmc", "whmc_a": "whmc", "whmc_b": "whmc"}
TRAINING_SECONDS = 300.0


def _files(tmp_path, lattice=LATTICE):
    rng = np.random.default_rng(7)
    files = []
    for beta in BETAS:
        plaq_exact = exact_plaquette(beta, lattice[0] * lattice[1])
        for name, attrs, nlf, eps, rho, rate in POINTS:
            learned = name.startswith("l2hmc")
            hits = attrs.get("instanton_hits", 0)
            files.append(
                write_chain_file(
                    tmp_path / f"{name}_b{beta:g}.nc",
                    sector_chains(beta, lattice, rho, N_CHAINS, N_TRAJ, rng),
                    plaq_exact + 0.002 * ar1(0.5, N_CHAINS, N_TRAJ, rng),
                    sampler="l2hmc" if learned else "hmc",
                    lattice=lattice,
                    beta=beta,
                    nlf=nlf,
                    eps=eps,
                    traj_per_second=rate,
                    charge_real=0.25 * ar1(rho, N_CHAINS, N_TRAJ, rng),
                    training_seconds=TRAINING_SECONDS if learned else None,
                    extra_attrs=attrs,
                    # 3 of every 10 hits accepted
                    extra_vars={"instanton_accepted": np.full((N_CHAINS, N_TRAJ), 0.3 * hits)}
                    if hits
                    else None,
                )
            )
    return files


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("four_way")
    files = _files(tmp_path)
    table_path = tmp_path / "tauint.csv"
    argv = ["analyze", *map(str, files), "--out", str(table_path), "--experiment", "four"]
    assert main(argv) == 0
    out_dir = tmp_path / "report"
    argv = ["report", "--table", str(table_path), "--chains", *map(str, files)]
    assert main([*argv, "--experiment", "four", "--out-dir", str(out_dir)]) == 0
    return {
        "files": files,
        "table": pd.read_csv(table_path),
        "comparison": pd.read_csv(out_dir / "comparison.csv"),
        "html": (out_dir / "report.html").read_text(encoding="utf-8"),
    }


def test_table_carries_category_and_hit_cost(experiment):
    table = experiment["table"]
    for name, attrs, nlf, _, _, _ in POINTS:
        rows = table[table.file.str.contains(f"/{name}_b")]
        expected = CATEGORY.get(name, name)
        assert set(rows.category) == {expected}
        hits = attrs.get("instanton_hits", 0)
        assert set(rows.instanton_hits) == {hits}
        # A hit evaluates the action of its W x W patch (the delocalized one: all V plaquettes)
        # and counts as that many plaquettes over the V of one force evaluation, whatever the
        # file's measured hit_cost_lf says; a trajectory after which a hit was accepted counts
        # one more force evaluation (the refresh).
        size = attrs.get("instanton_size", 0)
        volume = LATTICE[0] * LATTICE[1]
        per_hit = (size * size if size else volume) / volume
        refreshed = 1.0 if hits and 0.3 * hits > 0 else 0.0
        per_traj = nlf + hits * per_hit + refreshed
        assert np.allclose(rows.lf_per_traj, per_traj)
        assert np.allclose(rows.cost_lf, per_traj * rows.tau_int)
    whmc = table[table.category == "whmc"]
    assert np.allclose(whmc.instanton_accept_rate, 0.3)
    assert table[table.category != "whmc"].instanton_accept_rate.isna().all()
    assert set(table.network.dropna()) == {"dense", "local"}
    assert set(table.integrator) == {"leapfrog"}
    assert {"charge", "charge_real", "charge_sq", "plaq"} <= set(table.observable)


def test_comparison_has_four_categories_and_both_ratios(experiment):
    table, comp = experiment["table"], experiment["comparison"]
    assert len(comp) == len(BETAS) * 2  # Q_Z and Q_R per beta
    for _, row in comp.iterrows():
        rows = table[(table.observable == row.observable) & np.isclose(table.beta, row.beta)]
        best = {}
        for category in CATEGORIES:
            points = rows[rows.category == category]
            assert row[f"{category}_n_points"] == len(points) > 0
            best[category] = points.loc[points.cost_lf.idxmin()]
            assert row[f"{category}_cost_lf"] == pytest.approx(best[category].cost_lf)
        for name, learned, base in (
            ("learned_vs_hmc", "l2hmc", "hmc"),
            ("learned_w_vs_whmc", "l2hmc_w", "whmc"),
        ):
            assert row[f"ratio_{name}_kind"] == "value"
            assert row[f"ratio_{name}"] == pytest.approx(best[base].cost_lf / best[learned].cost_lf)
            assert row[f"ratio_{name}_seconds"] == pytest.approx(
                best[base].seconds_per_indep / best[learned].seconds_per_indep
            )
            assert row[f"ratio_{name}_err"] > 0


def test_break_even_against_the_fastest_same_move_baseline(experiment):
    """Training seconds over the saving per independent sample against the point of the
    same-move baseline with the fewest seconds per independent sample (not the other move's)."""
    table, comp = experiment["table"], experiment["comparison"]
    for _, row in comp.iterrows():
        rows = table[(table.observable == row.observable) & np.isclose(table.beta, row.beta)]
        for learned, base in (("l2hmc", "hmc"), ("l2hmc_w", "whmc")):
            points = rows[rows.category == base]
            fastest = points.loc[points.seconds_per_indep.idxmin()]
            label = "HMC" if base == "hmc" else "winding HMC"
            assert row[f"{learned}_break_even_baseline"].startswith(
                f"{label} N_LF {int(fastest.nlf)}, eps {fastest.eps:.4g}"
            )
            if base == "whmc":  # the data make the fastest point another than the cheapest
                assert fastest.cost_lf > points.cost_lf.min()
            saving = fastest.seconds_per_indep - row[f"{learned}_seconds"]
            if saving > 0:
                assert row[f"{learned}_break_even_kind"] == "value"
                assert row[f"{learned}_break_even"] == pytest.approx(TRAINING_SECONDS / saving)
            else:
                assert row[f"{learned}_break_even_kind"] == "never"
                assert math.isinf(row[f"{learned}_break_even"])
    # The synthetic data have both cases: plain L2HMC pays off, L2HMC with winding never does.
    kinds = set(comp.l2hmc_break_even_kind) | set(comp.l2hmc_w_break_even_kind)
    assert kinds == {"value", "never"}
    assert "never (vs " in experiment["html"]


@pytest.mark.parametrize(
    ("base", "base_frozen", "learned", "learned_frozen", "kind"),
    [
        (2.0, False, 1.0, False, "value"),
        (1.0, False, 2.0, False, "never"),
        (1.0, False, 1.0, False, "never"),
        (2.0, True, 1.0, False, "upper bound"),
        (1.0, True, 2.0, False, "undetermined"),
        (2.0, False, 1.0, True, "lower bound"),
        (1.0, False, 2.0, True, "never"),
        (2.0, True, 1.0, True, "undetermined"),
    ],
)
def test_break_even_rules(base, base_frozen, learned, learned_frozen, kind):
    result = break_even(100.0, base, 0.1, base_frozen, learned, 0.1, learned_frozen)
    assert result.kind == kind
    if kind in ("value", "upper bound", "lower bound"):
        assert result.samples == pytest.approx(100.0 / (base - learned))
        assert result.error == pytest.approx(result.samples * math.hypot(0.1, 0.1) / 1.0)
    elif kind == "never":
        assert math.isinf(result.samples)
    else:
        assert math.isnan(result.samples)


def test_missing_categories_give_empty_cells(experiment):
    table = experiment["table"]
    plain = table[table.category.isin(["hmc", "l2hmc"])]
    comp = comparison_table(plain)
    assert len(comp) == len(BETAS) * 2
    assert (comp.whmc_n_points == 0).all() and (comp.l2hmc_w_n_points == 0).all()
    for column in ("whmc_cost_lf", "l2hmc_w_cost_lf", "ratio_learned_w_vs_whmc"):
        assert comp[column].isna().all()
    assert comp.ratio_learned_w_vs_whmc_kind.isna().all()
    assert (comp.ratio_learned_vs_hmc_kind == "value").all()
    # Only HMC: no learned columns filled, no error.
    only_hmc = comparison_table(table[table.category == "hmc"])
    assert only_hmc.ratio_learned_vs_hmc.isna().all() and only_hmc.l2hmc_break_even.isna().all()


def _paper_lines(fig):
    return [line for ax in fig.axes for line in ax.lines if line.get_gid() == "paper"]


def test_figure1_overlays_the_paper_on_16x16_only(experiment):
    table, comp = experiment["table"], experiment["comparison"]
    fig = fig_cost_vs_beta(table, comp)
    lines = _paper_lines(fig)
    paper = paper_points()
    assert len(lines) == paper.sampler.nunique() == 2
    for line, (sampler, pts) in zip(lines, paper.groupby("sampler", sort=False), strict=True):
        assert sampler in line.get_label()
        assert np.allclose(line.get_xydata(), pts[["beta", "cost"]].to_numpy())
        assert r"\mathbb{R}" in line.axes.get_title()  # on the Q_R panel, the paper's observable
    # Every category's best points are drawn, on both charges.
    for ax, observable in zip(fig.axes[:2], ("charge_real", "charge"), strict=True):
        drawn = {c.get_label(): c.lines[0].get_xydata() for c in ax.containers}
        block = comp[comp.observable == observable].sort_values("beta")
        for category, label in (
            ("hmc", "best HMC"),
            ("whmc", "best winding HMC"),
            ("l2hmc", "best L2HMC"),
            ("l2hmc_w", "best L2HMC + winding"),
        ):
            assert np.allclose(drawn[label][:, 1], block[f"{category}_cost_lf"])
    # The same experiment on 8x8: no published points.
    other = table.assign(lattice="8x8")
    assert _paper_lines(fig_cost_vs_beta(other, comparison_table(other))) == []


def test_charge_history_shows_each_category(experiment):
    comp = experiment["comparison"]
    chain_sets = [load_chain_set(p) for p in experiment["files"]]
    fig = fig_charge_history(comp, chain_sets)
    axes = [ax for ax in fig.axes if ax.lines]
    assert len(axes) == len(CATEGORIES)
    row = comp[(comp.observable == "charge")].sort_values("beta").iloc[-1]
    for ax, category in zip(axes, CATEGORIES, strict=True):
        best = load_chain_set(row[f"{category}_file"])
        assert np.array_equal(ax.lines[0].get_ydata(), best.values("charge")[0])


def _q2_table(tmp_path, beta_drawn):
    rng = np.random.default_rng(3)
    lattice, beta = (8, 8), 2.0
    charge = sector_chains(beta_drawn, lattice, 0.5, 16, 2000, rng)
    path = write_chain_file(
        tmp_path / f"q_{beta_drawn:g}.nc",
        charge,
        0.6 + 0.01 * ar1(0.5, 16, 2000, rng),
        lattice=lattice,
        beta=beta,
    )
    out = tmp_path / f"t_{beta_drawn:g}.csv"
    assert main(["analyze", str(path), "--out", str(out)]) == 0
    return pd.read_csv(out)


def test_charge_sq_check_passes_for_exact_sectors_and_fails_otherwise(tmp_path):
    exact = exact_charge_sq("U1", (8, 8), 2.0)
    good = charge_checks(_q2_table(tmp_path, 2.0)).iloc[0]
    assert good.exact == pytest.approx(exact.value)
    assert good.status == "pass" and abs(good.pull) < 4
    # Sectors drawn with the weights of beta = 1.6 (a wider distribution) in a beta = 2 file.
    bad = charge_checks(_q2_table(tmp_path, 1.6)).iloc[0]
    assert bad.status == "FAIL" and bad.pull > 4


def test_charge_sq_check_marks_frozen_chains(tmp_path):
    charge = np.repeat(np.arange(-4, 4, dtype=float)[:, None], 200, axis=1)
    path = write_chain_file(tmp_path / "stuck.nc", charge, 0.6 + 0.01 * np.ones_like(charge))
    out = tmp_path / "t.csv"
    assert main(["analyze", str(path), "--out", str(out)]) == 0
    check = charge_checks(pd.read_csv(out)).iloc[0]
    assert check.status == "frozen"
    assert exact_charge_sq("SU3", (4, 4, 4, 4), 1.0) is None


def test_exact_charge_sq_agrees_with_direct_integration():
    """<Q^2> on a 2x2 torus by brute force: the four wrapped plaquette angles sum to 2 pi Q, the
    first three are free, the fourth is fixed by Q (quadrature over the three free angles)."""
    n = 48
    phi = (np.arange(n) + 0.5) * 2 * np.pi / n - np.pi
    a, b, c = np.meshgrid(phi, phi, phi, indexing="ij")
    for beta in (0.7, 1.5):
        num = den = 0.0
        for q in range(-2, 3):
            last = 2 * np.pi * q - (a + b + c)
            inside = (last > -np.pi) & (last <= np.pi)
            weight = np.exp(beta * (np.cos(a) + np.cos(b) + np.cos(c) + np.cos(last))) * inside
            num += q**2 * weight.sum()
            den += weight.sum()
        assert exact_charge_sq("U1", (2, 2), beta).value == pytest.approx(num / den, rel=2e-3)
