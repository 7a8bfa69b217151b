"""A learner's training overrides (``train.overrides``, ``variants.<name>.overrides``): other
run lengths and learning rates at some betas, in each train job's options, in the config checks
(named by key) and through ``snakemake -n``."""

from __future__ import annotations

import re

import pytest
from snakemake.exceptions import WorkflowError
from test_plan import experiment, job, plan
from test_plan_curriculum import curriculum
from workflow_helpers import snakemake, tiny_config, write_config

from dlhmc.plan.experiments import check_experiment
from dlhmc.plan.train_runs import settings_at


def options(p, **fields) -> str:
    return p.train_options(job(**fields)) + " "


def test_the_schema_fills_no_defaults_into_an_entry():
    """An entry's settings refer to train's, whose lr and batch have defaults: they must not
    come back filled in, or every override would reset them."""
    entry = {"betas": [2.0], "steps": 9}
    exp = experiment(train={"overrides": [dict(entry)]})
    assert exp["train"]["overrides"] == [entry]


def test_an_override_changes_only_the_betas_it_names_and_later_entries_win():
    p = plan(
        train={
            "lr": 1.0e-3,
            "overrides": [{"betas": [2.0], "steps": 9, "lr": 5.0e-4}, {"betas": [2.0], "batch": 3},
                          {"betas": [1.0, 2.0], "lr": 2.5e-4}],
        }
    )  # fmt: skip
    top, foot = options(p, beta="2.0"), options(p, beta="1.0")
    assert "--steps 9 " in top and "--batch 3 " in top and "--lr 0.00025 " in top
    assert "--steps 6 " in foot and "--batch 8 " in foot and "--lr 0.00025 " in foot
    assert "overrides" not in top + foot and "betas" not in top + foot


def test_steps_stretch_the_configured_schedules_from_the_learners_own():
    train = {"steps": 10, "warmup": 2, "anneal_from": 0.5, "anneal_steps": 4,
             "overrides": [{"betas": [2.0], "steps": 30},
                           {"betas": [2.0], "steps": 20}]}  # fmt: skip
    longer = settings_at(train, "2.0")
    assert (longer["steps"], longer["warmup"], longer["anneal_steps"]) == (20, 4, 8)
    assert settings_at(train, "1.0") == {k: v for k, v in train.items() if k != "overrides"}


def test_fine_tuning_jobs_follow_finetune_overrides_and_the_small_ladder_its_own():
    p = plan(
        **curriculum(
            finetune_lr=2.5e-4,
            overrides=[{"betas": [3.0], "finetune_steps": 5, "finetune_lr": 1.0e-4},
                       {"betas": [2.0], "steps": 8}],
        )
    )  # fmt: skip
    assert "--steps 5 " in options(p, beta="3.0", lattice="6x6")
    assert "--lr 0.0001 " in options(p, beta="3.0", lattice="6x6")
    tuned = options(p, beta="2.0", lattice="6x6")
    assert "--steps 2 " in tuned and "--lr 0.00025 " in tuned
    assert "--steps 8 " in options(p, beta="2.0", lattice="4x4")
    assert "--steps 6 " in options(p, beta="3.0", lattice="4x4")


def test_a_variant_inherits_trains_overrides_unless_it_gives_its_own():
    p = plan(
        train={"overrides": [{"betas": [2.0], "steps": 9}]},
        variants={"plain": {"winding": 0}, "own": {"overrides": [{"betas": [1.0], "steps": 7}]}},
    )
    assert "--steps 9 " in options(p, variant="plain")
    assert "--steps 6 " in options(p, variant="own")
    assert "--steps 7 " in options(p, beta="1.0", variant="own")


def test_the_beta_transfer_keeps_the_settings_without_overrides():
    p = plan(beta_transfer=0.5, train={"overrides": [{"betas": [2.0], "steps": 40}]})
    assert "--steps 3 " in p.transfer_train_options(job(stage="retrained")) + " "


