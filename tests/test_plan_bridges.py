"""Bridges and replica exchange in the plan (experiment keys ``bridges`` and ``trex``), without
Snakemake: the ensemble each bridge trains on, the jobs and their options, the problems named by
key, and that adding them changes no existing job.  Two dry runs at the end check the same
through ``snakemake -n``."""

from __future__ import annotations

import copy
import re
from collections import Counter

import pytest
from test_plan import SCHEMA, SCHEMA_PATH, experiment, job
from test_plan_flows import _make_outputs
from workflow_helpers import planned_jobs, snakemake, tiny_config, write_config

from dlhmc.config_check import check_values
from dlhmc.plan.bridges import (
    FLOW_GROUPS,
    ensemble_label,
    ensemble_point,
    switches_as_mappings,
)
from dlhmc.plan.experiments import check_experiment, load_experiments
from dlhmc.plan.jobs import Plan

TREX = {"nlf": 2, "eps": 0.25, "chains": 4, "trajectories": 24, "therm": 4}
KEY = "experiments.tiny"


def bridge_experiment(**changes) -> dict:
    """The tiny experiment with ``changes``; ``bridges: true`` / ``false`` become a mapping or
    nothing first, as the workflow does before the schema check (switches_as_mappings)."""
    cfg = {"experiments": {"tiny": dict(changes)}}
    switches_as_mappings(cfg)
    changes = cfg["experiments"]["tiny"]
    if changes.get("trex", {}) is None:
        del changes["trex"]
    return experiment(**changes)


def config(**changes) -> dict:
    return {"experiments": {"tiny": bridge_experiment(**changes)}}


def bridge_plan(**changes) -> Plan:
    changes.setdefault("bridges", True)
    changes.setdefault("trex", dict(TREX))
    return Plan(load_experiments(config(**changes), SCHEMA, []))


def problems(**changes) -> list[str]:
    exp = bridge_experiment(**changes)
    return check_values("tiny", exp) + check_experiment("tiny", exp)


def exchange_job(exchange="trex", lattice="4x4"):
    return job(lattice=lattice, exchange=exchange)


# ---- settings and the ensemble -----------------------------------------------------------------


def test_bridges_true_is_the_schemas_defaults():
    p = bridge_plan()
    assert p.experiments["tiny"]["bridges"] == {"save_every": 10, "local_period": 4}
    q = bridge_plan(bridges={"steps": 5, "save_every": 3})
    assert q.experiments["tiny"]["bridges"] == {"steps": 5, "save_every": 3, "local_period": 4}
    off = bridge_plan(bridges=False, trex=None)
    assert "bridges" not in off.experiments["tiny"]


def test_the_ensemble_is_the_plain_point_that_moves_farthest():
    """Tiny grid: nlf 2 x length 0.5, 1.0 -> eps 0.25, 0.5; the longer trajectory wins; an
    explicit bridges.hmc point is used as given, and winding points never count."""
    exp = bridge_plan().experiments["tiny"]
    assert ensemble_point(exp) == (2, "0.5", "leapfrog", 0, 0)
    assert ensemble_label(exp) == "nlf2_eps0.5_save10"
    hits = {"points": [{"nlf": 8, "eps": 0.5, "instanton_hits": 1}]}
    assert ensemble_point(bridge_plan(hmc=hits).experiments["tiny"])[:2] == (2, "0.5")
    chosen = bridge_plan(bridges={"hmc": {"nlf": 4, "eps": 0.1}, "save_every": 2})
    assert ensemble_label(chosen.experiments["tiny"]) == "nlf4_eps0.1_save2"
    assert chosen.hmc_options(job(point="nlf4_eps0.1_save2")) == "--nlf 4 --eps 0.1 --save-every 2"


def test_the_bridge_group_list_is_the_flows():
    from dlhmc.flows.model import GROUPS

    assert tuple(GROUPS) == FLOW_GROUPS


# ---- jobs --------------------------------------------------------------------------------------


