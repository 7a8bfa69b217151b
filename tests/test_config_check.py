"""Issue 12, cases 12-14: configs that pass the schema but would fail in their jobs.

Unit tests of :mod:`dlhmc.config_check` (fast), and real ``snakemake`` runs showing that the
workflow stops while reading the config, naming the key, before any job.
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO, planned_jobs, snakemake, tiny_config, write_config

from dlhmc.config_check import INTEGER_KEYS, MAX_TRAIN_SEED, check_values, duplicate_keys
from dlhmc.families import NETWORKS
from dlhmc.groups import GROUPS

KEY = "experiments.tiny"


def _tiny() -> dict:
    return copy.deepcopy(tiny_config()["experiments"]["tiny"])


def _with(section, key, value) -> dict:
    exp = _tiny()
    (exp[section] if section else exp)[key] = value
    return exp


def test_tiny_config_is_clean():
    assert check_values("tiny", _tiny()) == []


@pytest.mark.parametrize(
    ("section", "key", "value", "named", "words"),
    [
        # case 12
        ("train", "steps", 400.0, "train.steps", "expected an integer, got 400.0"),
        (None, "seed", 1.0, "seed", "expected an integer, got 1.0"),
        (None, "seed", 1e20, "seed", "expected an integer"),
        ("train", "lr", math.nan, "train.lr", "expected a finite number, got nan"),
        ("train", "clip", math.inf, "train.clip", "expected a finite number, got inf"),
        ("train", "eps_init", math.inf, "train.eps_init", "finite number"),
        ("infer", "trajectories", 5, "infer.trajectories", "at least 10 trajectories"),
        ("hmc", "trajectories", 9, "hmc.trajectories", "at least 10 trajectories"),
        # case 13
        (None, "betas", [1.0, math.nan], "betas[1]", "finite number, got nan"),
        (None, "lattices", [[8.0, 8]], "lattices[0][0]", "expected an integer, got 8.0"),
        ("hmc", "nlf", [10.0], "hmc.nlf[0]", "expected an integer, got 10.0"),
        ("train", "lattice", [4, 4.5], "train.lattice[1]", "expected an integer, got 4.5"),
        ("train", "hidden", [8, True], "train.hidden[1]", "expected an integer, got True"),
        ("hmc", "length", [-math.inf], "hmc.length[0]", "finite number, got -inf"),
        # names from a registry (dlhmc.groups.GROUPS, dlhmc.families.FAMILIES)
        (None, "group", "Z2", "group", f"expected one of {', '.join(GROUPS)}, got 'Z2'"),
        ("train", "network", "flow", "train.network",
         f"expected one of {', '.join(NETWORKS)}, got 'flow'"),
        (None, "variants", {"v": {"network": "mlp"}}, "variants.v.network",
         f"expected one of {', '.join(NETWORKS)}, got 'mlp'"),
    ],
)
def test_each_problem_named_by_key(section, key, value, named, words):
    problems = check_values("tiny", _with(section, key, value))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{KEY}.{named}: ") and words in problems[0]


def test_seeds_must_leave_room_for_every_derived_seed():
    exp = _with(None, "seed", MAX_TRAIN_SEED - 2)
    assert check_values("tiny", exp) == []
    exp["seed"] += 1
    assert check_values("tiny", exp) == [
        f"{KEY}.seed: expected an integer in [0, {MAX_TRAIN_SEED - 2}] (training rank r uses "
        f"seed + r, inference seed + 1, HMC seed + 2), got {MAX_TRAIN_SEED - 1}"
    ]
    exp = _with("train", "ranks", 8)
    exp["seed"] = MAX_TRAIN_SEED - 7
    assert check_values("tiny", exp) == []
    exp["seed"] += 1
    assert [p.split(":")[0] for p in check_values("tiny", exp)] == [f"{KEY}.seed"]
    assert check_values("tiny", _with(None, "seed", -1))[0].startswith(f"{KEY}.seed: ")


def test_several_problems_all_reported():
    exp = _with("train", "steps", 400.0)
    exp["betas"] = [math.nan]
    exp["infer"]["trajectories"] = 3
    keys = sorted(p.split(":")[0] for p in check_values("tiny", exp))
    assert keys == [f"{KEY}.betas[0]", f"{KEY}.infer.trajectories", f"{KEY}.train.steps"]


@pytest.mark.parametrize("exp", [None, 3, "text", [1, 2], {"train": 5, "seed": "x"}, {}])
def test_never_raises_on_ill_typed_experiments(exp):
    problems = check_values("odd", exp)
    assert all(p.startswith("experiments.odd") for p in problems)


def _schema_integer_keys(node, pattern: str, defs: dict, found: set) -> None:
    if "$ref" in node:
        target = {"$defs": defs}
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    if node.get("type") == "integer":
        found.add(pattern)
    if node.get("type") == "array" and "items" in node:
        _schema_integer_keys(node["items"], f"{pattern}[]", defs, found)
    for name, sub in node.get("properties", {}).items():
        _schema_integer_keys(sub, f"{pattern}.{name}" if pattern else name, defs, found)
    for sub in node.get("oneOf", []) + node.get("anyOf", []):
        _schema_integer_keys(sub, pattern, defs, found)


def test_integer_keys_are_the_schemas():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    found: set = set()
    _schema_integer_keys(schema["$defs"]["experiment"], "", schema["$defs"], found)
    assert found == INTEGER_KEYS


def test_config_check_is_torch_free():
    code = "import sys, dlhmc.config_check; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --- case 14: duplicated keys --------------------------------------------------------------------

DUPLICATED = """\
experiments:
  tiny:
    group: U1
    betas: [1.0, 2.0]
    train:
      steps: 6
      steps: 7
    betas: [3.0]
  other:
    hmc:
      points: [{nlf: 2, eps: 0.1, nlf: 3}]
