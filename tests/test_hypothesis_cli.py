"""Property-based tests (issue 12): hostile option values never give a traceback or silent NaN.

Every command runs in-process on a tiny problem with one or two of its options replaced by a
generated value (negative, zero, huge, NaN, infinities, text, a float for an integer, a wrong
number of extents).  Each run must end in one of three ways: exit 0 with finite outputs, exit 2
with exactly one line on stderr (a usage error before any work), or exit 1 whose last stderr line
is the error naming the numerical fault.  Values that are valid but only slow (``--therm 10^12``)
are not generated: they are not errors.  The config check gets generated experiment dicts.

The default budget keeps the file near a minute on one core; ``-m slow`` runs more examples.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from train_helpers import TINY

from dlhmc import checkpoint as ckpt
from dlhmc.cli import main
from dlhmc.config_check import check_values
from dlhmc.io import read_chains

INT_BAD = ["-1", "0", "1.5", "abc", "", "nan", "1e3", "0x10", "--"]
INT_HUGE = ["1000000000000", "99999999999999999999999", "18446744073709551616"]
FLOAT_BAD = ["-1", "0", "nan", "inf", "-inf", "abc", "", "-1e-300"]
FLOAT_HUGE = ["1e300", "1.7e308", "1e308"]
FLOAT_TINY = ["1e-320", "5e-324"]
DEVICES = ["meta", "mps", "", "xyz", "cuda:x", "cuda:-1", "CPU", "cuda:99"]
EXTENTS = [[], ["4"], ["4", "4", "4"], ["0", "4"], ["-4", "4"], ["4.0", "4"], ["nan", "4"],
           ["1000000", "1000000"], ["99999999999999999999999", "4"], ["3", "5"]]  # fmt: skip

# Which hostile values each kind of option gets: counts that only cost time get no huge values.
KINDS = {
    "int": INT_BAD + INT_HUGE,
    "count": INT_BAD,
    "float": FLOAT_BAD + FLOAT_HUGE + FLOAT_TINY,
    "fraction": FLOAT_BAD + ["1.5", "1e300", "1e-320"],
    "device": DEVICES,
    "network": ["local", "dense", "conv", ""],
    "conv": ["separable", "full", "depthwise", ""],
}
BUDGET = settings(max_examples=60, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
SLOW_BUDGET = settings(max_examples=300, deadline=None,
                       suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


def hostile(options: dict[str, str], extents: tuple[str, ...] = ()):
    """One or two ``(option, values)`` replacements for ``options`` (name -> kind)."""
    single = st.sampled_from(sorted(options)).flatmap(
        lambda name: st.sampled_from(KINDS[options[name]]).map(lambda v: (name, [v]))
    )
    several = st.sampled_from(extents).flatmap(
        lambda name: st.sampled_from(EXTENTS).map(lambda v: (name, v))
    ) if extents else single
    return st.lists(st.one_of(single, several), min_size=1, max_size=2, unique_by=lambda c: c[0])


def replace(base: list[str], changes) -> list[str]:
    """``base`` with the values of the changed options replaced (options with several values
    take every following token up to the next option)."""
    args, i = [], 0
    changed = dict(changes)
    while i < len(base):
        token = base[i]
        j = i + 1
        while j < len(base) and not base[j].startswith("--"):
            j += 1
        if token in changed:
            args += [token, *changed.pop(token)] if changed[token] else [token]
        else:
            args += base[i:j]
        i = j
    for name, values in changed.items():
        args += [name, *values]
    return args


def invoke(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exit_:
            code = exit_.code
    return code, err.getvalue().strip()


def outcome(command: str, code: int, err: str) -> None:
    """The three allowed endings; the caller checks the outputs of exit 0."""
    assert "Traceback" not in err, err
    lines = err.splitlines()
    if code == 2:  # argparse's "unrecognized arguments" comes from the main parser: "dlhmc:"
        assert len(lines) == 1, err
        assert lines[0].startswith((f"dlhmc {command}: error: ", "dlhmc: error: ")), err
    elif code == 1:
        assert lines and lines[-1].startswith(f"dlhmc {command}: error:"), err
    else:
        assert code == 0, (code, err)


def finite_chain_file(path) -> None:
    """Observables finite; a non-finite dH or acceptance only where flagged divergent."""
    data = read_chains(path)
    divergent = data["divergent"].values.astype(bool)
    for name in data.data_vars:
        values = data[name].values
        if values.dtype.kind != "f" or values.shape != divergent.shape:
            assert np.isfinite(values).all() if values.dtype.kind == "f" else True, name
            continue
        assert np.isfinite(values[~divergent]).all(), name
        if name in ("plaq", "charge", "charge_real"):
            assert np.isfinite(values).all(), name


_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("hyp")


def fresh(workdir, name: str):
    return workdir / f"{name}{next(_counter)}"


# --- hmc ------------------------------------------------------------------------------------------

HMC_BASE = ["hmc", "--lattice", "4", "4", "--beta", "2", "--nlf", "3", "--eps", "0.2", "--chains",
            "2", "--trajectories", "4", "--therm", "0", "--seed", "0", "--device", "cpu",
            "--no-progress"]  # fmt: skip
HMC_OPTIONS = {"--beta": "float", "--nlf": "count", "--eps": "float", "--chains": "int",
               "--trajectories": "int", "--therm": "count", "--seed": "int", "--device": "device",
               "--instanton-hits": "count", "--instanton-size": "count"}  # fmt: skip


def _hmc(workdir, changes) -> None:
    out = fresh(workdir, "h") / "o.nc"
    code, err = invoke([*replace(HMC_BASE, changes), "--out", str(out)])
    outcome("hmc", code, err)
    if code == 0:
        finite_chain_file(out)


@BUDGET
@given(changes=hostile(HMC_OPTIONS, ("--lattice",)))
def test_hmc_options(workdir, changes):
    _hmc(workdir, changes)


@pytest.mark.slow
@SLOW_BUDGET
@given(changes=hostile(HMC_OPTIONS, ("--lattice",)))
def test_hmc_options_more(workdir, changes):
    _hmc(workdir, changes)


# --- trex (parallel tempering; the bridges' own checks are in tests/test_trex.py) -----------------

TREX_BASE = ["trex", "--lattice", "4", "4", "--betas", "1", "2", "--nlf", "3", "--eps", "0.2",
             "--chains", "2", "--trajectories", "4", "--therm", "0", "--seed", "0", "--device",
             "cpu", "--no-progress"]  # fmt: skip
TREX_OPTIONS = {"--nlf": "count", "--eps": "float", "--chains": "int", "--trajectories": "int",
                "--therm": "count", "--seed": "int", "--device": "device",
                "--swap-every": "count"}  # fmt: skip


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(changes=hostile(TREX_OPTIONS, ("--lattice", "--betas")))
def test_trex_options(workdir, changes):
    """A ladder's extents and couplings (``--betas`` gets the extents' lists: one value, equal
    or decreasing ones, NaN) and every shared option: the same three endings as ``hmc``."""
    out = fresh(workdir, "x")
    code, err = invoke([*replace(TREX_BASE, changes), "--out-dir", str(out)])
    outcome("trex", code, err)
    if code == 0:
        for path in sorted(out.glob("beta*.nc")):
            finite_chain_file(path)
        assert len(list(out.glob("beta*.nc"))) >= 2 and (out / "swaps.csv").is_file()
    if code == 2:
        assert not out.exists() or not list(out.glob("*.nc"))


# --- train and infer ------------------------------------------------------------------------------

TRAIN_OPTIONS = {"--beta": "float", "--nlf": "count", "--steps": "count", "--batch": "int",
                 "--lr": "float", "--seed": "int", "--eps-init": "float", "--clip": "float",
                 "--decay-to": "fraction", "--anneal-from": "fraction", "--plaq-weight": "float",
                 "--warmup": "count", "--winding": "count", "--mask-seed": "int",
                 "--device": "device", "--network": "network", "--local-conv": "conv"}  # fmt: skip


@BUDGET
@given(changes=hostile(TRAIN_OPTIONS, ("--lattice", "--hidden")))
def test_train_options(workdir, changes):
    base = [*TINY, "--steps", "2", "--device", "cpu"]
    train_ends(fresh(workdir, "t"), ["train", *replace(base, changes)])


def train_ends(run_dir, argv):
    """One of ``dlhmc train``'s three endings: a valid checkpoint (finite model, optimizer and
    chains), a usage error with nothing written, or a run-time error."""
    code, err = invoke([*argv, "--out", str(run_dir)])
    outcome("train", code, err)
    if code == 0:
        ckpt.load_valid(ckpt.checkpoint_path(run_dir))
    if code == 2:
        assert not (run_dir / "config.yaml").exists()


FLOW_TRAIN_BASE = ["train", "--sampler", "flow", "--group", "U1", "--lattice", "4", "4",
                   "--beta", "1", "--flow-layers", "2", "--hidden", "4", "--batch", "8",
                   "--steps", "2", "--seed", "0", "--device", "cpu", "--no-progress"]  # fmt: skip
# The flow's own options, the shared ones, and L2HMC's (refused unless at their defaults).
FLOW_TRAIN_OPTIONS = {"--beta": "float", "--flow-layers": "count", "--steps": "count",
                      "--batch": "int", "--lr": "float", "--seed": "int", "--clip": "float",
                      "--decay-to": "fraction", "--anneal-from": "fraction", "--warmup": "count",
                      "--device": "device", "--nlf": "count", "--winding": "count",
                      "--network": "network", "--local-conv": "conv"}  # fmt: skip


@BUDGET
@given(changes=hostile(FLOW_TRAIN_OPTIONS, ("--lattice", "--hidden")))
def test_flow_train_options(workdir, changes):
    """``train --sampler flow``: the same three endings as L2HMC training, and nothing written
    on a usage error."""
    train_ends(fresh(workdir, "f"), replace(FLOW_TRAIN_BASE, changes))


@pytest.fixture(scope="module")
def bridge_data(workdir):
    """An ensemble at beta 1 on 4x4 with configurations (2 chains x 10), for bridges."""
    path = workdir / "bridge_data.nc"
    code, err = invoke([*replace(HMC_BASE, [("--beta", ["1"]), ("--trajectories", ["10"])]),
                        "--save-every", "1", "--out", str(path)])
    assert code == 0, err
    return path


# The bridge's own options, the shared ones, and the others' (refused unless at their defaults).
BRIDGE_TRAIN_OPTIONS = {"--beta": "float", "--beta-from": "float", "--flow-layers": "count",
                        "--steps": "count", "--batch": "int", "--lr": "float", "--seed": "int",
                        "--clip": "float", "--decay-to": "fraction", "--anneal-from": "fraction",
                        "--warmup": "count", "--device": "device", "--nlf": "count",
                        "--network": "network"}  # fmt: skip


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(changes=hostile(BRIDGE_TRAIN_OPTIONS, ("--lattice", "--hidden")))
def test_bridge_train_options(workdir, bridge_data, changes):
    """``train --sampler bridge``: the same three endings, and nothing written on a usage
    error (a lattice or couplings that do not fit the data included)."""
    base = ["train", "--sampler", "bridge", "--group", "U1", "--lattice", "4", "4", "--beta",
            "1.2", "--beta-from", "1", "--data", str(bridge_data), "--flow-layers", "2",
            "--hidden", "4", "--batch", "4", "--steps", "2", "--seed", "0", "--device", "cpu",
            "--no-progress"]  # fmt: skip
    train_ends(fresh(workdir, "b"), replace(base, changes))


@pytest.fixture(scope="module")
def trained(workdir):
    run_dir = workdir / "trained"
    assert main(["train", *TINY, "--steps", "2", "--out", str(run_dir)]) == 0
    return run_dir


INFER_OPTIONS = {"--chains": "int", "--trajectories": "int", "--therm": "count", "--seed": "int",
                 "--beta": "float", "--device": "device", "--layer-samples": "count"}  # fmt: skip


@BUDGET
@given(changes=hostile(INFER_OPTIONS, ("--lattice",)))
def test_infer_options(workdir, trained, changes):
    out = fresh(workdir, "i") / "o.nc"
    base = ["infer", "--checkpoint", str(trained), "--chains", "2", "--trajectories", "10",
            "--therm", "0", "--device", "cpu", "--no-progress"]  # fmt: skip
    code, err = invoke([*replace(base, changes), "--out", str(out)])
    outcome("infer", code, err)
    if code == 0:
        finite_chain_file(out)
    if code == 2:
        assert not out.exists()


@pytest.fixture(scope="module")
def trained_flow(workdir):
    run_dir = workdir / "trained_flow"
    assert main(["train", "--sampler", "flow", "--group", "U1", "--lattice", "4", "4", "--beta",
                 "1", "--flow-layers", "2", "--hidden", "4", "--batch", "8", "--steps", "2",
                 "--no-progress", "--out", str(run_dir)]) == 0  # fmt: skip
    return run_dir


FLOW_INFER_OPTIONS = {"--chains": "int", "--trajectories": "int", "--therm": "count",
                      "--seed": "int", "--beta": "float", "--device": "device", "--nlf": "count",
                      "--eps": "float"}  # fmt: skip


@BUDGET
@given(changes=hostile(FLOW_INFER_OPTIONS, ("--lattice",)), flow_hmc=st.booleans())
def test_flow_infer_options(workdir, trained_flow, changes, flow_hmc):
    """Flow IMH (where --nlf and --eps are refused) and flow HMC (where they are needed)."""
    out = fresh(workdir, "f") / "o.nc"
    base = ["infer", "--checkpoint", str(trained_flow), "--chains", "2", "--trajectories", "6",
            "--therm", "0", "--device", "cpu", "--no-progress"]  # fmt: skip
    if flow_hmc:
        base += ["--flow-hmc", "--nlf", "2", "--eps", "0.2"]
    code, err = invoke([*replace(base, changes), "--out", str(out)])
    outcome("infer", code, err)
    if code == 0:
        finite_chain_file(out)
    if code == 2:
        assert not out.exists()


# --- analyze and report ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain_file(workdir):
    out = workdir / "chains.nc"
    assert main([*HMC_BASE, "--trajectories", "12", "--out", str(out)]) == 0
    return out


@settings(max_examples=8, deadline=None, derandomize=True)
@given(amortize=st.sampled_from(KINDS["int"]),
       where=st.sampled_from(["ok", "dir", "under_file"]))  # fmt: skip
def test_analyze_options(workdir, chain_file, amortize, where):
    folder = fresh(workdir, "a")
    folder.mkdir()
    (folder / "file").write_text("x")
    out = {"ok": folder / "t.csv", "dir": folder, "under_file": folder / "file" / "t.csv"}[where]
    args = ["analyze", str(chain_file), "--out", str(out), "--amortize-samples", amortize]
    code, err = invoke(args)
    outcome("analyze", code, err)
    if code == 0:
        import pandas as pd

        assert np.isfinite(pd.read_csv(out)["tau_int"]).all()


# --- derivative -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def derivative_files(workdir):
    """Two chain files of one lattice at two couplings, the first with configurations; long
    enough that every series moves (an all-rejected one has no error: exit 1, not 0)."""
    paths = workdir / "d_b1.nc", workdir / "d_b2.nc"
    for path, beta in zip(paths, ("2", "2.5"), strict=True):
        base = replace(HMC_BASE, [("--beta", [beta]), ("--nlf", ["5"]), ("--chains", ["4"]),
                                  ("--trajectories", ["20"]), ("--therm", ["20"])])
        assert main([*base, "--save-every", "2", "--out", str(path)]) == 0
    return paths


DERIVATIVE_OPTIONS = {"--batch": "int", "--device": "device"}


@settings(max_examples=12, deadline=None, derandomize=True)
@given(changes=hostile(DERIVATIVE_OPTIONS))
def test_derivative_options(workdir, derivative_files, changes):
    out = fresh(workdir, "d") / "d.csv"
    out.parent.mkdir()
    base = ["derivative", "--chains", *map(str, derivative_files), "--device", "cpu"]
    code, err = invoke([*replace(base, changes), "--out", str(out)])
    outcome("derivative", code, err)
    if code == 0:
        import pandas as pd

        assert np.isfinite(pd.read_csv(out)[["value", "error"]].to_numpy()).all()
    if code == 2:
        assert not out.exists()


# --- toy-gmm --------------------------------------------------------------------------------------

TOY_BASE = ["toy-gmm", "--steps", "2", "--batch", "4", "--chains", "2", "--trajectories", "3",
            "--hidden", "4", "--nlf", "2"]  # fmt: skip
TOY_OPTIONS = {"--steps": "count", "--batch": "int", "--seed": "int", "--nlf": "count",
               "--lr": "float", "--eps-init": "float", "--beta-init": "fraction",
               "--reciprocal-scale": "float", "--separation": "float", "--sigma": "float",
               "--chains": "int", "--trajectories": "int", "--hmc-nlf": "count",
               "--device": "device"}  # fmt: skip


def _finite_json(value) -> bool:
    if isinstance(value, dict):
        return all(_finite_json(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_json(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


@BUDGET
@given(changes=hostile(TOY_OPTIONS, ("--hidden", "--hmc-eps")))
def test_toy_gmm_options(workdir, changes):
    out = fresh(workdir, "g")
    code, err = invoke([*replace(TOY_BASE, changes), "--out", str(out)])
    outcome("toy-gmm", code, err)
    if code == 0:
        assert _finite_json(json.loads((out / "mode_fractions.json").read_text()))
    else:
        assert not (out / "mode_fractions.json").exists()


# --- the workflow's config check ------------------------------------------------------------------

SCALARS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(), st.text(max_size=4),
)  # fmt: skip
KEYS = st.sampled_from(["seed", "lattices", "betas", "train", "infer", "hmc", "steps", "lr",
                        "trajectories", "nlf", "ranks", "hidden", "points", "x"])  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(name=st.text(alphabet="ab_1.", min_size=1, max_size=5),
       exp=st.one_of(VALUES, st.dictionaries(KEYS, VALUES)))
def test_config_check_never_raises(name, exp):
    problems = check_values(name, exp)
    assert isinstance(problems, list)
    for problem in problems:
        assert problem.startswith(f"experiments.{name}") and "\n" not in problem.strip("\n")