def test_bridge_training_and_derivative_jobs():
    p = bridge_plan(bridges={"steps": 5, "flow_layers": 2, "hidden": [4]})
    wc = job(beta="2.0")
    ensemble = "results/tiny/4x4/beta{}/hmc/nlf2_eps0.5_save10.nc"
    # The bridge trains on an ensemble of its own (another seed); derivatives use the other one.
    assert p.bridge_data(wc) == "results/tiny/4x4/beta1.0/hmc/nlf2_eps0.5_save10_train.nc"
    assert p.derivative_chains(wc) == [ensemble.format("1.0"), ensemble.format("2.0")]
    seeds = {point: p.hmc_seed(job(point=point)) for point in
             ("nlf2_eps0.5", "nlf2_eps0.5_save10", "nlf2_eps0.5_save10_train")}
    assert seeds["nlf2_eps0.5"] == seeds["nlf2_eps0.5_save10"] != seeds["nlf2_eps0.5_save10_train"]
    assert p.hmc_options(job(point="nlf2_eps0.5_save10_train")).endswith("--save-every 10")

    class Input:
        data = ensemble.format("1.0")

    options = p.bridge_train_options(wc, Input) + " "
    assert options.startswith(f"--sampler bridge --beta-from 1.0 --data {Input.data} ")
    assert "--steps 5 " in options and "--flow-layers 2 " in options and "--hidden 4 " in options
    assert "--save-every" not in options and "--hmc" not in options
    assert p.derivative_chains(wc) == [ensemble.format(b) for b in ("1.0", "2.0")]
    assert p.bridge_checkpoint(wc) == "results/tiny/4x4/beta2.0/bridge/model/checkpoint.pt"
    assert p.derivative_files(wc) == ["results/tiny/4x4/beta2.0/bridge/derivative.csv"]
    with pytest.raises(ValueError, match=r"experiments\.tiny\.betas: no bridge leads into "
                       r"beta 1\.0 \(bridges lead into 2\.0\)"):
        p.bridge_data(job(beta="1.0"))


def test_other_spacings_add_one_bridge_and_derivative_per_beta_and_spacing():
    """bridges.spacings: a bridge from every beta b of the ladder to b + s (trained on b's
    training ensemble, measured on the ensembles at b and b + s) beside the ladder's own; the
    replica exchange keeps the ladder's bridges."""
    p = bridge_plan(bridges={"spacings": [0.25]})
    ensemble = "results/tiny/4x4/beta{}/hmc/nlf2_eps0.5_save10{}.nc"
    assert p.derivative_files(job()) == [
        f"results/tiny/4x4/beta{b}/bridge/derivative.csv" for b in ("2.0", "1.25", "2.25")
    ]
    top = job(beta="2.25")
    assert p.bridge_data(top) == ensemble.format("2.0", "_train")
    assert p.derivative_chains(top) == [ensemble.format(b, "") for b in ("2.0", "2.25")]
    assert p.bridge_checkpoint(top) == "results/tiny/4x4/beta2.25/bridge/model/checkpoint.pt"
    assert p.hmc_options(job(beta="2.25", point="nlf2_eps0.5_save10")).endswith("--save-every 10")
    assert p.exchange_bridges(exchange_job()) == [
        "results/tiny/4x4/beta2.0/bridge/model/checkpoint.pt"]
    assert "--spacings" not in p.bridge_train_options(top, type("Input", (), {"data": "d.nc"}))
    # b + s on the ladder is the ladder's own bridge: one job, not two.
    same = bridge_plan(bridges={"spacings": [1.0, 0.5]})
    assert same.derivative_files(job()) == [
        f"results/tiny/4x4/beta{b}/bridge/derivative.csv" for b in ("2.0", "3.0", "1.5", "2.5")
    ]
    # The label of b + s is the sum's shortest text, not its binary rounding.
    odd = bridge_plan(betas=[1.1, 2.2], bridges={"spacings": [0.1]})
    assert [f.split("/")[3] for f in odd.derivative_files(job())] == [
        "beta2.2", "beta1.2", "beta2.3"]


def test_exchange_jobs_pt_and_trex():
    p = bridge_plan(lattices=[[4, 4], [6, 6]], betas=[1.0, 1.5, 2.0])
    trex = p.exchange_bridges(exchange_job())
    assert trex == [f"results/tiny/4x4/beta{b}/bridge/model/checkpoint.pt" for b in ("1.5", "2.0")]
    assert p.exchange_bridges(exchange_job("pt")) == []
    assert p.exchange_options(exchange_job("pt")) == (
        "--betas 1.0 1.5 2.0 --nlf 2 --eps 0.25 --chains 4 --trajectories 24 --therm 4"
    )
    assert p.exchange_dirs(job()) == [
        f"results/tiny/{v}/{k}" for k in ("pt", "trex") for v in ("4x4", "6x6")
    ]
    assert len(p.exchange_chains(job())) == 2 * 2 * 3
    assert "results/tiny/6x6/trex/beta1.5.nc" in p.exchange_chains(job())


def test_trex_without_bridges_is_plain_parallel_tempering():
    p = bridge_plan(bridges=False)
    assert p.exchange_dirs(job()) == ["results/tiny/4x4/pt"]
    assert p.derivative_files(job()) == []
    with pytest.raises(ValueError, match=r"experiments\.tiny\.bridges: not set, so there is no"):
        p.exchange_options(exchange_job("trex"))
    q = bridge_plan(trex=None)
    assert q.exchange_dirs(job()) == [] and q.exchange_chains(job()) == []
    with pytest.raises(ValueError, match=r"experiments\.tiny\.trex: not set"):
        q.exchange_options(exchange_job("pt"))


