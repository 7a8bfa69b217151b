"""Flow learners in the plan (a variant with ``sampler: flow``), without Snakemake: what they
inherit from ``train``, their jobs (training along the ladder, flow IMH and flow HMC chains),
their command-line options, the problems named by key, and that adding one changes no existing
job.  ``tests/test_workflow_config.py``-style dry runs of the same are at the end."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
from test_plan import SCHEMA, experiment, job, plan
from workflow_helpers import planned_jobs, snakemake, tiny_config, write_config

from dlhmc.plan.experiments import (
    LADDER_SAMPLER,
    check_experiment,
    learners,
    load_experiments,
)
from dlhmc.plan.jobs import Plan

FLOW = {"sampler": "flow", "flow_layers": 4, "hidden": [4], "flow_hmc": {"nlf": 5, "eps": 0.1}}


def with_flow(**changes) -> dict:
    """The tiny experiment, its ladder with the winding layer, and a flow variant."""
    changes.setdefault("train", {"winding": 1})
    variants = changes.pop("variants", {"flow": FLOW})
    exp = experiment(**changes)
    exp["variants"] = copy.deepcopy(variants)
    return exp


def flow_plan(**changes) -> Plan:
    return Plan(load_experiments({"experiments": {"tiny": with_flow(**changes)}}, SCHEMA, []))


def problems(**changes) -> list[str]:
    return check_experiment("tiny", with_flow(**changes))


def flow_job(beta="2.0", lattice="4x4", sampler="flow_imh", variant="flow"):
    return job(beta=beta, lattice=lattice, variant=variant, flow_sampler=sampler)


# ---- settings ----------------------------------------------------------------------------------


def test_a_flow_variant_inherits_only_the_shared_training_settings():
    """train is the L2HMC ladder: its nlf, winding and network (schema defaults included) are
    not a flow's; steps, batch, lr, checkpointing and the mask period are."""
    flow = learners(with_flow())["variants.flow"]
    for key in ("nlf", "winding", "network"):
        assert key not in flow
    assert flow["steps"] == 6 and flow["batch"] == 8 and flow["lr"] == 1.0e-3
    assert flow["checkpoint_every"] == 3 and flow["local_period"] == 4
    assert flow["hidden"] == [4] and flow["flow_layers"] == 4


def test_the_flow_is_trained_along_the_ladder_with_its_own_options():
    p = flow_plan()
    options = p.train_options(job(beta="2.0", variant="flow")) + " "
    assert "--sampler flow " in options and "--flow-layers 4 " in options
    assert "--hidden 4 " in options and "--steps 6 " in options
    for absent in ("--nlf", "--winding", "--network", "--flow-hmc", "--ranks"):
        assert absent not in options
    assert p.train_init(job(beta="2.0", variant="flow")) == [
        f"results/tiny/4x4/beta1.0/learned/flow/model/{name}"
        for name in ("checkpoint.pt", "metrics.csv", "config.yaml")
    ]


def test_the_ladder_sampler_is_the_commands_default():
    """The plan states dlhmc train's default sampler once more (it is torch-free)."""
    from dlhmc.settings import TrainSettings

    assert TrainSettings.__dataclass_fields__["sampler"].default == LADDER_SAMPLER


# ---- jobs and chains ---------------------------------------------------------------------------


def test_a_flow_is_sampled_twice_and_joins_the_comparison():
    p = flow_plan()
    chains = p.all_chains(job())
    flow = [c for c in chains if "/learned/flow/" in c]
    assert flow == [
        f"results/tiny/4x4/beta{b}/learned/flow/{s}.nc"
        for s in ("flow_imh", "flow_hmc")
        for b in ("1.0", "2.0")
    ]
    assert not any(c.endswith("learned/flow/l2hmc.nc") for c in chains)
    assert "results/tiny/4x4/beta2.0/l2hmc.nc" in chains


def test_without_flow_hmc_settings_only_the_independence_sampler_runs():
    flow = {k: v for k, v in FLOW.items() if k != "flow_hmc"}
    p = flow_plan(variants={"flow": flow})
    assert [c for c in p.all_chains(job()) if "flow_hmc" in c] == []
    with pytest.raises(ValueError, match=r"experiments\.tiny\.variants\.flow\.flow_hmc: not set"):
        p.flow_checkpoint(flow_job(sampler="flow_hmc"))


def test_flow_infer_options_and_checkpoint():
    p = flow_plan(infer={"layer_samples": 3})
    imh = p.flow_infer_options(flow_job()) + " "
    hmc = p.flow_infer_options(flow_job(sampler="flow_hmc")) + " "
    assert "--chains 4 " in imh and "--flow-hmc" not in imh
    assert hmc.endswith(" --flow-hmc --nlf 5 --eps 0.1 ")
    assert "--layer-samples" not in imh + hmc, "a flow has no layers to record"
    assert "--layer-samples 3" in p.infer_options(job())  # the L2HMC ladder's still has
    checkpoint = "results/tiny/4x4/beta2.0/learned/flow/model/checkpoint.pt"
    assert p.flow_checkpoint(flow_job()) == checkpoint
    assert p.flow_checkpoint(flow_job(sampler="flow_hmc")) == checkpoint
    assert p.flow_infer_options(flow_job(beta="1.0")).startswith("--chains 4")


