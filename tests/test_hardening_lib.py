"""Regression tests for the library side of issue 12 (hardening): each reproduces a numbered case.

Case 5: exact values at absurd beta / volume; case 6: damaged or mistyped chain files;
cases 7, 9: damaged or NaN checkpoints; case 15: stale temporaries of killed runs.
(Cases 1-3 and 16, the checks before any work, are in test_hardening_limits.py.)
"""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from dlhmc.analysis.chains import ChainFileError, load_chain_set
from dlhmc.io import chain_dataset, write_chains
from dlhmc.lattice import theory_class
from dlhmc.lattice.u1_exact import (
    MAX_ORDER,
    exact_plaquette,
    large_beta_error,
    large_beta_plaquette,
    log_partition_function,
    sector_distribution,
)

# --- case 5: bounded exact values ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("beta", "volume"), [(1e300, 16), (1.7e308, 16), (1e300, 10**6), (2.0, 10**6), (1e9, 2)]
)
def test_exact_values_have_bounded_cost(beta, volume):
    tracemalloc.start()
    try:
        value = exact_plaquette(beta, volume)
        log_z = log_partition_function(beta, volume)
        sectors = sector_distribution(beta, volume, 4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The theta-resolved sums hold at most (2 * 130 + 1) * 256 * 160 doubles a few times over.
    assert peak < 512 * 2**20
    assert value is not None and 0.0 < value <= 1.0
    if beta > 1e8:  # beyond the cap: the large-beta form, 1 to double precision here
        assert value == pytest.approx(1.0 - (1 - 1 / volume) / (2 * beta), abs=1e-15)
        assert log_z is None and sectors is None
    if volume == 10**6 and beta == 2.0:
        # Plaquettes decouple: the infinite-volume I1/I0, whose corrections are ~ 1/V.
        assert value == pytest.approx(0.6977746579640081, abs=1e-6)
        assert sectors is None  # the charge distribution is far wider than the theta grid


def test_theory_reports_large_beta_value_with_its_error():
    exact = theory_class("U1").exact_plaquette((4, 4), 1e300)
    assert exact.value == 1.0 and exact.error <= 1e-300 and "large-beta" in exact.source
    small = theory_class("U1").exact_plaquette((4, 4), 2.0)
    assert small.error == 0.0 and small.value == exact_plaquette(2.0, 16)


@pytest.mark.parametrize(
    ("beta", "volume"),
    [(b, v) for b in (30.0, 100.0, 1000.0, 3000.0) for v in (2, 4, 16, 64, 1024) if b >= v],
)
def test_large_beta_expansion_error_bound(beta, volume):
    """The stated bound 1 / (4 beta^3) against the Bessel sum, where both are computable."""
    exact = exact_plaquette(beta, volume)
    gap = abs(exact - large_beta_plaquette(beta, volume))
    assert gap <= large_beta_error(beta)
    # The bound is not loose by orders of magnitude: the beta^-3 term is really there.
    assert gap >= 0.01 * large_beta_error(beta)


def test_cap_is_reached_only_where_the_expansion_is_exact_to_rounding():
    # Non-convergence at MAX_ORDER means V MAX_ORDER^2 / (2 beta) < 60.
    beta_min = 2 * MAX_ORDER**2 / 120
    assert large_beta_error(beta_min) < 1e-16


def test_existing_exact_values_unchanged():
    """Values below the cap still come from the Bessel sum (against scipy's I_n directly)."""
    from scipy.special import iv

    for beta, volume in ((1.0, 16), (2.0, 64), (4.0, 64), (6.0, 256)):
        n = np.arange(-60, 61)
        ratio = iv(n, beta) / iv(0, beta)  # relative to I_0, so that powers stay finite
        z = (ratio**volume).sum()
        neighbours = (iv(n - 1, beta) + iv(n + 1, beta)) / (2 * iv(0, beta))
        num = (ratio ** (volume - 1) * neighbours).sum()
        assert exact_plaquette(beta, volume) == pytest.approx(num / z, rel=1e-12)
    charges, prob, _ = sector_distribution(2.0, 64, 12)
    assert prob.sum() == pytest.approx(1.0, abs=1e-10)


def test_sector_distribution_refuses_charges_the_grid_cannot_resolve():
    with pytest.raises(ValueError, match="max_charge"):
        sector_distribution(2.0, 16, 10**12)


# --- case 6: chain files validated on load ------------------------------------------------------

ATTRS = {
    "group": "U1",
    "lattice": (4, 4),
    "beta": 2.0,
    "sampler": "hmc",
    "nlf": 10,
    "eps": 0.1,
    "n_therm": 0,
    "seed": 0,
    "wall_seconds": 1.0,
    "traj_per_second": 200.0,
}


def real_chain_file(path: Path, **attrs) -> Path:
    rng = np.random.default_rng(0)
    shape = (4, 200)
    per_traj = {name: rng.random(shape) for name in ("plaq", "accept_prob", "dH")}
    per_traj["charge"] = rng.integers(-2, 3, shape).astype(float)  # U(1) Q_Z is an integer
    per_traj["accepted"] = rng.random(shape) < 0.5
    return write_chains(path, chain_dataset(per_traj, {**ATTRS, **attrs}))


def test_good_chain_file_loads(tmp_path):
    chains = load_chain_set(real_chain_file(tmp_path / "c.nc"))
    assert chains.lattice == (4, 4) and chains.nlf == 10 and chains.beta == 2.0


def _flip(path: Path, offset: int, count: int = 8) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("delta", [4, 16, 40])
def test_damaged_object_headers_are_named_at_load_time(tmp_path, delta):
    """Bytes flipped in each variable's HDF5 object header (checksummed): the variable is named.

    (Damage inside the global heap of string attributes, which HDF5 does not checksum, can make
    the HDF5 library itself loop forever; no reader in this process can stop that.)
    """
    import h5py

    good = real_chain_file(tmp_path / "c.nc")
    with h5py.File(good, "r") as handle:
        headers = {name: h5py.h5o.get_info(handle[name].id).addr for name in handle}
    assert {"plaq", "charge", "accepted"} <= set(headers)
    for name, address in headers.items():
        damaged = tmp_path / f"{name}.nc"
        damaged.write_bytes(good.read_bytes())
        _flip(damaged, address + delta)
        with pytest.raises(ChainFileError) as info:
            load_chain_set(damaged)
        message = str(info.value)
        assert message.startswith(f"{damaged}: {name}: damaged") and "\n" not in message


def test_damaged_signature_is_not_a_chain_file(tmp_path):
    path = real_chain_file(tmp_path / "c.nc")
    _flip(path, 0)
    with pytest.raises(ChainFileError, match=rf"^{path}: not a NetCDF chain file"):
        load_chain_set(path)


def test_damaged_variable_block_names_variable(tmp_path):
    """A damaged block inside a variable's data: the error names the file and the variable."""
    import h5py

    path = real_chain_file(tmp_path / "c.nc")
    with h5py.File(path, "r") as handle:  # one chunk, checksummed (Fletcher-32)
        header = handle["plaq"].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    for i in range(header, header + 8 * 4 * 200, 8):  # every plaq value -> NaN-like bits
        data[i + 6 : i + 8] = b"\xff\xff"
    path.write_bytes(bytes(data))
    with pytest.raises(ChainFileError, match=rf"^{path}: plaq: damaged data block"):
        load_chain_set(path)


@pytest.mark.parametrize(
    ("attrs", "key"),
    [
        ({"lattice": "8x8"}, "lattice"),
        ({"lattice": (4, 4, 4)}, "lattice"),
        ({"nlf": "abc"}, "nlf"),
        ({"nlf": 0}, "nlf"),
        ({"nlf": 2.5}, "nlf"),
        ({"traj_per_second": 0.0}, "traj_per_second"),
        ({"traj_per_second": -1.0}, "traj_per_second"),
        ({"traj_per_second": math.inf}, "traj_per_second"),
        ({"eps": math.nan}, "eps"),
        ({"beta": -2.0}, "beta"),
        ({"beta": "two"}, "beta"),
        ({"group": "SU7"}, "group"),
        ({"wall_seconds": -1.0}, "wall_seconds"),
    ],
)
def test_wrongly_typed_attributes(tmp_path, attrs, key):
    path = real_chain_file(tmp_path / "c.nc", **attrs)
    with pytest.raises(ChainFileError, match=rf"^{path}: {key}: "):
        load_chain_set(path)


def test_missing_variable_and_attribute(tmp_path):
    import xarray as xr

    path = real_chain_file(tmp_path / "c.nc")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        full = ds.load()
    for name, broken in (
        ("charge", full.drop_vars("charge")),
        ("traj_per_second", _without_attr(full, "traj_per_second")),
    ):
        target = tmp_path / f"no_{name}.nc"
        broken.to_netcdf(target, engine="h5netcdf")
        with pytest.raises(ChainFileError, match=rf"^{target}: missing .*{name}"):
            load_chain_set(target)


def _without_attr(dataset, name):
    copy = dataset.copy()
    del copy.attrs[name]
    return copy


def test_non_finite_and_bad_flags_refused(tmp_path):
    import xarray as xr

    path = real_chain_file(tmp_path / "c.nc")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        full = ds.load()
    nan_plaq = full.copy(deep=True)
    nan_plaq["plaq"][0, 3] = np.nan
    flags = full.copy(deep=True)
    flags["accepted"][1, 1] = 3
    for name, broken in (("plaq", nan_plaq), ("accepted", flags)):
        target = tmp_path / f"bad_{name}.nc"
        broken.to_netcdf(target, engine="h5netcdf")
        with pytest.raises(ChainFileError, match=rf"^{target}: {name}: "):
            load_chain_set(target)


# --- cases 7, 9: checkpoints validated on load --------------------------------------------------


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint written by a real (tiny, two-step) training run."""
    from train_helpers import TINY

    from dlhmc import checkpoint as ckpt
    from dlhmc.cli import main

    run = tmp_path_factory.mktemp("ckpt") / "run"
    assert main(["train", *TINY, "--steps", "2", "--out", str(run)]) == 0
    return ckpt.checkpoint_path(run)


def _broken_copy(tmp_path: Path, source: Path, change) -> Path:
    from dlhmc import checkpoint as ckpt

    state = ckpt.load(source)
    change(state)
    target = tmp_path / "checkpoint.pt"
    ckpt.save(target, {k: v for k, v in state.items() if k != "format"})
    return target


def test_real_checkpoint_is_valid(real_checkpoint):
    from dlhmc import checkpoint as ckpt

    state = ckpt.load_valid(real_checkpoint)
    assert state["world_size"] == 1 and state["step"] == 2


def _nan_first_weight(state):
    name = next(n for n, t in state["model"].items() if t.is_floating_point())
    state["model"][name] = state["model"][name].clone()
    state["model"][name].view(-1)[0] = math.nan
    state["nan_name"] = name


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (lambda s: s.pop("model"), "model", "missing"),
        (lambda s: s.pop("config"), "config", "missing"),
        (lambda s: s.pop("world_size"), "world_size", "missing"),
        (lambda s: s.pop("l2hmc"), "l2hmc", "missing"),
        (lambda s: s.__setitem__("world_size", "1"), "world_size", "expected an integer"),
        (lambda s: s.__setitem__("step", -1), "step", "expected an integer >= 0"),
        (lambda s: s.__setitem__("config", [1]), "config", "expected a dict"),
        (lambda s: s["rng"].__setitem__("torch", torch.zeros(1, 5056, dtype=torch.uint8) + 7),
         "rng.torch", "cannot be restored"),
        (lambda s: s["rng"].__setitem__("chain", s["rng"]["chain"][:, :100].clone()),
         "rng.chain", "cannot be restored"),
        (lambda s: s["rng"].__setitem__("chain", s["rng"]["chain"].float()),
         "rng.chain", "uint8"),
        (lambda s: s["rng"].pop("torch"), "rng.torch", "uint8"),
        (lambda s: s.__setitem__("chains", s["chains"][0]), "chains", "world_size"),
        (lambda s: s["timing"].__setitem__("training_seconds", math.inf),
         "timing.training_seconds", "finite"),
        (_nan_first_weight, "model", "non-finite parameter"),
        (lambda s: s["config"].__setitem__("lattice", "8x8"), "config.lattice", "expected list"),
        (lambda s: s["config"].__setitem__("beta", math.nan), "config.beta", "expected float"),
        (lambda s: s["config"].pop("group"), "config.group", "expected str"),
    ],
)  # fmt: skip
def test_broken_checkpoints_are_refused_naming_file_and_key(
    tmp_path, real_checkpoint, change, key, words
):
    from dlhmc import checkpoint as ckpt

    path = _broken_copy(tmp_path, real_checkpoint, change)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.load_valid(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: ") and words in message and "\n" not in message
    if change is _nan_first_weight:
        name = ckpt.load(path)["nan_name"]
        assert message == f"{path}: model: non-finite parameter {name}"


def test_unreadable_checkpoint_is_a_checkpoint_error(tmp_path, real_checkpoint):
    from dlhmc import checkpoint as ckpt

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(real_checkpoint.read_bytes()[:1000])
    with pytest.raises(ckpt.CheckpointError, match=rf"^{path}: not a readable dlhmc checkpoint"):
        ckpt.load_valid(path)
    with pytest.raises(ckpt.CheckpointError, match=rf"^{tmp_path / 'none.pt'}: cannot read"):
        ckpt.load_valid(tmp_path / "none.pt")


# --- case 15: stale temporaries of killed runs --------------------------------------------------


def test_stale_temporaries_removed_live_ones_kept(tmp_path):
    import subprocess
    import sys

    from dlhmc.atomic import write_text

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = tmp_path / "out.nc"
        stale = tmp_path / f"out.nc.tmp-{dead.pid}"
        running = tmp_path / f"out.nc.tmp-{live.pid}"
        other = tmp_path / f"other.nc.tmp-{dead.pid}"
        not_a_pid = tmp_path / "out.nc.tmp-abc"
        for file in (stale, running, other, not_a_pid):
            file.write_text("half written")
        write_text(out, "done")
        assert out.read_text() == "done"
        assert not stale.exists()
        assert running.exists() and other.exists() and not_a_pid.exists()
    finally:
        live.kill()
        live.wait()


def test_infer_refuses_a_nan_model_before_writing(tmp_path, real_checkpoint, capsys):
    """Case 7: the library refuses the model, so ``dlhmc infer`` exits 2 and writes no file."""
    from dlhmc import checkpoint as ckpt
    from dlhmc.cli import main
    from dlhmc.inference import load_sampler

    run = tmp_path / "run"
    run.mkdir()
    _broken_copy(run, real_checkpoint, _nan_first_weight)
    with pytest.raises(ckpt.CheckpointError, match="model: non-finite parameter"):
        load_sampler(run, torch.device("cpu"))
    out = tmp_path / "out.nc"
    args = ["infer", "--checkpoint", str(run), "--chains", "2", "--trajectories", "10",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "non-finite parameter" in err
    assert not out.exists()
