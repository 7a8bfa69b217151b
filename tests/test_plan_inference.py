"""infer.overrides: other chain settings for some learners at some betas, in the plan (each
rule's options), in the config checks (named by key) and through ``snakemake -n``."""

from __future__ import annotations

import re

import pytest
from snakemake.exceptions import WorkflowError
from test_plan import SCHEMA, experiment, job, plan
from workflow_helpers import snakemake, tiny_config, write_config

from dlhmc.analysis.requirements import MIN_TRAJ
from dlhmc.plan.experiments import check_experiment, load_experiments
from dlhmc.plan.inference import infer_settings

PLAIN = {"plain": {"winding": 0}}


def with_overrides(*entries, **changes) -> dict:
    """The tiny experiment (betas 1 and 2, infer 4 x 24) with a plain variant and overrides."""
    changes.setdefault("variants", PLAIN)
    exp = experiment(**changes)
    exp["infer"]["overrides"] = list(entries)
    return exp


def options(exp: dict, beta: str = "2.0", **fields) -> str:
    from dlhmc.plan.jobs import Plan

    p = Plan(load_experiments({"experiments": {"tiny": exp}}, SCHEMA, []))
    return p.infer_options(job(beta=beta, **fields)) + " "


def test_the_schema_fills_no_defaults_into_an_entry():
    """An entry's settings refer to infer's, defaults included: they must not come back filled
    in, or every override would reset the chains it selects to infer's defaults."""
    entry = {"learners": ["train"], "trajectories": 48}
    exp = experiment(variants=PLAIN, infer={"overrides": [dict(entry)]})
    assert exp["infer"]["overrides"] == [entry]


def test_an_override_changes_only_the_learners_and_betas_it_names():
    exp = with_overrides(
        {"learners": ["variants.plain"], "betas": [2.0], "trajectories": 48, "therm_hmc": 5}
    )
    selected = options(exp, variant="plain")
    assert "--trajectories 48 " in selected and "--therm-hmc 5 " in selected
    assert "--chains 4 " in selected and "--therm 4 " in selected  # the rest from infer
    for other in (options(exp, beta="1.0", variant="plain"), options(exp)):
        assert "--trajectories 24 " in other and "--therm-hmc" not in other
    assert "overrides" not in selected and "learners" not in selected


def test_without_selectors_an_override_applies_to_every_chain_and_later_entries_win():
    exp = with_overrides(
        {"trajectories": 30},
        {"learners": ["train"], "trajectories": 40},
        {"betas": [1], "chains": 2},
    )
    assert "--trajectories 30 " in options(exp, variant="plain")
    assert "--trajectories 40 " in options(exp)
    one = options(exp, beta="1.0")
    assert "--trajectories 40 " in one and "--chains 2 " in one
    assert "--chains 4 " in options(exp, beta="2.0")


def test_the_settings_follow_the_learner_into_its_transfer_rows():
    """A beta-transfer row samples the ladder's model (learner train) at the target beta; a
    volume-transfer row is the learner's chain on another volume, with its options."""
    exp = with_overrides({"learners": ["train"], "betas": [2.0], "trajectories": 36})
    exp["beta_transfer"] = 0.5
    p = plan(**{k: v for k, v in exp.items() if k != "variants"})
    assert "--trajectories 36 " in p.transfer_infer_options(job(stage="none")) + " "
    assert "--trajectories 24 " in p.infer_options(job(beta="1.0")) + " "
    assert infer_settings(exp, "variants.plain", "2.0")["trajectories"] == 24


def test_a_beta_outside_the_ladder_is_refused_by_the_rule():
    with pytest.raises(ValueError, match=r"experiments\.tiny\.betas: beta 3\.0 is not in"):
        options(with_overrides({"trajectories": 30}), beta="3.0")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"learners": ["variants.local"], "trajectories": 30},
         r"infer\.overrides\[0\]\.learners: no learner 'variants\.local' in the experiment "
         r"\(have train, variants\.plain\)"),
        ({"learners": ["plain"], "trajectories": 30},
         r"infer\.overrides\[0\]\.learners: no learner 'plain'"),
        ({"betas": [1.0, 3.0], "trajectories": 30},
         r"infer\.overrides\[0\]\.betas: 3\.0 is not in the ladder \[1\.0, 2\.0\]"),
        ({"learners": ["train"], "betas": [1.0]},
         r"infer\.overrides\[0\]: changes no infer setting"),
        ({"trajectories": MIN_TRAJ - 1},
         rf"infer\.overrides\[0\]\.trajectories: the analysis needs at least {MIN_TRAJ}"),
        ({"trajectories": 30.0}, r"infer\.overrides\[0\]\.trajectories: expected an integer"),
    ],
)  # fmt: skip
def test_bad_overrides_are_named_by_key(entry, message):
    found = "\n".join(check_experiment("tiny", with_overrides(entry)))
    assert found.startswith("experiments.tiny.infer.overrides[0]")
    assert re.search(message, found), found


@pytest.mark.parametrize(
    "entry",
    [{}, {"trajectories": 0}, {"learners": [], "chains": 2}, {"betas": "2.0", "chains": 2},
     {"hidden": [4]}, {"learners": ["train", "train"], "chains": 2}],
)  # fmt: skip
def test_the_schema_refuses_malformed_entries(entry):
    with pytest.raises(WorkflowError, match="overrides"):
        experiment(variants=PLAIN, infer={"overrides": [entry]})


def test_the_workflow_gives_the_selected_chain_its_settings(tmp_path):
    """Through ``snakemake -n -p``: the override reaches the one infer command it selects."""
    config = tiny_config()
    exp = config["experiments"]["tiny"]
    exp["variants"] = PLAIN
    exp["infer"]["overrides"] = [
        {"learners": ["variants.plain"], "betas": [2.0], "trajectories": 48}
    ]
    path = write_config(tmp_path / "config.yaml", config)
    run = snakemake("-n", "-p", "--configfile", str(path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    commands = [line for line in run.stdout.splitlines() if "dlhmc infer " in line]
    assert len(commands) == 4, commands  # two learners at two betas
    longer = [c for c in commands if "--trajectories 48 " in c]
    assert len(longer) == 1 and "beta2.0/learned/plain/l2hmc.nc" in longer[0]
    assert all("--trajectories 24 " in c for c in commands if c not in longer)
