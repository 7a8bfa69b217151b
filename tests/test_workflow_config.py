"""Dry runs of the shipped configs, and invalid configs stopped before any job with the key named.

Each dry run is a real `snakemake -n` in a temporary directory, so what is tested is what a user
sees. Every invalid config goes through `dlhmc check-config`, which runs the workflow's checks in
the workflow's order without Snakemake (milliseconds in-process); one config of each kind of
problem also goes through a real Snakemake start (~2.5 CPU-s each), which must stop before any job
with the line check-config printed.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from workflow_helpers import (
    REPO,
    TINY_CONFIG,
    planned_jobs,
    snakemake,
    tiny_config,
    write_config,
)

from dlhmc.cli import main

SHIPPED_CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def test_default_config_dry_run(tmp_path):
    """A bare `snakemake -n` with config.yaml in the working directory plans the whole pipeline."""
    (tmp_path / "config.yaml").symlink_to(REPO / "config.yaml")
    result = snakemake("-n", "--cores", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    rules = [rule for rule, _ in planned_jobs(result.stdout)]
    experiments = config["experiments"].values()
    assert rules.count("train") == sum(len(e["lattices"]) * len(e["betas"]) for e in experiments)
    for name in config["experiments"]:
        assert f"results/{name}/report/report.html" in result.stdout
    for rule in ("train", "infer", "hmc", "analyze", "report", "all"):
        assert rule in rules


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=[p.stem for p in SHIPPED_CONFIGS])
def test_paper_config_dry_run(tmp_path, path):
    """--configfile replaces config.yaml: only the file's experiments are planned, all of them."""
    (tmp_path / "config.yaml").symlink_to(REPO / "config.yaml")
    result = snakemake("-n", "--cores", "1", "--configfile", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(path.read_text())
    jobs = planned_jobs(result.stdout)
    planned = {w["exp"] for _, w in jobs if "exp" in w}
    assert planned == set(config["experiments"])
    for name, exp in config["experiments"].items():
        trains = [w for rule, w in jobs if rule == "train" and w["exp"] == name]
        # One ladder per sampled volume, or one on train.lattice (a local model for them all).
        volumes = 1 if "lattice" in exp["train"] else len(exp["lattices"])
        assert len(trains) == volumes * len(exp["betas"])
        infers = [w for rule, w in jobs if rule == "infer" and w["exp"] == name]
        assert len(infers) == len(exp["lattices"]) * len(exp["betas"])


def test_paper_scale_experiments_are_shipped():
    """configs/ holds the paper's U(1) 16x16 ladder 1..7 and SU(3) on 4^4 and 8^4."""
    shipped = {}
    for path in SHIPPED_CONFIGS:
        shipped.update(yaml.safe_load(path.read_text())["experiments"])
    volumes = {(e["group"], tuple(shape)) for e in shipped.values() for shape in e["lattices"]}
    assert {("U1", (16, 16)), ("SU3", (4, 4, 4, 4)), ("SU3", (8, 8, 8, 8))} <= volumes
    u1 = [e for e in shipped.values() if e["group"] == "U1" and [16, 16] in e["lattices"]]
    assert any(e["betas"][0] == 1.0 and e["betas"][-1] == 7.0 for e in u1)


def test_tiny_config_dry_run(tmp_path):
    result = snakemake("-n", "--cores", "1", "--configfile", str(TINY_CONFIG), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    counts = {}
    for rule, _ in planned_jobs(result.stdout):
        counts[rule] = counts.get(rule, 0) + 1
    assert counts == {"train": 2, "infer": 2, "hmc": 4, "analyze": 1, "report": 1, "all": 1}


def test_hmc_grid_crosses_integrators_and_instanton_hits(tmp_path):
    """Plain HMC keeps its short file names; winding HMC and Omelyan are new points with
    their options on the command line, and hits 0 is planned once whatever the sizes."""
    config = copy.deepcopy(tiny_config())
    config["experiments"]["tiny"]["hmc"].update(
        integrator=["leapfrog", "omelyan"], instanton_hits=[0, 2], instanton_size=[0, 2]
    )
    cfg = write_config(tmp_path / "w.yaml", config)
    result = snakemake("-n", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    points = {w["point"] for rule, w in planned_jobs(result.stdout) if rule == "hmc"}
    stems = ("", "_hits2_size0", "_hits2_size2", "_omelyan", "_omelyan_hits2_size0",
             "_omelyan_hits2_size2")  # fmt: skip
    assert points == {f"nlf2_eps{eps}{stem}" for eps in ("0.25", "0.5") for stem in stems}
    assert "--integrator omelyan --instanton-hits 2 --instanton-size 2" in result.stdout


def test_explicit_points_may_name_their_own_variant(tmp_path):
    """A point with its own instanton hits or integrator runs with those only (not crossed with
    the grid's variants), so a config can add a few winding-HMC points cheaply."""
    config = copy.deepcopy(tiny_config())
    config["experiments"]["tiny"]["hmc"]["points"] = [
        {"nlf": 2, "eps": 0.5, "instanton_hits": 3},
        {"nlf": 2, "eps": 0.25, "integrator": "omelyan"},
    ]
    cfg = write_config(tmp_path / "p.yaml", config)
    result = snakemake("-n", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    points = {w["point"] for rule, w in planned_jobs(result.stdout) if rule == "hmc"}
    assert points == {"nlf2_eps0.25", "nlf2_eps0.5", "nlf2_eps0.5_hits3_size0",
                      "nlf2_eps0.25_omelyan"}  # fmt: skip


def test_train_ladder_and_mpi_launch(tmp_path):
    """Each beta starts from the model of the previous one; ranks > 1 run under the mpi launcher."""
    config = tiny_config()
    config["experiments"]["tiny"]["train"]["ranks"] = 2
    cfg = write_config(tmp_path / "c.yaml", config)
    result = snakemake("-n", "-p", "--cores", "1", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--init results/tiny/4x4/beta1.0/model " in result.stdout
    assert result.stdout.count("--init ") == 1
    assert result.stdout.count("mpiexec -n 2 dlhmc train") == 2
    override = snakemake(
        "-n", "-p", "--cores", "1", "--configfile", str(cfg),
        "--set-resources", "train:mpi='srun --cpu-bind=cores'", "train:tasks=4",
        cwd=tmp_path,
    )  # fmt: skip
    assert override.returncode == 0, override.stderr
    assert override.stdout.count("srun --cpu-bind=cores -n 4 dlhmc train") == 2


def _job_text(dry_run_output: str, rule: str, **wildcards) -> str:
    """The printed job of ``rule`` with these wildcards, whitespace collapsed (shell included)."""
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_output):
        if re.match(rf"(?:local)?rule {rule}:", block) and all(
            f"{k}={v}" in block for k, v in wildcards.items()
        ):
            return " ".join(block.split())
    raise AssertionError(f"no {rule} job with {wildcards}")


def test_beta_transfer_dry_run(tmp_path):
    """At every beta above the first: the model of the beta below sampled at this beta, and
    retrained here from it for beta_transfer of the steps (configured warm-up and annealing
    lengths scaled with them); the analysis gets those chain files apart, with --transfer."""
    config = tiny_config()
    exp = config["experiments"]["tiny"]
    exp["betas"] = [1.0, 2.0, 3.0]
    exp["beta_transfer"] = 0.5
    exp["train"].update(warmup=2, anneal_from=0.5, anneal_steps=4)
    cfg = write_config(tmp_path / "transfer.yaml", config)
    result = snakemake("-n", "-p", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert Counter(rule for rule, _ in jobs) == {
        "train": 3, "transfer_train": 2, "infer": 3, "transfer_infer": 4, "hmc": 6,
        "analyze": 1, "report": 1, "all": 1,
    }  # fmt: skip
    assert {(w["beta"], w["stage"]) for r, w in jobs if r == "transfer_infer"} == {
        (b, k) for b in ("2.0", "3.0") for k in ("none", "retrained")
    }
    for beta, below in (("2.0", "1.0"), ("3.0", "2.0")):
        base = f"results/tiny/4x4/beta{beta}"
        ladder_infer = _job_text(result.stdout, "infer", beta=beta)
        seed = re.search(r"--seed \d+", ladder_infer).group()
        none = _job_text(result.stdout, "transfer_infer", beta=beta, stage="none")
        assert f"--checkpoint results/tiny/4x4/beta{below}/model " in none
        assert f"--beta {beta} " in none and seed in none
        assert f"--out {base}/transfer/none.nc " in none
        retrained = _job_text(result.stdout, "transfer_infer", beta=beta, stage="retrained")
        assert f"--checkpoint {base}/transfer/model " in retrained
        assert f"--beta {beta} " in retrained and seed in retrained
        train = _job_text(result.stdout, "transfer_train", beta=beta)
        assert f"work={base}/transfer/train_work " in train
        assert f"--beta {beta} " in train and f"--init results/tiny/4x4/beta{below}/model " in train
        assert "--steps 3 " in train and "--warmup 1 " in train and "--anneal-steps 2 " in train
        ladder = _job_text(result.stdout, "train", beta=beta)
        assert "--steps 6 " in ladder and "--warmup 2 " in ladder and "--anneal-steps 4 " in ladder
    analyze = _job_text(result.stdout, "analyze").split("Shell command:")[1]
    transfer = " ".join(
        f"results/tiny/4x4/beta{b}/transfer/{k}.nc" for b in ("2.0", "3.0")
        for k in ("none", "retrained")
    )  # fmt: skip
    assert f"--transfer {transfer} --out" in analyze
    assert "/transfer/" not in analyze.split("--transfer")[0]


def test_variants_train_their_own_ladders(tmp_path):
    """Each variant trains its own ladder (warm-started within the variant) with `train` and its
    own settings merged, samples every volume (a local variant on its training lattice once),
    and its chains join the analysis; the ladder's own jobs keep their names."""
    config = tiny_config()
    exp = config["experiments"]["tiny"]
    exp["lattices"] = [[4, 4], [6, 6]]
    exp["variants"] = {
        "wind": {"winding": 1, "nlf": 3},
        "loc": {"network": "local", "lattice": [4, 4]},
    }
    cfg = write_config(tmp_path / "variants.yaml", config)
    result = snakemake("-n", "-p", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert Counter(rule for rule, _ in jobs) == {
        "train": 4, "train_variant": 4 + 2, "infer": 4, "infer_variant": 4 + 4, "hmc": 8,
        "analyze": 1, "report": 1, "all": 1,
    }  # fmt: skip
    wind = _job_text(result.stdout, "train_variant", variant="wind", beta="2.0", lattice="6x6")
    assert "--nlf 3 " in wind and "--winding 1 " in wind and "--steps 6 " in wind
    assert "--init results/tiny/6x6/beta1.0/learned/wind/model " in wind
    assert "work=results/tiny/6x6/beta2.0/learned/wind/train_work " in wind
    local = _job_text(result.stdout, "infer_variant", variant="loc", beta="2.0", lattice="6x6")
    assert "--checkpoint results/tiny/4x4/beta2.0/learned/loc/model --lattice 6 6 " in local
    assert "--out results/tiny/6x6/beta2.0/learned/loc/l2hmc.nc " in local
    ladder = _job_text(result.stdout, "train", beta="2.0", lattice="4x4")
    assert "--winding" not in ladder and "work=results/tiny/4x4/beta2.0/train_work " in ladder
    analyze = _job_text(result.stdout, "analyze").split("Shell command:")[1]
    for path in ("4x4/beta1.0/l2hmc.nc", "6x6/beta2.0/learned/wind/l2hmc.nc",
                 "6x6/beta1.0/learned/loc/l2hmc.nc"):  # fmt: skip
        assert f"results/tiny/{path}" in analyze


def _bad(mutate):
    config = copy.deepcopy(tiny_config())
    exp = config["experiments"].pop("tiny")
    config["experiments"]["bad_exp"] = exp
    mutate(config, exp)
    return config


def _set(section, key, value):
    def mutate(config, exp):
        (exp[section] if section else exp)[key] = value

    return mutate


def _delete(key):
    def mutate(config, exp):
        del exp[key]

    return mutate


def _rename(name):
    def mutate(config, exp):
        config["experiments"] = {name: config["experiments"].pop("bad_exp")}

    return mutate


# (id, mutation, strings stderr must contain: the experiment and the key, then the problem)
INVALID = [
    ("negative_steps", _set("train", "steps", -5), ["experiments.bad_exp.train.steps", "minimum"]),
    ("zero_batch", _set("train", "batch", 0), ["experiments.bad_exp.train.batch"]),
    ("string_batch", _set("train", "batch", "64"), ["experiments.bad_exp.train.batch", "type"]),
    ("lr_as_string", _set("train", "lr", "1e-3"), ["experiments.bad_exp.train.lr", "type"]),
    ("ranks_zero", _set("train", "ranks", 0), ["experiments.bad_exp.train.ranks"]),
    ("unknown_train_key", _set("train", "stepz", 3), ["experiments.bad_exp.train", "stepz"]),
    ("unknown_experiment_key", _set(None, "volume", 3), ["experiments.bad_exp", "volume"]),
    ("missing_betas", _delete("betas"), ["experiments.bad_exp", "'betas' is a required"]),
    ("missing_train", _delete("train"), ["experiments.bad_exp", "'train' is a required"]),
    ("missing_steps", lambda c, e: e["train"].pop("steps"), ["experiments.bad_exp.train", "steps"]),
    ("unknown_group", _set(None, "group", "SU2"), ["experiments.bad_exp.group", "SU2"]),
    ("decreasing_ladder", _set(None, "betas", [2.0, 1.0]),
     ["experiments.bad_exp.betas", "strictly increasing", "[2.0, 1.0]"]),
    ("repeated_beta", _set(None, "betas", [1.0, 1.0]),
     ["experiments.bad_exp.betas", "strictly increasing"]),
    ("empty_ladder", _set(None, "betas", []), ["experiments.bad_exp.betas", "non-empty"]),
    ("negative_beta", _set(None, "betas", [-1.0, 2.0]), ["experiments.bad_exp.betas[0]"]),
    ("u1_lattice_3d", _set(None, "lattices", [[4, 4, 4]]),
     ["experiments.bad_exp.lattices[0]", "U1 needs 2 extents"]),
    ("su3_lattice_2d", _set(None, "group", "SU3"),
     ["experiments.bad_exp.lattices[0]", "SU3 needs 4 extents"]),
    ("lattice_extent_1", _set(None, "lattices", [[4, 1]]),
     ["experiments.bad_exp.lattices[0][1]", "minimum"]),
    ("negative_extent", _set(None, "lattices", [[-4, 4]]), ["experiments.bad_exp.lattices[0][0]"]),
    ("duplicate_volume", _set(None, "lattices", [[4, 4], [4, 4]]),
     ["experiments.bad_exp.lattices", "duplicate"]),
    ("lattices_not_list", _set(None, "lattices", "4x4"), ["experiments.bad_exp.lattices", "type"]),
    ("negative_therm", _set("infer", "therm", -1), ["experiments.bad_exp.infer.therm"]),
    ("hmc_no_grid", _set(None, "hmc", {"chains": 4}),
     ["experiments.bad_exp.hmc", "no grid points"]),
    ("hmc_nlf_without_length", lambda c, e: e["hmc"].pop("length"),
     ["experiments.bad_exp.hmc", "length"]),
    ("hmc_zero_eps", _set("hmc", "points", [{"nlf": 4, "eps": 0}]),
     ["experiments.bad_exp.hmc.points[0].eps"]),
    ("warmup_not_below_steps", _set("train", "warmup", 6),
     ["experiments.bad_exp.train.warmup", "smaller than train.steps"]),
    ("anneal_not_below_steps",
     lambda c, e: e["train"].update(anneal_from=0.5, anneal_steps=e["train"]["steps"]),
     ["experiments.bad_exp.train.anneal_steps", "smaller than train.steps"]),
    ("unknown_activation", _set("train", "activation", "gelu"),
     ["experiments.bad_exp.train.activation", "gelu"]),
    ("bad_device", _set(None, "device", "tpu"), ["experiments.bad_exp.device", "tpu"]),
    ("bad_experiment_name", _rename("bad exp"), ["experiments", "bad exp"]),
    ("no_experiments", lambda c, e: c.update(experiments={}), ["experiments", "non-empty"]),
    ("unknown_top_level_key", lambda c, e: c.update(targets=["x"]), ["config", "targets"]),
    ("instanton_size_too_large", lambda c, e: e["hmc"].update(instanton_hits=[1],
                                                              instanton_size=[5]),
     ["experiments.bad_exp.hmc.instanton_size", "2..4"]),
    ("instanton_size_one", lambda c, e: e["hmc"].update(instanton_hits=[0, 3],
                                                        instanton_size=[1]),
     ["experiments.bad_exp.hmc.instanton_size", "0 (delocalized)"]),
    ("instanton_hits_negative", _set("hmc", "instanton_hits", [-1]),
     ["experiments.bad_exp.hmc.instanton_hits[0]", "minimum"]),
    ("instanton_hits_su3",
     lambda c, e: e.update(group="SU3", lattices=[[2, 2, 2, 2]],
                           hmc={**e["hmc"], "instanton_hits": [2]}),
     ["experiments.bad_exp.hmc.instanton_hits", "U1 only"]),
    ("point_instanton_size_too_large",
     _set("hmc", "points", [{"nlf": 2, "eps": 0.5, "instanton_hits": 2, "instanton_size": 5}]),
     ["experiments.bad_exp.hmc.points[0].instanton_size", "2..4"]),
    ("unknown_integrator", _set("hmc", "integrator", ["verlet"]),
     ["experiments.bad_exp.hmc.integrator[0]", "verlet"]),
    ("train_lattice_dense", _set("train", "lattice", [4, 4]),
     ["experiments.bad_exp.train.lattice", "network: local"]),
    ("beta_transfer_zero", _set(None, "beta_transfer", 0),
     ["experiments.bad_exp.beta_transfer", "less than or equal to the minimum of 0"]),
    ("beta_transfer_above_one", _set(None, "beta_transfer", 1.5),
     ["experiments.bad_exp.beta_transfer", "greater than the maximum of 1"]),
    ("beta_transfer_string", _set(None, "beta_transfer", "10%"),
     ["experiments.bad_exp.beta_transfer", "type"]),
    ("beta_transfer_too_short_to_anneal",
     lambda c, e: e.update(beta_transfer=0.1, train={**e["train"], "anneal_from": 0.5}),
     ["experiments.bad_exp.beta_transfer", "too few to anneal"]),
    ("variant_unknown_key", _set(None, "variants", {"plain": {"windng": 0}}),
     ["experiments.bad_exp.variants.plain", "windng"]),
    ("variant_float_integer", _set(None, "variants", {"plain": {"winding": 1.0}}),
     ["experiments.bad_exp.variants.plain.winding", "expected an integer"]),
    ("variant_wrong_type", _set(None, "variants", {"plain": {"nlf": "four"}}),
     ["experiments.bad_exp.variants.plain.nlf", "type"]),
    ("variant_bad_name", _set(None, "variants", {"Plain-1": {"winding": 0}}),
     ["experiments.bad_exp.variants", "Plain-1"]),
    ("variant_lattice_dense", _set(None, "variants", {"v": {"lattice": [4, 4]}}),
     ["experiments.bad_exp.variants.v.lattice", "network: local"]),
    ("variant_winding_su3",
     lambda c, e: e.update(group="SU3", lattices=[[2, 2, 2, 2]],
                           variants={"w": {"winding": 1}}),
     ["experiments.bad_exp.variants.w.winding", "U1 only"]),
]  # fmt: skip


SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def check_config_problems(cfg: Path, capsys) -> list[str]:
    """The lines `dlhmc check-config` prints for an invalid config (its exit status must be 2)."""
    assert main(["check-config", str(cfg), "--schema", str(SCHEMA)]) == 2
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
    "mutate, expected", [pytest.param(*case[1:], id=case[0]) for case in INVALID]
)
def test_check_config_names_the_key_of_every_invalid_config(tmp_path, capsys, mutate, expected):
    cfg = write_config(tmp_path / "bad.yaml", _bad(mutate))
    printed = "\n".join(check_config_problems(cfg, capsys))
    for text in expected:
        assert text in printed, f"{text!r} not in:\n{printed}"


# One of each kind of problem through Snakemake by default: a schema bound, an unknown key, a
# missing key, a check of the plan's (a ladder, a lattice, a rule between keys), a variant's
# value, the top level; the others run with -m slow.
DEFAULT_RUN = {
    "negative_steps", "unknown_train_key", "missing_betas", "decreasing_ladder", "u1_lattice_3d",
    "beta_transfer_too_short_to_anneal", "variant_float_integer", "unknown_top_level_key",
}  # fmt: skip
CASES = [
    pytest.param(*case[1:], id=case[0], marks=() if case[0] in DEFAULT_RUN else pytest.mark.slow)
    for case in INVALID
]


@pytest.mark.parametrize("mutate, expected", CASES)
def test_invalid_config_stops_before_any_job(tmp_path, capsys, mutate, expected):
    """A real run (not a dry run: that one reports on stdout) stops while reading the config,
    with the problem as check-config words it."""
    cfg = write_config(tmp_path / "bad.yaml", _bad(mutate))
    first_problem = check_config_problems(cfg, capsys)[0]
    result = snakemake("--cores", "1", "--configfile", str(cfg), cwd=tmp_path)
    assert result.returncode != 0
    assert "Invalid config" in result.stderr
    assert first_problem in result.stderr, f"{first_problem!r} not in:\n{result.stderr}"
    for text in expected:
        assert text in result.stderr, f"{text!r} not in:\n{result.stderr}"
    assert "Job stats" not in result.stdout + result.stderr
    assert planned_jobs(result.stdout + result.stderr) == []
    assert not Path(tmp_path, "results").exists()
