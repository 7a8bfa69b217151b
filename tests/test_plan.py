"""The workflow's plan (dlhmc.plan) without Snakemake: checks, grid, paths, jobs, the config table.

``tests/test_workflow_config.py`` runs the same rules through ``snakemake -n``, which is what a
user sees; here each rule is called directly, which is fast and shows which function owns it.
The rules the workflow shares with the commands are tested from both sides.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import yaml
from snakemake.utils import validate
from workflow_helpers import REPO, TINY_CONFIG

from dlhmc.analysis.registry import REPORT_FIGURES, REPORT_TABLES
from dlhmc.config_check import schedule_problems
from dlhmc.groups import (
    check_instanton_size,
    groups_with,
    instanton_size_problem,
    resolve_integrator,
)
from dlhmc.plan import schema_docs
from dlhmc.plan.experiments import (
    check_experiment,
    load_experiments,
    transfer_train_settings,
)
from dlhmc.plan.hmc_grid import hmc_options, hmc_points
from dlhmc.plan.jobs import Plan
from dlhmc.plan.paths import beta_label, eps_label, lattice_label, lattice_shape

SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def experiment(**changes) -> dict:
    """The tiny experiment with ``changes`` (section dicts merged), as the schema fills it."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    exp = config["experiments"]["tiny"]
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(exp.get(key), dict):
            exp[key].update(value)
        else:
            exp[key] = value
    validate(config, str(SCHEMA_PATH))
    return exp


def plan(**changes) -> Plan:
    return Plan(load_experiments({"experiments": {"tiny": experiment(**changes)}}, SCHEMA, []))


def job(beta="2.0", lattice="4x4", **fields) -> SimpleNamespace:
    return SimpleNamespace(exp="tiny", lattice=lattice, beta=beta, **fields)


# ---- labels -----------------------------------------------------------------------------------


def test_labels_are_stable_texts_of_the_numbers():
    assert [beta_label(b) for b in (4, 4.0, 4.25, 1e-3)] == ["4.0", "4.0", "4.25", "0.001"]
    assert lattice_label([16, 8]) == "16x8" and lattice_shape("16x8") == [16, 8]
    assert [eps_label(x) for x in (0.5, 1 / 3, 2.0)] == ["0.5", "0.333333", "2"]


# ---- the checks of an experiment --------------------------------------------------------------


def test_the_tiny_experiment_passes():
    assert check_experiment("tiny", experiment()) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"train": {"warmup": 6}},
         "experiments.tiny.train.warmup: must be smaller than train.steps (6), got 6"),
        ({"train": {"anneal_from": 0.5, "anneal_steps": 6}},
         "experiments.tiny.train.anneal_steps: must be smaller than train.steps (6), got 6"),
        ({"betas": [2.0, 1.0]}, "experiments.tiny.betas: must be strictly increasing"),
        ({"lattices": [[4, 4, 4]]}, "experiments.tiny.lattices[0]: U1 needs 2 extents"),
        ({"lattices": [[4, 4], [4, 4]]}, "experiments.tiny.lattices: duplicate volumes"),
        ({"train": {"lattice": [4, 4]}}, "experiments.tiny.train.lattice: only a network: local"),
        ({"hmc": {"instanton_hits": [1], "instanton_size": [5]}},
         "experiments.tiny.hmc.instanton_size: 5 must be 0 (delocalized) or 2..4"),
        ({"hmc": {"instanton_hits": [0, 3], "instanton_size": [1]}},
         "experiments.tiny.hmc.instanton_size: 1 must be 0 (delocalized) or 2..4"),
        ({"group": "SU3", "lattices": [[2, 2, 2, 2]], "hmc": {"instanton_hits": [2]}},
         "experiments.tiny.hmc.instanton_hits: the instanton move of winding HMC exists for U1"),
        ({"group": "SU3", "lattices": [[2, 2, 2, 2]], "variants": {"w": {"winding": 1}}},
         "experiments.tiny.variants.w.winding: a topological translation exists for "
         f"{', '.join(groups_with('winding'))} only"),
        ({"group": "SU3", "lattices": [[2, 2, 2, 2]],
          "variants": {"s": {"network": "local", "local_conv": "separable"}}},
         "experiments.tiny.variants.s.local_conv: local_conv separable (depthwise-separable "
         "convolutions) exists for U1 only"),
        ({"beta_transfer": 0.1, "train": {"anneal_from": 0.5}},
         "experiments.tiny.beta_transfer: 0.1 of train.steps is 1 step, too few to anneal"),
    ],
)  # fmt: skip
def test_each_check_names_its_key(changes, expected):
    problems = check_experiment("tiny", experiment(**changes))
    assert any(p.startswith(expected) for p in problems), problems


def test_full_local_convolutions_pass_for_every_group():
    """local_conv full is the one kind every group has: only separable is group-specific."""
    su3 = {"group": "SU3", "lattices": [[2, 2, 2, 2]]}
    local = {"network": "local", "local_conv": "full"}
    assert check_experiment("tiny", experiment(**su3, variants={"f": local})) == []