def test_paths_no_rule_of_the_config_makes_are_refused():
    p = flow_plan(variants={"flow": FLOW, "plain": {"winding": 0}})
    with pytest.raises(ValueError, match=r"variants\.flow\.sampler: a flow, whose chains are"):
        p.infer_checkpoint(job(variant="flow"))
    with pytest.raises(ValueError, match=r"variants\.plain\.sampler: not a flow"):
        p.flow_checkpoint(flow_job(variant="plain"))


def test_the_report_draws_the_l2hmc_training_runs_only():
    p = flow_plan()
    runs = p.report_runs(job())
    assert runs and not any("/learned/flow/" in r for r in runs)
    assert any("/learned/flow/" in m for m in p.trained_models("tiny"))


def test_adding_a_flow_changes_no_existing_job():
    """Every job of the config without the flow keeps its inputs and options (no rerun)."""
    before = plan(train={"winding": 1}, variants={"plain": {"winding": 0}})
    after = flow_plan(variants={"plain": {"winding": 0}, "flow": FLOW})
    for variant in (None, "plain"):
        for beta in ("1.0", "2.0"):
            wc = job(beta=beta, variant=variant)
            for method in ("train_init", "train_options", "infer_checkpoint", "infer_options"):
                assert getattr(before, method)(wc) == getattr(after, method)(wc), method
    old = set(before.all_chains(job()))
    new = set(after.all_chains(job()))
    assert old < new and all("/learned/flow/" in c for c in new - old)
    assert before.report_runs(job()) == after.report_runs(job())


def test_a_flow_may_train_on_one_volume_and_sample_the_others():
    """A flow is made of local layers: with lattice it trains on that volume and samples every
    other one with --lattice (and the volume curriculum fine-tunes it there)."""
    flow = {**FLOW, "lattice": [4, 4], "local_period": 2}
    p = flow_plan(lattices=[[4, 4], [8, 8]], variants={"flow": flow})
    assert p.train_volumes("tiny", "flow") == ["4x4"]
    big = flow_job(lattice="8x8")
    assert p.flow_checkpoint(big) == "results/tiny/4x4/beta2.0/learned/flow/model/checkpoint.pt"
    assert p.infer_lattice_option(big) == "--lattice 8 8"
    tuned = flow_plan(lattices=[[4, 4], [8, 8]], variants={"flow": {**flow, "finetune_steps": 2}})
    assert tuned.volume_transfer_chains(job()) == [
        f"results/tiny/8x8/beta{b}/learned/flow/transfer/volume.nc" for b in ("1.0", "2.0")
    ]
    assert "--layer-samples" not in tuned.infer_options(flow_job(lattice="8x8"))


# ---- problems named by key ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"variants": {"flow": {**FLOW, "nlf": 3}}},
         "experiments.tiny.variants.flow.nlf: a setting of sampler l2hmc, not of this "
         "learner's sampler flow; remove it"),
        ({"variants": {"flow": {**FLOW, "winding": 1}}},
         "experiments.tiny.variants.flow.winding: a setting of sampler l2hmc"),
        ({"variants": {"flow": {**FLOW, "network": "local"}}},
         "experiments.tiny.variants.flow.network: a setting of sampler l2hmc"),
        ({"variants": {"v": {"flow_layers": 3}}},
         "experiments.tiny.variants.v.flow_layers: a setting of sampler flow, not of this "
         "learner's sampler l2hmc"),
        ({"variants": {"v": {"flow_hmc": {"nlf": 2, "eps": 0.1}}}},
         "experiments.tiny.variants.v.flow_hmc: a setting of sampler flow"),
        ({"train": {"flow_layers": 3}, "variants": {}},
         "experiments.tiny.train.flow_layers: a setting of sampler flow"),
        ({"train": {"sampler": "flow"}, "variants": {}},
         "experiments.tiny.train.sampler: the ladder's own learner is l2hmc"),
        ({"variants": {"flow": {**FLOW, "sampler": "flwo"}}},
         "experiments.tiny.variants.flow.sampler: expected one of l2hmc, flow"),
        ({"lattices": [[5, 5]], "variants": {"flow": FLOW}},
         "experiments.tiny.lattices[0]: the local link masks of period 4 need extents other "
         "than 4k + 1 (k >= 1), got (5, 5) (experiments.tiny.variants.flow is a flow)"),
        ({"lattices": [[4, 4]], "variants": {"flow": {**FLOW, "lattice": [5, 5]}}},
         "experiments.tiny.variants.flow.lattice: the local link masks of period 4"),
        ({"variants": {"flow": {**FLOW, "local_period": 2, "lattice": [3, 4]}}},
         "experiments.tiny.variants.flow.lattice: the local link masks of period 2 need even"),
    ],
)  # fmt: skip
def test_each_flow_problem_names_its_key(changes, expected):
    found = problems(**changes)
    assert any(p.startswith(expected) for p in found), found