def test_adding_bridges_and_trex_changes_no_existing_job():
    """Every job of the config without them keeps its inputs and options (no rerun); the
    analysis gains the exchange chains and the report the derivative and exchange files."""
    before = bridge_plan(bridges=False, trex=None)
    after = bridge_plan()
    for beta in ("1.0", "2.0"):
        wc = job(beta=beta)
        for method in ("train_init", "train_options", "infer_checkpoint", "infer_options"):
            assert getattr(before, method)(wc) == getattr(after, method)(wc), method
        for point in ("nlf2_eps0.25", "nlf2_eps0.5"):
            pw = job(beta=beta, point=point)
            assert before.hmc_options(pw) == after.hmc_options(pw)
    assert before.all_chains(job()) == after.all_chains(job())
    assert before.final_targets() == after.final_targets()
    with pytest.raises(ValueError, match="is not a grid point"):
        before.hmc_options(job(point="nlf2_eps0.5_save10"))


# ---- problems named by key ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"betas": [1.0], "bridges": True},
         f"{KEY}.bridges: needs at least 2 betas"),
        ({"betas": [1.0], "trex": {}}, f"{KEY}.trex: needs at least 2 betas"),
        ({"group": "SU3", "lattices": [[2, 2, 2, 2]], "bridges": True},
         f"{KEY}.bridges: bridge flows are implemented for U1 only, got group SU3"),
        ({"bridges": {"save_every": 25}},
         f"{KEY}.bridges.save_every: 25 keeps no configuration of the 24 recorded HMC"),
        ({"betas": [1.0, 1.5, 2.0], "bridges": {"spacings": [1.0]}},
         f"{KEY}.bridges.spacings: beta 2.0 is reached from 1.5 and from 1.0; one bridge"),
        ({"betas": [1.0, 2.0], "bridges": {"spacings": [0.25, 1.25]}},
         f"{KEY}.bridges.spacings: beta 2.25 is reached from 2.0 and from 1.0"),
        ({"bridges": {"steps": 5, "warmup": 5}},
         f"{KEY}.bridges.warmup: must be smaller than bridges.steps (5), got 5"),
        ({"lattices": [[5, 5]], "bridges": True},
         f"{KEY}.lattices[0]: the local link masks of period 4 need extents other than 4k + 1"),
        ({"bridges": {"local_period": 2}, "lattices": [[3, 4]]},
         f"{KEY}.lattices[0]: the local link masks of period 2 need even"),
        ({"hmc": {"nlf": [2], "length": [1.0], "instanton_hits": [1]}, "bridges": True},
         f"{KEY}.bridges.hmc: the HMC grid has no plain leapfrog point"),
        ({"bridges": {"steps": 5.0}}, f"{KEY}.bridges.steps: expected an integer, got 5.0"),
        ({"trex": {"trajectories": 5}}, f"{KEY}.trex.trajectories: the analysis needs at least"),
        ({"trex": {"eps": float("nan")}}, f"{KEY}.trex.eps: expected a finite number"),
        ({"variants": {"b": {"sampler": "bridge"}}},
         f"{KEY}.variants.b.sampler: a bridge joins two betas and is no learner"),
    ],
)  # fmt: skip
def test_each_bridge_problem_names_its_key(changes, expected):
    found = problems(**changes)
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"bridges": "yes"}, r"experiments\.tiny\.bridges: 'yes' is not of type 'boolean', "),
        ({"bridges": {"steps": 0}}, r"experiments\.tiny\.bridges\.steps: 0 is less than"),
        ({"bridges": {"spacings": [0]}},
         r"experiments\.tiny\.bridges\.spacings\[0\]: 0 is less than or equal"),
        ({"bridges": {"spacings": [0.5, 0.5]}},
         r"experiments\.tiny\.bridges\.spacings: \[0\.5, 0\.5\] has non-unique"),
        ({"bridges": {"stps": 3}}, r"experiments\.tiny\.bridges: Additional properties .*stps"),
        ({"bridges": {"hmc": {"nlf": 3}}}, r"experiments\.tiny\.bridges\.hmc: 'eps' is a"),
        ({"trex": {"swap_every": 0}}, r"experiments\.tiny\.trex\.swap_every: 0 is less than"),
        ({"trex": True}, r"experiments\.tiny\.trex: True is not of type 'object'"),
    ],
)
def test_schema_errors_name_the_key(tmp_path, changes, expected):
    """The config check the workflow runs first (dlhmc check-config runs the same)."""
    from dlhmc.commands.check_config import problems as file_problems

    cfg = tiny_config()
    cfg["experiments"]["tiny"].update(copy.deepcopy(changes))
    path = write_config(tmp_path / "bad.yaml", cfg)
    found = file_problems(path, SCHEMA_PATH)
    assert any(re.search(expected, p) for p in found), found


