"""The volume curriculum's plan (train.lattice with train.finetune_steps), without Snakemake:
its jobs, their inputs and options, the --init chain across betas and volumes, and the config
problems it names by key."""

from __future__ import annotations

import pytest
from test_plan import SCHEMA, experiment, job, plan

from dlhmc.plan.experiments import finetune_train_settings, load_experiments

LOCAL = {"lattice": [4, 4], "network": "local", "local_period": 2}


def curriculum(**train) -> dict:
    """Three betas, sampled on 4x4 and 6x6, trained on 4x4 and fine-tuned on 6x6."""
    return {
        "betas": [1.0, 2.0, 3.0],
        "lattices": [[4, 4], [6, 6]],
        "train": {**LOCAL, "finetune_steps": 2, **train},
    }


def files(lattice: str, beta: str, variant: str | None = None) -> list[str]:
    where = f"results/tiny/{lattice}/beta{beta}" + (f"/learned/{variant}" if variant else "")
    return [f"{where}/model/{name}" for name in ("checkpoint.pt", "metrics.csv", "config.yaml")]


def problems(**changes) -> str:
    with pytest.raises(ValueError) as err:
        load_experiments({"experiments": {"tiny": experiment(**changes)}}, SCHEMA, [])
    return str(err.value)


def test_the_init_chain_runs_up_each_volume_from_the_small_model_of_the_first_beta():
    p = plan(**curriculum())
    assert p.train_init(job(beta="1.0", lattice="4x4")) == []
    assert p.train_init(job(beta="2.0", lattice="4x4")) == files("4x4", "1.0")
    assert p.train_init(job(beta="1.0", lattice="6x6")) == files("4x4", "1.0")
    assert p.train_init(job(beta="2.0", lattice="6x6")) == files("6x6", "1.0")
    assert p.train_init(job(beta="3.0", lattice="6x6")) == files("6x6", "2.0")
    assert p.train_volumes("tiny") == ["4x4", "6x6"]
    assert p.trained_models("tiny") == [
        f"results/tiny/{lattice}/beta{b}/model/checkpoint.pt"
        for lattice in ("4x4", "6x6")
        for b in ("1.0", "2.0", "3.0")
    ]


def test_finetune_from_train_lattice_starts_each_fine_tuning_from_the_small_model_of_its_beta():
    p = plan(**curriculum(finetune_from="train_lattice"))
    for beta in ("1.0", "2.0", "3.0"):
        assert p.train_init(job(beta=beta, lattice="6x6")) == files("4x4", beta)
    # the small volume's own ladder is unchanged
    assert p.train_init(job(beta="3.0", lattice="4x4")) == files("4x4", "2.0")
    assert "finetune" not in p.train_options(job(lattice="6x6"))


def test_fine_tuning_runs_finetune_steps_at_finetune_lr_and_small_training_is_unchanged():
    p = plan(**curriculum(finetune_lr=2.5e-4, warmup=2, anneal_from=0.5, anneal_steps=4))
    small = p.train_options(job(lattice="4x4")) + " "
    tuned = p.train_options(job(lattice="6x6")) + " "
    assert "--steps 6 " in small and "--lr 0.001 " in small and "--warmup 2 " in small
    assert "--steps 2 " in tuned and "--lr 0.00025 " in tuned
    assert "--warmup 0 " in tuned and "--anneal-steps 1 " in tuned
    assert "finetune" not in small + tuned and "--lattice" not in small + tuned
    settings = finetune_train_settings({"steps": 10, "lr": 1.0e-3, "finetune_steps": 5})
    assert (settings["steps"], settings["lr"]) == (5, 1.0e-3)  # finetune_lr defaults to lr


def test_each_volume_samples_its_fine_tuned_model_and_the_small_one_is_its_transfer_row():
    p = plan(**curriculum())
    big = job(beta="2.0", lattice="6x6")
    assert p.infer_checkpoint(big) == "results/tiny/6x6/beta2.0/model/checkpoint.pt"
    assert p.infer_lattice_option(big) == ""
    assert p.infer_checkpoint(job(lattice="4x4")) == "results/tiny/4x4/beta2.0/model/checkpoint.pt"
    assert p.volume_transfer_checkpoint(big) == "results/tiny/4x4/beta2.0/model/checkpoint.pt"
    assert p.volume_transfer_lattice_option(big) == "--lattice 6 6"
    assert p.volume_transfer_chains(big) == [
        f"results/tiny/6x6/beta{b}/transfer/volume.nc" for b in ("1.0", "2.0", "3.0")
    ]
    with pytest.raises(ValueError, match=r"experiments\.tiny\.train\.finetune_steps: no model"):
        p.volume_transfer_checkpoint(job(lattice="4x4"))


def test_variants_follow_the_curriculum_their_settings_ask_for():
    p = plan(**curriculum(), variants={"plain": {"finetune_steps": 0}, "slow": {"hidden": [4]}})
    assert p.train_volumes("tiny", "plain") == ["4x4"]
    assert p.infer_checkpoint(job(lattice="6x6", variant="plain")) == (
        "results/tiny/4x4/beta2.0/learned/plain/model/checkpoint.pt"
    )
    assert p.train_init(job(beta="1.0", lattice="6x6", variant="slow")) == files(
        "4x4", "1.0", "slow"
    )
    assert p.train_init(job(beta="3.0", lattice="6x6", variant="slow")) == files(
        "6x6", "2.0", "slow"
    )
    chains = p.volume_transfer_chains(job())
    assert "results/tiny/6x6/beta1.0/learned/slow/transfer/volume.nc" in chains
    assert not any("/plain/" in path for path in chains)
    with pytest.raises(ValueError, match=r"experiments\.tiny\.variants\.plain\.lattice: no model"):
        p.train_init(job(lattice="6x6", variant="plain"))


def test_without_finetune_steps_nothing_changes():
    for steps in ({}, {"finetune_steps": 0}):
        p = plan(lattices=[[4, 4], [6, 6]], train={**LOCAL, **steps})
        assert p.train_volumes("tiny") == ["4x4"]
        assert p.infer_checkpoint(job(lattice="6x6")) == (
            "results/tiny/4x4/beta2.0/model/checkpoint.pt"
        )
        assert p.volume_transfer_chains(job()) == []
        with pytest.raises(ValueError, match=r"experiments\.tiny\.train\.lattice: no model is"):
            p.train_init(job(lattice="6x6"))


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        ({"finetune_steps": 5}, "experiments.tiny.train.finetune_steps: fine-tunes the models"),
        ({"finetune_steps": 5, "lattice": [4, 4]},
         "experiments.tiny.train.finetune_steps: only a network: local model"),
        ({**LOCAL, "finetune_steps": 1, "anneal_from": 0.5},
         "experiments.tiny.train.finetune_steps: 1 step is too few to anneal"),
        ({**LOCAL, "finetune_lr": 1.0e-4},
         "experiments.tiny.train.finetune_lr: set without finetune_steps"),
        ({**LOCAL, "finetune_from": "train_lattice"},
         "experiments.tiny.train.finetune_from: set without finetune_steps"),
        ({**LOCAL, "finetune_steps": 2.0}, "experiments.tiny.train.finetune_steps"),
    ],
)  # fmt: skip
def test_curriculum_problems_name_their_key(train, expected):
    assert expected in problems(lattices=[[4, 4], [6, 6]], train=train)


def test_a_variant_problem_names_the_variant():
    message = problems(**curriculum(), variants={"dense": {"network": "dense"}})
    assert "experiments.tiny.variants.dense.finetune_steps: only a network: local" in message
