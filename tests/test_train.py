"""``dlhmc train``: loss, schedules, metrics, skipped updates, warm starts and option handling."""

from __future__ import annotations

import copy
import math

import pandas as pd
import pytest
import torch
import yaml
from train_helpers import TINY, assert_identical, load, without_timing

from dlhmc import checkpoint as ckpt
from dlhmc.checkpoint import all_finite
from dlhmc.cli import main
from dlhmc.lattice import make_theory
from dlhmc.samplers.l2hmc import Proposal
from dlhmc.settings import TrainSettings
from dlhmc.training import loss as loss_mod
from dlhmc.training import trainer as trainer_mod
from dlhmc.training.rundir import METRIC_COLUMNS, sha256
from dlhmc.training.schedules import Schedule

EXPECTED_COLUMNS = (
    "step", "loss", "accept", "dq2", "plaq", "eps_x_mean", "eps_v_mean", "sumlogdet",
    "seconds", "beta", "skipped",
)  # fmt: skip


def _settings(**kw) -> TrainSettings:
    base = dict(group="U1", lattice=(4, 4), beta=2.0, nlf=2, steps=100, batch=4, hidden=(8,),
                lr=1e-3, seed=0)  # fmt: skip
    return TrainSettings(**{**base, **kw})


def lr_factor(settings: TrainSettings, step: int) -> float:
    return Schedule.of(settings).lr_factor(step)


def gamma_at(settings: TrainSettings, step: int) -> float:
    return Schedule.of(settings).gamma(step)