def test_the_schema_states_the_commands_ranges():
    """bridges holds dlhmc train settings, trex dlhmc trex settings: their ranges and choices
    (and the one default stated, local_period) are the commands'."""
    import test_settings_sources as sources

    from dlhmc import settings

    sections = {"bridges": (settings.TrainSettings, settings.RunOptions)}
    if hasattr(settings, "TrexSettings"):
        sections["trex"] = (settings.TrexSettings,)
    checked = set()
    for section, classes in sections.items():
        properties = SCHEMA["$defs"][section]["properties"]
        for cls in classes:
            for f in settings.option_fields(cls):
                if f.name in properties:
                    sources.test_schema_states_the_settings_default(section, f, properties[f.name])
                    sources.test_schema_states_the_settings_choices_and_range(
                        section, f, properties[f.name]
                    )
                    checked.add(f"{section}.{f.name}")
    assert {"bridges.steps", "bridges.flow_layers", "bridges.local_period"} <= checked


# ---- dry runs ----------------------------------------------------------------------------------


def _bridge_config() -> dict:
    cfg = tiny_config()
    cfg["experiments"]["tiny"]["bridges"] = True
    cfg["experiments"]["tiny"]["trex"] = dict(TREX)
    return cfg


@pytest.mark.parametrize(("spacing", "hmc", "bridges"), [(None, 7, 1), (0.5, 10, 3)])
def test_dry_run_of_bridges_and_trex(tmp_path, spacing, hmc, bridges):
    """One snakemake -n of the tiny config with both: every job of the plain config plus the
    ensembles, the bridge, the derivative, PT and T-REX; with a spacing of 0.5 also the bridges
    1 -> 1.5 and 2 -> 2.5, the training ensemble at 2 and the ensembles at 1.5 and 2.5."""
    cfg = _bridge_config()
    if spacing is not None:
        cfg["experiments"]["tiny"]["bridges"] = {"spacings": [spacing]}
    result = snakemake("-n", "--configfile", str(write_config(tmp_path / "b.yaml", cfg)),
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Counter(rule for rule, _ in planned_jobs(result.stdout)) == {
        "train": 2, "infer": 2, "hmc": hmc, "bridge_train": bridges, "derivative": bridges,
        "trex": 2, "analyze": 1, "report": 1, "all": 1,
    }  # fmt: skip


@pytest.mark.slow
def test_dry_run_adding_bridges_and_trex_to_a_finished_run_adds_only_their_jobs(tmp_path):
    """With every file of the plain tiny config in place, bridges and trex plan the ensembles,
    the bridge, the derivative, PT and T-REX, and the analysis again, nothing else; with the
    commands of the contract (slow: three Snakemake runs, 15-35 s)."""
    cfg = write_config(tmp_path / "plain.yaml", tiny_config())
    _make_outputs(tmp_path, cfg)
    cfg = write_config(tmp_path / "bridges.yaml", _bridge_config())
    result = snakemake("-n", "-p", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert Counter(rule for rule, _ in jobs) == {
        "hmc": 3, "bridge_train": 1, "derivative": 1, "trex": 2, "analyze": 1, "report": 1,
        "all": 1,
    }  # fmt: skip
    assert sorted(w["point"] for r, w in jobs if r == "hmc") == [
        "nlf2_eps0.5_save10", "nlf2_eps0.5_save10", "nlf2_eps0.5_save10_train"]
    assert {w["exchange"] for r, w in jobs if r == "trex"} == {"pt", "trex"}
    out = result.stdout
    assert (
        "--beta 2.0 --sampler bridge --beta-from 1.0 --data "
        "results/tiny/4x4/beta1.0/hmc/nlf2_eps0.5_save10_train.nc " in out
    )
    assert (
        "dlhmc derivative --chains results/tiny/4x4/beta1.0/hmc/nlf2_eps0.5_save10.nc "
        "results/tiny/4x4/beta2.0/hmc/nlf2_eps0.5_save10.nc --bridge "
        "results/tiny/4x4/beta2.0/bridge/model --out " in out
    )
    assert "--bridges results/tiny/4x4/beta2.0/bridge/model " in out
    assert "--out-dir results/tiny/4x4/pt " in out and "--swap-every" not in out
    assert (
        "--derivatives results/tiny/4x4/beta2.0/bridge/derivative.csv "
        "--exchange results/tiny/4x4/pt results/tiny/4x4/trex " in out
    )