def test_a_beta_outside_the_ladder_is_refused_by_the_rule():
    with pytest.raises(ValueError, match=r"experiments\.tiny\.betas: beta 3\.0 is not in"):
        plan(train={"overrides": [{"betas": [2.0], "steps": 9}]}).train_options(job(beta="3.0"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train": {"overrides": [{"betas": [1.0, 3.0], "steps": 9}]}},
         r"train\.overrides\[0\]\.betas: 3\.0 is not in the ladder \[1\.0, 2\.0\]"),
        ({"train": {"overrides": [{"betas": [1.0]}]}},
         r"train\.overrides\[0\]: changes no training setting"),
        ({"train": {"overrides": [{"betas": [1.0], "finetune_steps": 4}]}},
         r"train\.overrides\[0\]\.finetune_steps: train fine-tunes no model"),
        ({"train": {"overrides": [{"betas": [1.0], "steps": 4.0}]}},
         r"train\.overrides\[0\]\.steps: expected an integer"),
        ({"train": {"anneal_from": 0.5, "overrides": [{"betas": [1.0], "steps": 1}]}},
         r"train\.overrides\[0\]\.steps: 1 step is too few to anneal"),
        ({**curriculum(overrides=[{"betas": [2.0], "finetune_steps": 0}])},
         r"train\.overrides\[0\]\.finetune_steps: expected at least 1"),
        ({"train": {"overrides": [{"betas": [2.0], "finetune_lr": 1.0e-4}]},
          "variants": {"plain": {"winding": 0}}},
         r"train\.overrides\[0\]\.finetune_lr: variants\.plain fine-tunes no model .*"
         r"\(inherited by variants\.plain; give it its own overrides\)"),
        ({"variants": {"v": {"overrides": [{"betas": [9.0], "lr": 1.0e-4}]}}},
         r"variants\.v\.overrides\[0\]\.betas: 9\.0 is not in the ladder"),
    ],
)  # fmt: skip
def test_bad_overrides_are_named_by_key(changes, message):
    found = "\n".join(check_experiment("tiny", experiment(**changes)))
    assert found.startswith("experiments.tiny."), found
    assert re.search(message, found), found


def test_an_inherited_problem_is_named_once_where_it_is_written():
    found = check_experiment(
        "tiny",
        experiment(train={"overrides": [{"betas": [5.0], "steps": 3}]},
                   variants={"a": {"winding": 0}, "b": {"hidden": [4]}}),
    )  # fmt: skip
    assert sum("betas: 5.0 is not in the ladder" in line for line in found) == 1


@pytest.mark.parametrize(
    "entry",
    [{"steps": 3}, {"betas": [], "steps": 3}, {"betas": "2.0", "steps": 3},
     {"betas": [2.0], "hidden": [4]}, {"betas": [2.0], "steps": 0},
     {"betas": [2.0, 2.0], "lr": 1.0e-4}, {"betas": [2.0], "lr": 0}],
)  # fmt: skip
def test_the_schema_refuses_malformed_entries(entry):
    with pytest.raises(WorkflowError, match="overrides"):
        experiment(train={"overrides": [entry]})


def test_the_workflow_gives_the_selected_train_job_its_settings(tmp_path):
    """Through ``snakemake -n -p``: the override reaches the one train command it selects."""
    config = tiny_config()
    config["experiments"]["tiny"]["train"]["overrides"] = [{"betas": [2.0], "steps": 9}]
    path = write_config(tmp_path / "config.yaml", config)
    run = snakemake("-n", "-p", "--configfile", str(path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    commands = re.findall(r"dlhmc train [^)]*", run.stdout)  # cmd=(... dlhmc train ...)
    assert len(commands) == 2, run.stdout
    longer = [c for c in commands if "--steps 9 " in c]
    assert len(longer) == 1 and "--beta 2.0 " in longer[0]
    assert "--overrides" not in " ".join(commands)