def test_an_empty_hmc_grid_is_refused():
    exp = experiment()
    del exp["hmc"]["nlf"], exp["hmc"]["length"]
    assert check_experiment("tiny", exp) == [
        "experiments.tiny.hmc: no grid points; give nlf and length, or points"
    ]


def test_an_instanton_size_is_checked_only_with_hits():
    """Plain HMC has no patch: sizes are not checked when every hit count is 0."""
    assert check_experiment("tiny", experiment(hmc={"instanton_size": [7]})) == []


def test_load_experiments_reports_every_problem_and_resolves_the_hmc_lengths():
    config = {"experiments": {"tiny": experiment(), "bad": experiment(betas=[3.0, 1.0])}}
    config["experiments"]["bad"]["variants"] = {"v": {"windng": 1}}
    with pytest.raises(ValueError, match="Invalid config") as info:
        load_experiments(config, SCHEMA, [])
    # Variants failing the schema come first; the other checks may assume the schema's types.
    assert "experiments.bad.variants.v: Additional properties" in str(info.value)
    assert "betas" not in str(info.value)
    del config["experiments"]["bad"]["variants"]
    with pytest.raises(ValueError, match=r"experiments\.bad\.betas: must be strictly increasing"):
        load_experiments(config, SCHEMA, [])
    del config["experiments"]["bad"]
    tiny = load_experiments(config, SCHEMA, [])["tiny"]
    assert {k: tiny["hmc"][k] for k in ("chains", "trajectories", "therm")} == {
        k: tiny["infer"][k] for k in ("chains", "trajectories", "therm")
    }
    assert "chains" not in config["experiments"]["tiny"]["hmc"], "the config is not modified"