def exit_code(argv: list[str]) -> int:
    """``main``'s return code, also for errors argparse reports by raising ``SystemExit``."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _param_hashes(log) -> list[str]:
    return [line.split()[1] for line in log.read_text().splitlines()]


def _chain_hashes(log) -> list[str]:
    return [line.split()[2] for line in log.read_text().splitlines()]


# --- pieces ------------------------------------------------------------------------------------


def test_lr_schedule_warmup_and_cosine_decay():
    s = _settings(steps=101, warmup=10, decay="cosine", decay_to=0.2)
    assert [lr_factor(s, k) for k in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_factor(s, 10) == pytest.approx(1.0)
    # Half way through the decay the cosine is at the mean of start and end.
    assert lr_factor(s, 55) == pytest.approx(0.6)
    assert lr_factor(s, 100) == pytest.approx(0.2)
    e = _settings(steps=101, warmup=0, decay="exp", decay_to=0.01)
    assert lr_factor(e, 50) == pytest.approx(0.1)
    assert lr_factor(_settings(decay="none"), 77) == 1.0


def test_annealing_schedules_reach_one():
    lin = _settings(anneal_from=0.5, anneal_steps=10)
    assert [gamma_at(lin, k) for k in (0, 5, 10, 99)] == pytest.approx([0.5, 0.75, 1.0, 1.0])
    geo = _settings(anneal_from=0.25, anneal_steps=10, anneal_schedule="geometric")
    assert [gamma_at(geo, k) for k in (0, 5, 10)] == pytest.approx([0.25, 0.5, 1.0])
    assert gamma_at(_settings(), 0) == 1.0


def test_loss_is_minus_accepted_charge_jump_and_plaquette_from_action():
    theory = make_theory("U1", (4, 6), 1.7, "double")
    gen = torch.Generator().manual_seed(3)
    x, x1 = theory.hot_start(5, gen), theory.hot_start(5, gen)
    accept = torch.rand(5, generator=gen, dtype=torch.float64)
    prop = Proposal(x=x1, action=theory.action(x1), sumlogdet=torch.zeros(5), dH=torch.zeros(5),
                    accept_prob=accept, divergent=torch.zeros(5, dtype=torch.bool),
                    direction=torch.ones(5))  # fmt: skip
    loss, stats = loss_mod.loss_terms(theory, x, prop, plaq_weight=0.0)
    dq = theory.charge_real(x1) - theory.charge_real(x)
    assert loss.item() == pytest.approx(-(accept * dq**2).mean().item(), rel=1e-12)
    assert stats["dq2"].item() == pytest.approx(-loss.item(), rel=1e-12)
    # The action-based plaquette agrees with the plaquette measured directly.
    plaq = loss_mod.plaquette_from_action(theory, theory.action(x))
    torch.testing.assert_close(plaq, theory.observables(x)["plaq"])
    loss_p, _ = loss_mod.loss_terms(theory, x, prop, plaq_weight=2.0)
    dp = theory.observables(x1)["plaq"] - theory.observables(x)["plaq"]
    expected = loss.item() - 2.0 * (accept * 24 * dp**2).mean().item()
    assert loss_p.item() == pytest.approx(expected, rel=1e-10)


# --- end to end --------------------------------------------------------------------------------


def test_training_writes_checkpoint_metrics_and_config(tmp_path):
    run = tmp_path / "run"
    args = ["train", *TINY, "--steps", "12", "--checkpoint-every", "5", "--out", str(run),
            "--anneal-from", "0.5", "--anneal-steps", "6", "--plaq-weight", "0.1"]  # fmt: skip
    assert main(args) == 0
    metrics = pd.read_csv(run / "metrics.csv")
    assert set(EXPECTED_COLUMNS) <= set(metrics.columns)
    assert tuple(metrics.columns) == METRIC_COLUMNS
    assert metrics["step"].tolist() == list(range(1, 13))
    assert metrics["skipped"].eq(0).all()
    assert metrics[["loss", "accept", "dq2", "plaq", "sumlogdet"]].notna().all().all()
    assert metrics["accept"].between(0, 1).all()
    assert metrics["beta"].iloc[0] == pytest.approx(1.0) and metrics["beta"].iloc[-1] == 2.0
    state = load(run)
    assert state["step"] == 12 and state["world_size"] == 1
    assert state["chains"].shape == (1, 16, 2, 4, 4)
    assert state["timing"]["training_seconds"] > 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["lattice"] == [4, 4] and config["plaq_weight"] == 0.1
    # Training moved the step sizes away from their initial value.
    assert not math.isclose(metrics["eps_x_mean"].iloc[-1], 0.1, rel_tol=1e-6)
    # The run's config.yaml, used as --config, reproduces the run exactly.
    again = tmp_path / "again"
    assert main(["train", "--config", str(run / "config.yaml"), "--out", str(again)]) == 0
    assert_identical(without_timing(load(again)), without_timing(state))
    # Running the same command again finds the run complete and changes nothing.
    before = (run / "checkpoint.pt").read_bytes()
    assert main(args) == 0
    assert (run / "checkpoint.pt").read_bytes() == before
    assert pd.read_csv(run / "metrics.csv")["step"].tolist() == list(range(1, 13))


def test_training_increases_the_expected_charge_jump(tmp_path):
    """The point of the loss: after training, accepted proposals move Q_R further.

    On 4x4 at beta 1 the untrained sampler (eps 0.1, two layers) gives E[A dQ_R^2] ~ 0.035-0.04;
    120 steps at lr 0.01 reach ~0.07 (seeds 1, 2).  Averages over 20 steps of 32 chains have
    relative errors of 5-10%, so demanding a 30% rise leaves room for noise, not for no learning.
    """
    run = tmp_path / "run"
    args = ["train", *TINY, "--beta", "1.0", "--batch", "32", "--lr", "0.01", "--steps", "120",
            "--warmup", "5", "--out", str(run)]  # fmt: skip
    assert main(args) == 0
    metrics = pd.read_csv(run / "metrics.csv")
    early, late = metrics["dq2"][10:30].mean(), metrics["dq2"][-20:].mean()
    assert late > 1.3 * early, (early, late)
    assert metrics["eps_x_mean"].iloc[-1] > 0.12  # longer trajectories are part of it


def _poisoned(kind: str, at_call: int, calls: list[int]):
    """``loss_terms`` whose ``at_call``-th call gives a NaN loss or a finite loss with NaN grads."""
    real = loss_mod.loss_terms

    def loss_terms(theory, x, proposal, plaq_weight):
        loss, stats = real(theory, x, proposal, plaq_weight)
        calls.append(1)
        if len(calls) == at_call:
            if kind == "loss":
                loss = loss * float("nan")
            else:  # d sqrt(u)/du at u = 0 is infinite: the value stays finite, the gradient not
                loss = loss + torch.sqrt(0.0 * proposal.sumlogdet.sum())
        return loss, stats

    return loss_terms


@pytest.mark.parametrize("kind", ["loss", "gradient"])
def test_nonfinite_update_is_skipped_and_never_checkpointed(tmp_path, monkeypatch, capsys, kind):
    calls: list[int] = []
    monkeypatch.setattr(trainer_mod, "loss_terms", _poisoned(kind, 4, calls))
    saved: list[dict] = []
    real_save = ckpt.save

    def save(path, state):  # a copy: the model's state_dict shares storage with the live model
        saved.append(copy.deepcopy(state))
        real_save(path, state)

    monkeypatch.setattr(ckpt, "save", save)
    run, hashes = tmp_path / "run", tmp_path / "hashes"
    args = ["train", *TINY, "--steps", "6", "--checkpoint-every", "4", "--out", str(run),
            "--hash-log", str(hashes)]  # fmt: skip
    assert main(args) == 0
    assert "step 4: non-finite" in capsys.readouterr().err
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["skipped"].tolist() == [0, 0, 0, 1, 0, 0]
    params, chains = _param_hashes(hashes / "rank0.log"), _chain_hashes(hashes / "rank0.log")
    # The skipped step changed neither the model nor the chain buffer; the others changed the model.
    assert params[3] == params[2] and chains[3] == chains[2]
    assert len(set(params)) == 5
    # The checkpoint written right after the skipped step holds the model of step 3.
    assert [state["step"] for state in saved] == [4, 6]
    assert sha256(saved[0]["model"].values()) == params[2]
    for state in saved:
        assert all_finite(state["model"]) and all_finite(state["optimizer"])
        assert all_finite(state["chains"])


def test_warm_start_loads_weights_and_rejects_other_architectures(tmp_path, capsys):
    first, second, fresh = tmp_path / "a", tmp_path / "b", tmp_path / "fresh"
    assert main(["train", *TINY, "--steps", "8", "--lr", "0.05", "--out", str(first)]) == 0
    # A tiny learning rate: after one step the model is still (almost) the warm-start model.
    common = [*TINY, "--beta", "2.5", "--steps", "1", "--lr", "1e-9", "--warmup", "0"]
    assert main(["train", *common, "--init", str(first), "--out", str(second)]) == 0
    assert main(["train", *common, "--out", str(fresh)]) == 0
    a, b, f = load(first), load(second), load(fresh)
    for name, value in a["model"].items():
        torch.testing.assert_close(b["model"][name], value, atol=1e-6, rtol=0)
    assert max((f["model"][k] - v).abs().max().item() for k, v in a["model"].items()) > 1e-2
    assert b["timing"]["previous_training_seconds"] == pytest.approx(
        a["timing"]["training_seconds"] + a["timing"]["previous_training_seconds"]
    )
    assert b["config"]["init"] == str(first.resolve())

    bad = tmp_path / "bad"
    capsys.readouterr()  # drop the checkpoint lines of the runs above
    assert main(["train", *TINY, "--hidden", "16", "--init", str(first), "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--init" in err and "--hidden 8" in err and len(err.splitlines()) == 1
    assert not bad.exists()
    other_volume = ["--lattice", "6", "6", "--init", str(first), "--out", str(bad)]
    assert main(["train", *TINY, *other_volume]) == 2
    assert "--init" in capsys.readouterr().err
    assert main(["train", *TINY, "--init", str(tmp_path / "missing"), "--out", str(bad)]) == 2
    assert "--init: no checkpoint" in capsys.readouterr().err
    assert not bad.exists()


def test_config_file_supplies_defaults_and_rejects_unknown_keys(tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({"group": "U1", "lattice": [4, 4], "beta": 2.0, "nlf": 2,
                                   "batch": 8, "hidden": [6, 6], "steps": 5, "no-progress": True,
                                   "checkpoint_every": 2}))  # fmt: skip
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--steps", "3", "--out", str(run)]) == 0
    state = load(run)
    assert state["step"] == 3  # the command line wins
    assert state["config"]["hidden"] == [6, 6] and state["config"]["batch"] == 8

    cfg.write_text(yaml.safe_dump({"group": "U1", "lattice": [4, 4], "bogus_key": 1}))
    other = tmp_path / "other"
    assert main(["train", "--config", str(cfg), "--beta", "1", "--out", str(other)]) == 2
    err = capsys.readouterr().err
    assert "--config" in err and "bogus_key" in err
    cfg.write_text(yaml.safe_dump({"lattice": [4, 4], "beta": -1.0}))
    assert main(["train", "--config", str(cfg), "--group", "U1", "--out", str(other)]) == 2
    assert "--beta" in capsys.readouterr().err
    assert not other.exists()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--lattice", "4"], "--lattice"),
        (["--lattice", "4", "0"], "--lattice"),
        (["--beta", "0"], "--beta"),
        (["--hidden", "8", "x"], "--hidden"),
        (["--anneal-from", "1.5"], "--anneal-from"),
        (["--warmup", "50", "--steps", "10"], "--warmup"),
        (["--anneal-from", "0.5", "--anneal-steps", "10", "--steps", "10"], "--anneal-steps"),
        (["--conv-channels", "4", "--group", "SU3", "--lattice", "2", "2", "2", "2"], "--conv"),
        (["--winding", "1", "--group", "SU3", "--lattice", "2", "2", "2", "2"], "--winding"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_bad_options_fail_at_once_naming_the_option(tmp_path, capsys, args, option):
    run = tmp_path / "run"
    assert exit_code(["train", *TINY, "--out", str(run), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert option in err and len(err.splitlines()) == 1
    assert not run.exists()


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--steps", "4", "--out", str(run)]) == 0
    before = (run / "checkpoint.pt").read_bytes()
    assert main(["train", *TINY, "--steps", "4", "--lr", "0.01", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "--lr" in err and "0.001" in err
    assert (run / "checkpoint.pt").read_bytes() == before


class _Payload:
    """Any class: ``weights_only`` loading must refuse to construct it."""


def test_checkpoints_hold_plain_data_only_and_are_written_atomically(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ckpt.save(path, {"step": 3, "model": {"w": torch.ones(2)}, "config": {"hidden": [8]}})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    assert ckpt.load(path)["step"] == 3
    torch.save({"format": ckpt.FORMAT, "payload": _Payload()}, path)
    with pytest.raises(ValueError, match="not a readable dlhmc checkpoint"):
        ckpt.load(path)
    torch.save({"step": 1}, path)
    with pytest.raises(ValueError, match="not a dlhmc checkpoint"):
        ckpt.load(path)
