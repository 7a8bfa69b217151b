"""Property-based test of ``dlhmc check-config`` (a command added for issue 21 G): whatever a
config file holds (random bytes, random YAML, the tiny config with one value replaced), the
command ends with status 0 and ``ok``, or 2 with one line per problem naming the file or key,
never with a traceback."""

from __future__ import annotations

import contextlib
import io

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from workflow_helpers import REPO, TINY_CONFIG

from dlhmc.cli import main

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                   st.lists(st.integers(-3, 40), max_size=4))
KEYS = ["betas", "lattices", "group", "seed", "train.steps", "train.network", "train.lattice",
        "train.local_period", "train.finetune_steps", "hmc.nlf", "hmc.instanton_hits",
        "infer.trajectories", "infer.overrides", "bridges.spacings"]  # fmt: skip
ENTRY_KEYS = ["learners", "betas", "chains", "trajectories", "therm_hmc", "hidden"]
TRAIN_ENTRY_KEYS = ["betas", "steps", "finetune_steps", "lr", "batch", "hidden"]


def check(tmp_path, text: bytes) -> tuple[int, list[str]]:
    path = tmp_path / "c.yaml"
    path.write_bytes(text)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["check-config", str(path), "--schema", str(SCHEMA)])
    return status, (out.getvalue() + err.getvalue()).strip().splitlines()


def assert_one_of_two_endings(status, lines):
    assert status in (0, 2), lines
    assert lines and not any("Traceback" in line for line in lines), lines
    if status == 0:
        assert lines[-1].endswith(": ok"), lines


@given(text=st.binary(max_size=200))
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_bytes(tmp_path, text):
    assert_one_of_two_endings(*check(tmp_path, text))


@given(key=st.sampled_from(KEYS), value=VALUES)
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_one_replaced_value(tmp_path, key, value):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    node = config["experiments"]["tiny"]
    *path, last = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value
    status, lines = check(tmp_path, yaml.safe_dump(config).encode())
    assert_one_of_two_endings(status, lines)
    if status == 2:  # a problem names the file or the key it is about
        assert all("c.yaml" in line or "experiments.tiny" in line for line in lines), lines


@given(entries=st.lists(st.dictionaries(st.sampled_from(ENTRY_KEYS),
                                         st.one_of(VALUES, st.just(["train"]))), max_size=2))
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_infer_overrides(tmp_path, entries):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"]["tiny"]["infer"]["overrides"] = entries
    status, lines = check(tmp_path, yaml.safe_dump(config).encode())
    assert_one_of_two_endings(status, lines)
    if status == 2:
        assert all("c.yaml" in line or "experiments.tiny" in line for line in lines), lines


@given(entries=st.lists(st.dictionaries(st.sampled_from(TRAIN_ENTRY_KEYS),
                                         st.one_of(VALUES, st.just([2.0]))), max_size=2),
       variant=st.booleans())
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_train_overrides(tmp_path, entries, variant):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    exp = config["experiments"]["tiny"]
    exp["train"]["overrides"] = entries
    if variant:
        exp["variants"] = {"plain": {"winding": 0}}
    status, lines = check(tmp_path, yaml.safe_dump(config).encode())
    assert_one_of_two_endings(status, lines)
    if status == 2:
        assert all("c.yaml" in line or "experiments.tiny" in line for line in lines), lines


def test_the_tiny_config_is_ok(tmp_path):
    assert check(tmp_path, TINY_CONFIG.read_bytes())[0] == 0