def test_load_experiments_reports_keys_given_twice(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("experiments:\n  tiny:\n    seed: 1\n    seed: 2\n")
    config = {"experiments": {"tiny": experiment()}}
    with pytest.raises(ValueError, match=r"experiments\.tiny\.seed: duplicated key"):
        load_experiments(config, SCHEMA, [path])


# ---- the rules shared with the commands -------------------------------------------------------


def test_the_instanton_size_rule_is_one_function_for_workflow_and_sampler():
    assert instanton_size_problem(0, [4, 6]) is None and instanton_size_problem(4, [4, 6]) is None
    assert "1x1 patch" in instanton_size_problem(1, [4, 6])
    assert "2..4" in instanton_size_problem(5, [4, 6])
    from dlhmc.lattice import u1_instanton

    assert u1_instanton.check_instanton_size is check_instanton_size
    with pytest.raises(ValueError, match=r"^instanton_size 5 must be 0 \(delocalized\) or 2..4"):
        check_instanton_size((4, 6), 5)


def test_the_schedule_rule_names_the_steps_as_the_caller_does():
    assert schedule_problems(10, None, 0.5, None, "--steps") == []
    assert schedule_problems(10, 9, 1.0, 10, "--steps") == []  # no annealing: any anneal_steps
    assert schedule_problems(10, 10, 0.5, 12, "train.steps") == [
        ("warmup", "must be smaller than train.steps (10), got 10"),
        ("anneal_steps", "must be smaller than train.steps (10), got 12"),
    ]


def test_auto_is_the_groups_integrator_in_files_and_command_lines():
    assert resolve_integrator("U1", "auto") == "leapfrog"
    assert resolve_integrator("SU3", "auto") == "omelyan"
    assert resolve_integrator("SU3", "leapfrog") == "leapfrog"
    su3 = experiment(group="SU3", lattices=[[2, 2, 2, 2]], hmc={"integrator": ["auto", "leapfrog"]})
    points = hmc_points(su3)
    assert set(points) == {"nlf2_eps0.25_omelyan", "nlf2_eps0.5_omelyan", "nlf2_eps0.25",
                           "nlf2_eps0.5"}  # fmt: skip
    # The group's own integrator is not named: `dlhmc hmc --integrator auto` picks it.
    assert hmc_options("SU3", points["nlf2_eps0.5_omelyan"]) == "--nlf 2 --eps 0.5"
    assert hmc_options("SU3", points["nlf2_eps0.5"]) == "--nlf 2 --eps 0.5 --integrator leapfrog"


def test_explicit_points_with_their_own_move_are_not_crossed_with_the_grid():
    exp = experiment(hmc={"points": [{"nlf": 4, "eps": 0.1, "instanton_hits": 3},
                                     {"nlf": 4, "eps": 0.2}]})  # fmt: skip
    points = hmc_points(exp)
    assert set(points) == {"nlf2_eps0.25", "nlf2_eps0.5", "nlf4_eps0.2", "nlf4_eps0.1_hits3_size0"}
    assert hmc_options("U1", points["nlf4_eps0.1_hits3_size0"]) == (
        "--nlf 4 --eps 0.1 --instanton-hits 3 --instanton-size 0"
    )


# ---- the jobs ---------------------------------------------------------------------------------


def test_each_beta_starts_from_the_model_below_on_its_ladder():
    p = plan(variants={"wind": {"winding": 1}})
    assert p.train_init(job(beta="1.0")) == []
    assert p.train_init(job(variant="wind")) == [
        f"results/tiny/4x4/beta1.0/learned/wind/model/{name}"
        for name in ("checkpoint.pt", "metrics.csv", "config.yaml")
    ]
    assert "--winding 1" in p.train_options(job(variant="wind"))
    assert "--winding" not in p.train_options(job())
    with pytest.raises(ValueError, match=r"experiments\.tiny\.betas: beta 9.0 is not in the"):
        p.train_init(job(beta="9.0"))
    with pytest.raises(ValueError, match=r"experiments\.tiny\.variants: no variant 'x'"):
        p.train_settings(job(variant="x"))


def test_a_local_model_trained_on_one_volume_samples_every_volume():
    p = plan(lattices=[[4, 4], [6, 6]], variants={"loc": {"network": "local", "lattice": [4, 4]}})
    sampled = job(lattice="6x6", variant="loc")
    assert p.infer_checkpoint(sampled) == "results/tiny/4x4/beta2.0/learned/loc/model/checkpoint.pt"
    assert p.infer_lattice_option(sampled) == "--lattice 6 6"
    assert p.infer_lattice_option(job(lattice="6x6")) == ""
    assert p.train_volumes("tiny", "loc") == ["4x4"] and p.train_volumes("tiny") == ["4x4", "6x6"]


def test_the_beta_transfer_retrains_briefly_from_the_model_below():
    exp = experiment(betas=[1.0, 2.0, 3.0], beta_transfer=0.5,
                     train={"warmup": 2, "anneal_from": 0.5, "anneal_steps": 4})  # fmt: skip
    shortened = transfer_train_settings(exp)
    assert (shortened["steps"], shortened["warmup"], shortened["anneal_steps"]) == (3, 1, 2)
    p = Plan({"tiny": exp})
    below = "results/tiny/4x4/beta1.0/model/checkpoint.pt"
    assert p.transfer_checkpoint(job(stage="none")) == below
    assert p.transfer_checkpoint(job(stage="retrained")) == (
        "results/tiny/4x4/beta2.0/transfer/model/checkpoint.pt"
    )
    assert p.transfer_chains(job()) == [
        f"results/tiny/4x4/beta{b}/transfer/{stage}.nc"
        for b in ("2.0", "3.0")
        for stage in ("none", "retrained")
    ]
    with pytest.raises(ValueError, match="is the first of the ladder"):
        p.transfer_init(job(beta="1.0"))


def test_the_final_targets_are_the_table_and_every_registered_report_file():
    targets = plan().final_targets()
    out = "results/tiny/report"
    assert targets[:2] == ["results/tiny/tauint.csv", f"{out}/report.html"]
    for item in REPORT_TABLES:
        assert f"{out}/{item.name}.csv" in targets
    for item in REPORT_FIGURES:
        assert {f"{out}/{item.name}.png", f"{out}/{item.name}.pdf"} <= set(targets)
    assert len(targets) == 2 + len(REPORT_TABLES) + 2 * len(REPORT_FIGURES)


# ---- the parameter table of docs/pipeline.md --------------------------------------------------


def test_the_documented_config_table_is_the_schemas():
    """Fails when a key, default, range or description of the schema changes without the doc;
    `python -m dlhmc.plan.schema_docs --write docs/pipeline.md` brings them back in step."""
    doc = (REPO / "docs" / "pipeline.md").read_text()
    assert schema_docs.documented_table(doc) == schema_docs.parameter_table(SCHEMA)


def test_the_config_table_lists_every_key_of_the_schema():
    keys = {row[0].strip("`") for row in schema_docs.parameter_rows(SCHEMA)}
    sections = SCHEMA["$defs"]
    for section in ("train", "infer", "hmc", "analyze"):
        for name in sections[section]["properties"]:
            assert f"experiments.<name>.{section}.{name}" in keys, (section, name)
    for name in sections["experiment"]["properties"]:
        assert f"experiments.<name>.{name}" in keys, name
    assert "experiments.<name>.hmc.points[].instanton_size" in keys


def test_a_schema_change_changes_the_table():
    changed = copy.deepcopy(SCHEMA)
    changed["$defs"]["train"]["properties"]["batch"]["default"] = 32
    assert schema_docs.parameter_table(changed) != schema_docs.parameter_table(SCHEMA)
    doc = (REPO / "docs" / "pipeline.md").read_text()
    rewritten = schema_docs.replace_table(doc, schema_docs.parameter_table(changed))
    assert schema_docs.documented_table(rewritten) == schema_docs.parameter_table(changed)
    assert rewritten.replace(schema_docs.parameter_table(changed), "") == doc.replace(
        schema_docs.parameter_table(SCHEMA), ""
    )
