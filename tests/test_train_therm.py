"""``dlhmc train --therm-hmc K``: the training buffer starts in equilibrium; resumes stay exact."""

from __future__ import annotations

import pandas as pd
import pytest
from train_helpers import TINY, assert_identical, crash_before, interrupted, load, without_timing

from dlhmc.cli import main
from dlhmc.lattice.u1_exact import exact_plaquette
from dlhmc.training import trainer as trainer_mod

# 4x4 at beta 2 (TINY): 16 chains x 4 x 4 plaquettes average the buffer's plaquette.
EXACT = exact_plaquette(2.0, 16)


def first_plaquette(run) -> float:
    return float(pd.read_csv(run / "metrics.csv")["plaq"].iloc[0])


def test_the_buffer_is_thermalized_at_the_target_beta(tmp_path):
    """From a hot start (plaquette ~0) one step of L2HMC leaves the buffer far from equilibrium;
    60 HMC trajectories of length 1 first bring it to the exact plaquette within its noise."""
    hot, warm = tmp_path / "hot", tmp_path / "warm"
    args = ["train", *TINY, "--steps", "1"]
    assert main([*args, "--out", str(hot)]) == 0
    assert main([*args, "--therm-hmc", "60", "--out", str(warm)]) == 0
    assert abs(first_plaquette(hot) - EXACT) > 0.3
    # 16 chains: the plaquette of one configuration fluctuates by ~0.1 on 4x4 at beta 2.
    assert first_plaquette(warm) == pytest.approx(EXACT, abs=0.06)


def test_without_therm_hmc_nothing_is_drawn(tmp_path):
    """The default draws nothing: the same run as before the option existed."""
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["train", *TINY, "--steps", "3"]
    assert main([*args, "--out", str(a)]) == 0
    assert main([*args, "--therm-hmc", "0", "--out", str(b)]) == 0
    assert_identical(without_timing(load(a)), without_timing(load(b)))


def test_resume_after_thermalization_is_bit_identical(tmp_path, monkeypatch):
    steps, every, crash_at = 6, 2, 4
    run, reference = tmp_path / "run", tmp_path / "reference"
    args = ["train", *TINY, "--therm-hmc", "5", "--steps", str(steps),
            "--checkpoint-every", str(every)]
    monkeypatch.setattr(trainer_mod.Trainer, "train_step", crash_before(crash_at))
    interrupted([*args, "--out", str(run)])
    monkeypatch.undo()
    assert main([*args, "--out", str(run)]) == 0
    assert main([*args, "--out", str(reference)]) == 0
    assert_identical(without_timing(load(run)), without_timing(load(reference)))


def test_a_resume_must_repeat_therm_hmc(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    args = ["train", *TINY, "--steps", "4", "--checkpoint-every", "2", "--out", str(run)]
    monkeypatch.setattr(trainer_mod.Trainer, "train_step", crash_before(3))
    interrupted([*args, "--therm-hmc", "3"])
    monkeypatch.undo()
    assert main([*args, "--therm-hmc", "4"]) == 2
    assert "--therm-hmc" in capsys.readouterr().err.splitlines()[-1]
