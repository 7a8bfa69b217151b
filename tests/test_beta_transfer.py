"""Beta transfer in the analysis: the role of transfer chain files, a comparison that ignores
them, the transfer table and its place in the report, from synthetic chain files."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from chain_helpers import ar1, sector_chains, write_chain_file

from dlhmc.analysis.checks import exactness_checks
from dlhmc.analysis.comparison import comparison_table
from dlhmc.analysis.report_tables import fmt_err
from dlhmc.analysis.table import OPTIONAL_COLUMNS, main_rows
from dlhmc.analysis.transfer import transfer_html, transfer_table
from dlhmc.cli import main
from dlhmc.commands.report import read_table
from dlhmc.lattice.u1_exact import exact_plaquette

LATTICE = (8, 8)
N_CHAINS, N_TRAJ = 8, 1000
STEPS = 200
# name -> (beta, sampler, train_beta, training steps, training seconds, rho of the charges);
# rho None: the charges never change (a frozen chain set).
FILES = {
    "hmc_b2": (2.0, "hmc", None, None, None, 0.95),
    "hmc_b3": (3.0, "hmc", None, None, None, 0.95),
    "ladder_b2": (2.0, "l2hmc", 2.0, STEPS, 100.0, 0.7),
    "ladder_b3": (3.0, "l2hmc", 3.0, STEPS, 200.0, 0.7),
    # Decorrelates faster than the ladder's model: it would win the comparison if it competed.
    "none_b3": (3.0, "l2hmc", 2.0, STEPS, 100.0, 0.3),
    "retrained_b3": (3.0, "l2hmc", 3.0, STEPS // 10, 110.0, None),
}
TRANSFER = ("none_b3", "retrained_b3")
ROLE = {"none_b3": "transfer_none", "retrained_b3": "transfer_retrained"}


def _write(tmp_path, name, rng):
    beta, sampler, train_beta, steps, seconds, rho = FILES[name]
    charge = sector_chains(beta, LATTICE, 0.5 if rho is None else rho, N_CHAINS, N_TRAJ, rng)
    charge_real = 0.25 * ar1(0.5 if rho is None else rho, N_CHAINS, N_TRAJ, rng)
    if rho is None:
        charge = np.repeat(charge[:, :1], N_TRAJ, axis=1)
        charge_real = np.repeat(charge_real[:, :1], N_TRAJ, axis=1)
    attrs = {} if train_beta is None else {"train_beta": train_beta, "training_steps": steps}
    return write_chain_file(
        tmp_path / f"{name}.nc",
        charge,
        exact_plaquette(beta, LATTICE[0] * LATTICE[1]) + 0.002 * ar1(0.5, N_CHAINS, N_TRAJ, rng),
        sampler=sampler,
        lattice=LATTICE,
        beta=beta,
        nlf=10,
        eps=0.1,
        traj_per_second=20.0,
        charge_real=charge_real,
        training_seconds=seconds,
        extra_attrs=attrs,
    )


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("transfer")
    rng = np.random.default_rng(5)
    files = {name: _write(tmp_path, name, rng) for name in FILES}
    main_files = [str(p) for n, p in files.items() if n not in TRANSFER]
    table_path = tmp_path / "tauint.csv"
    argv = ["analyze", *main_files, "--transfer", *(str(files[n]) for n in TRANSFER),
            "--out", str(table_path), "--experiment", "bt"]  # fmt: skip
    assert main(argv) == 0
    out_dir = tmp_path / "report"
    argv = ["report", "--table", str(table_path), "--chains", *main_files,
            "--experiment", "bt", "--out-dir", str(out_dir)]  # fmt: skip
    assert main(argv) == 0
    return {
        "files": files,
        "table_path": table_path,
        "table": read_table(table_path, "bt"),
        "comparison": pd.read_csv(out_dir / "comparison.csv"),
        "html": (out_dir / "report.html").read_text(encoding="utf-8"),
    }


def _rows(table, name, observable="charge"):
    rows = table[table.file.str.endswith(f"/{name}.nc") & (table.observable == observable)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_role_column_from_the_option_and_train_beta(experiment):
    table = experiment["table"]
    for name, (_, sampler, train_beta, steps, _, _) in FILES.items():
        rows = table[table.file.str.endswith(f"/{name}.nc")]
        assert set(rows.role) == {ROLE.get(name, "main")}, name
        if sampler == "hmc":
            assert rows.train_beta.isna().all() and rows.training_steps.isna().all()
        else:
            assert (rows.train_beta == train_beta).all() and (rows.training_steps == steps).all()


def test_comparison_ignores_the_transfer_rows(experiment):
    table, comp = experiment["table"], experiment["comparison"]
    # The untrained transfer is the cheapest learned sampler at beta 3, yet not the one compared.
    assert _rows(table, "none_b3").cost_lf < _rows(table, "ladder_b3").cost_lf
    for observable in ("charge", "charge_real"):
        row = comp[(comp.beta == 3.0) & (comp.observable == observable)].iloc[0]
        ladder = _rows(table, "ladder_b3", observable)
        assert row.l2hmc_file == ladder.file and row.l2hmc_n_points == 1
        hmc = _rows(table, "hmc_b3", observable)
        assert row.ratio_learned_vs_hmc == pytest.approx(hmc.cost_lf / ladder.cost_lf)
    assert comparison_table(table).equals(comparison_table(main_rows(table)))


def test_transfer_table_numbers(experiment):
    table = experiment["table"]
    transfer = transfer_table(table)
    assert sorted(transfer.observable) == ["charge", "charge_real"]
    assert set(transfer.beta) == {3.0} and set(transfer.category) == {"l2hmc"}
    for _, row in transfer.iterrows():
        ladder, none, retrained = (
            _rows(table, n, row.observable) for n in ("ladder_b3", "none_b3", "retrained_b3")
        )
        for model, source in (("ladder", ladder), ("none", none), ("retrained", retrained)):
            assert row[f"{model}_cost_lf"] == source.cost_lf
            assert row[f"{model}_cost_lf_err"] == pytest.approx(source.cost_lf_err, nan_ok=True)
            assert row[f"{model}_frozen"] == source.frozen
            assert row[f"{model}_training_seconds"] == FILES[f"{model}_b3"][4]
            assert row[f"{model}_training_steps"] == FILES[f"{model}_b3"][3]
            assert row[f"{model}_train_beta"] == FILES[f"{model}_b3"][2]
        ratio = none.cost_lf / ladder.cost_lf
        assert row.ratio_none == pytest.approx(ratio)
        rel = np.hypot(none.cost_lf_err / none.cost_lf, ladder.cost_lf_err / ladder.cost_lf)
        assert row.ratio_none_err == pytest.approx(ratio * rel)
        assert row.ratio_none_kind == "value"
        # The retrained chains never move: their cost is a lower bound, and so is the ratio.
        assert retrained.frozen and not ladder.frozen
        assert row.ratio_retrained_kind == "lower bound"
        assert row.ratio_retrained == pytest.approx(retrained.cost_lf / ladder.cost_lf)


@pytest.mark.parametrize(
    ("transfer_frozen", "ladder_frozen", "kind"),
    [
        (False, False, "value"),
        (True, False, "lower bound"),
        (False, True, "upper bound"),
        (True, True, "undetermined"),
    ],
)
def test_transfer_ratio_bounds(transfer_frozen, ladder_frozen, kind):
    """A frozen transferred model costs at least its bound: the ratio is a lower bound; a frozen
    ladder model makes it an upper bound. Of two ladder files the cheaper one is compared."""
    rows = [
        ("main", 2.0, 40.0, ladder_frozen),
        ("main", 2.0, 90.0, False),
        ("transfer_none", 1.0, 80.0, transfer_frozen),
    ]
    table = pd.DataFrame(
        [
            {
                "experiment": "e", "group": "U1", "lattice": "8x8", "beta": 2.0,
                "category": "l2hmc", "role": role, "observable": "charge", "cost_lf": cost,
                "cost_lf_err": 0.1 * cost, "frozen": frozen, "seconds_per_indep": cost / 100,
                "seconds_per_indep_err": cost / 1000, "training_seconds": 10.0,
                "training_steps": 100, "train_beta": train_beta, "file": f"{role}{cost}.nc",
            }
            for role, train_beta, cost, frozen in rows
        ]
    )  # fmt: skip
    row = transfer_table(table).iloc[0]
    assert row.ladder_cost_lf == 40.0 and row.none_cost_lf == 80.0
    assert np.isnan(row.retrained_cost_lf) and pd.isna(row.ratio_retrained_kind)
    assert row.ratio_none_kind == kind
    if kind == "undetermined":
        assert np.isnan(row.ratio_none)
    else:
        assert row.ratio_none == pytest.approx(2.0)
    html = transfer_html(transfer_table(table))
    assert html.count("<tr>") == 1 + 2  # header, ladder, not retrained


def test_report_shows_the_transfer_table(experiment):
    html, table = experiment["html"], experiment["table"]
    section = html[html.index("<h2>Beta transfer") :]
    section = section[: section.index("<h2>", 4)]
    for observable in ("charge", "charge_real"):
        row = transfer_table(table).set_index("observable").loc[observable]
        for model in ("ladder", "none", "retrained"):
            prefix = "≥ " if row[f"{model}_frozen"] else ""
            cost = fmt_err(row[f"{model}_cost_lf"], row[f"{model}_cost_lf_err"], prefix)
            assert f"<td>{cost}</td>" in section
        ratio = fmt_err(row.ratio_none, row.ratio_none_err)
        assert f"<td>{ratio}</td>" in section
        bound = fmt_err(row.ratio_retrained, row.ratio_retrained_err, "≥ ")
        assert f"<td>{bound}</td>" in section
    assert section.count("model of the beta below, retrained") == 2
    # The tau_int table and the checks keep the transfer rows, marked.
    assert "L2HMC [transfer]" in html and "L2HMC [transfer, retrained]" in html


def test_transfer_rows_get_sector_checks(experiment):
    """The model transferred as it is tunnels: its sector weights are checked (and pass); the
    retrained one never changes its charge: its sector weights get no verdict."""
    checks = exactness_checks(experiment["table"])
    sectors = checks[checks.observable.str.startswith("sector_")]
    none = sectors[sectors.role == "transfer_none"].set_index("observable")
    assert none.loc[["sector_0", "sector_1"], "status"].eq("pass").all()
    retrained = sectors[sectors.role == "transfer_retrained"]
    assert len(retrained) and retrained.status.eq("frozen").all()
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", experiment["html"], flags=re.S)
    listed = [r for r in rows if '<td class="text">P(|Q_Z| = 1)</td>' in r]
    assert any('<td class="text">L2HMC [transfer]</td>' in r for r in listed)
    assert not any("[transfer, retrained]" in r for r in listed)


def test_no_transfer_files_no_transfer_section(experiment, tmp_path):
    table = experiment["table"]
    assert transfer_html(transfer_table(main_rows(table))) == ""
    # A table written before roles existed: every row is main and nothing is a transfer.
    old = tmp_path / "old.csv"
    table[table.role == "main"].drop(columns=list(OPTIONAL_COLUMNS)).to_csv(old, index=False)
    rows = read_table(old, "bt")
    assert set(rows.role) == {"main"} and len(rows) == len(main_rows(table))
    assert transfer_table(rows).empty


def test_transfer_files_must_be_trained_models_with_train_beta(experiment, tmp_path, capsys):
    files = experiment["files"]
    bare = _write(tmp_path, "ladder_b3", np.random.default_rng(1))
    # A chain file of an L2HMC model written before train_beta was recorded.
    with xr.open_dataset(bare, engine="h5netcdf") as ds:
        data = ds.load()
    del data.attrs["train_beta"]
    data.to_netcdf(tmp_path / "old_l2hmc.nc", engine="h5netcdf")
    cases = [(files["hmc_b3"], "an HMC file"), (tmp_path / "old_l2hmc.nc", "'train_beta'")]
    for path, words in cases:
        argv = ["analyze", str(files["ladder_b3"]), "--transfer", str(path),
                "--out", str(tmp_path / "t.csv")]  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err and str(path) in err
    assert not (tmp_path / "t.csv").exists()