"""


def test_duplicated_keys_named_with_lines(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(DUPLICATED)
    assert duplicate_keys(path) == [
        f"{path}: experiments.tiny.train.steps: duplicated key (lines 6 and 7; "
        "YAML would keep the last one silently)",
        f"{path}: experiments.tiny.betas: duplicated key (lines 4 and 8; "
        "YAML would keep the last one silently)",
        f"{path}: experiments.other.hmc.points[0].nlf: duplicated key (lines 11 and 11; "
        "YAML would keep the last one silently)",
    ]
    assert yaml.safe_load(path.read_text())["experiments"]["tiny"]["betas"] == [3.0]


def test_no_duplicates_in_shipped_configs(tmp_path):
    for path in [REPO / "config.yaml", *sorted((REPO / "configs").glob("*.yaml"))]:
        assert duplicate_keys(path) == []
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    assert duplicate_keys(tmp_path / "bad.yaml") == []  # the config loader reports it
    assert duplicate_keys(tmp_path / "missing.yaml") == []


# --- the workflow stops before any job ---------------------------------------------------------


def _stops_naming(tmp_path: Path, cfg: Path, expected: list[str]) -> None:
    result = snakemake("--cores", "1", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode != 0
    assert "Invalid config" in result.stderr
    for text in expected:
        assert text in result.stderr, f"{text!r} not in:\n{result.stderr}"
    assert planned_jobs(result.stdout + result.stderr) == []
    assert not Path(tmp_path, "results").exists()


def test_workflow_names_non_integer_nan_and_short_runs(tmp_path):
    config = tiny_config()
    exp = config["experiments"]["tiny"]
    exp["train"]["steps"] = 400.0
    exp["lattices"] = [[4.0, 4.0]]
    exp["train"]["lr"] = math.nan
    exp["infer"]["trajectories"] = 5
    cfg = write_config(tmp_path / "bad.yaml", config)
    _stops_naming(tmp_path, cfg, [
        "experiments.tiny.train.steps: expected an integer, got 400.0",
        "experiments.tiny.lattices[0][0]: expected an integer, got 4.0",
        "experiments.tiny.train.lr: expected a finite number, got nan",
        "experiments.tiny.infer.trajectories: the analysis needs at least 10",
    ])  # fmt: skip


@pytest.mark.slow
def test_workflow_names_duplicated_key(tmp_path):
    text = (REPO / "tests" / "data" / "tiny_config.yaml").read_text()
    text = text.replace("    betas: [1.0, 2.0]\n", "    betas: [1.0, 2.0]\n    betas: [3.0]\n")
    cfg = tmp_path / "dup.yaml"
    cfg.write_text(text)
    _stops_naming(tmp_path, cfg, [f"{cfg}: experiments.tiny.betas: duplicated key"])