def test_a_flow_needs_a_group_it_is_implemented_for():
    exp = experiment(group="SU3", lattices=[[2, 2, 2, 2]])
    exp["variants"] = {"flow": {"sampler": "flow"}}
    assert "experiments.tiny.variants.flow.sampler: flow is implemented for U1 only, got group " \
           "SU3" in check_experiment("tiny", exp)


def test_flow_settings_fail_the_schema_by_key():
    exp = with_flow(variants={"flow": {**FLOW, "flow_hmc": {"nlf": 5}}})
    config = {"experiments": {"tiny": exp}}
    with pytest.raises(ValueError, match=r"experiments\.tiny\.variants\.flow\.flow_hmc: 'eps'"):
        load_experiments(config, SCHEMA, [])
    config["experiments"]["tiny"]["variants"]["flow"]["flow_hmc"] = {"nlf": 0, "eps": 0.1}
    with pytest.raises(ValueError, match=r"variants\.flow\.flow_hmc\.nlf: 0 is less than"):
        load_experiments(config, SCHEMA, [])
    config["experiments"]["tiny"]["variants"]["flow"] = {**FLOW, "flow_layers": 2.0}
    with pytest.raises(ValueError, match=r"variants\.flow\.flow_layers: expected an integer"):
        load_experiments(config, SCHEMA, [])


def test_a_plain_config_is_untouched_by_the_flow_checks():
    assert check_experiment("tiny", experiment()) == []
    assert problems() == []


# ---- dry runs ----------------------------------------------------------------------------------


def _flow_config() -> dict:
    config = tiny_config()
    exp = config["experiments"]["tiny"]
    exp["train"]["winding"] = 1
    exp["variants"] = {"flow": copy.deepcopy(FLOW)}
    return config


def test_dry_run_of_a_flow_variant(tmp_path):
    """snakemake -n plans the flow's ladder and its two chain files per beta, with the
    commands of the issue's contract, next to the untouched L2HMC jobs."""
    cfg = write_config(tmp_path / "flow.yaml", _flow_config())
    result = snakemake("-n", "-p", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert Counter(rule for rule, _ in jobs) == {
        "train": 2, "infer": 2, "hmc": 4, "train_variant": 2, "infer_flow": 4,
        "analyze": 1, "report": 1, "all": 1,
    }  # fmt: skip
    assert {(w["beta"], w["flow_sampler"]) for r, w in jobs if r == "infer_flow"} == {
        (b, s) for b in ("1.0", "2.0") for s in ("flow_imh", "flow_hmc")
    }
    out = result.stdout
    assert "--sampler flow --flow-layers 4 " in out
    assert (
        "dlhmc infer --checkpoint results/tiny/4x4/beta2.0/learned/flow/model  --chains 4 "
        "--trajectories 24 --therm 4 --flow-hmc --nlf 5 --eps 0.1 --seed 8"
    ) in out
    assert "--out results/tiny/4x4/beta1.0/learned/flow/flow_imh.nc " in out
    analyze = out.split("rule analyze:")[1].split("rule ")[0]
    assert "results/tiny/4x4/beta2.0/learned/flow/flow_hmc.nc" in analyze


def test_dry_run_adding_a_flow_to_a_finished_run_adds_only_its_jobs(tmp_path):
    """With every file of the plain config in place, the flow variant plans its own train and
    infer jobs and the analysis again, nothing else."""
    plain = tiny_config()
    plain["experiments"]["tiny"]["train"]["winding"] = 1
    cfg = write_config(tmp_path / "plain.yaml", plain)
    _make_outputs(tmp_path, cfg)
    result = snakemake("-n", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode == 0 and "Nothing to be done" in result.stdout, result.stdout
    cfg = write_config(tmp_path / "flow.yaml", _flow_config())
    result = snakemake("-n", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Counter(rule for rule, _ in planned_jobs(result.stdout)) == {
        "train_variant": 2, "infer_flow": 4, "analyze": 1, "report": 1, "all": 1,
    }  # fmt: skip


def _make_outputs(cwd, cfg):
    """Every output of the config's jobs (--summary) as an empty file, then --touch, which
    orders their times as the jobs would: Snakemake takes them as finished."""
    result = snakemake("--configfile", str(cfg), "--summary", cwd=cwd)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines()[1:]:
        path = cwd / line.split("\t")[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    result = snakemake("--touch", "--configfile", str(cfg), "--cores", "1", cwd=cwd)
    assert result.returncode == 0, result.stderr
