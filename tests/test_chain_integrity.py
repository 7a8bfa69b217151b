"""Chain-file integrity (issue 21, B, C and L): checksums, physical ranges, all-diverged files.

B: bytes overwritten inside a data block of a real ``dlhmc hmc`` file are refused at load time
(Fletcher-32 per variable, SHA-256 digest), and in a file written before checksums existed the
physical ranges still catch a plaquette of 1e117. C: a value outside its variable's physical
range is refused with one line naming the file and the variable, and the report never marks a
check "pass" on a mean outside its range. L: a file where every trajectory diverged says so in
``dlhmc analyze``'s table, on stderr (exit 1) and in the report's checks.
"""

from __future__ import annotations

import contextlib
import io
import math

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlhmc.analysis.chains import ChainFileError, load_chain_set
from dlhmc.analysis.checks import exactness_checks
from dlhmc.analysis.report_tables import checks_html, tau_html
from dlhmc.cli import main
from dlhmc.io import DIGEST_ATTR, read_chains

HMC = ["hmc", "--lattice", "4", "4", "--beta", "2", "--nlf", "3", "--chains", "2",
       "--trajectories", "12", "--therm", "0", "--seed", "0", "--device", "cpu",
       "--no-progress"]  # fmt: skip
VOLUME = 16  # 4x4 plaquettes
BUDGET = settings(max_examples=40, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow,
                                         HealthCheck.function_scoped_fixture])  # fmt: skip
VALUES_BUDGET = settings(BUDGET, max_examples=20)


def invoke(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(args)
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue().strip()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("integrity")


@pytest.fixture(scope="module")
def chain_file(workdir):
    path = workdir / "chains.nc"
    assert main([*HMC, "--eps", "0.2", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def old_file(workdir, chain_file):
    """The same data as written before checksums existed: contiguous blocks, no digests."""
    path = workdir / "old.nc"
    strip_checksums(read_chains(chain_file)).to_netcdf(path, engine="h5netcdf")
    return path


def strip_checksums(dataset: xr.Dataset) -> xr.Dataset:
    dataset = dataset.copy(deep=True)
    for variable in dataset.variables.values():
        variable.attrs.pop(DIGEST_ATTR, None)
        variable.encoding = {}
    return dataset


def data_offset(path, name: str) -> tuple[int, int]:
    """Byte offset and size of a variable's data in the file (chunked or contiguous)."""
    with h5py.File(path, "r") as handle:
        dataset = handle[name]
        if dataset.chunks:
            info = dataset.id.get_chunk_info(0)
            return info.byte_offset, info.size
        return dataset.id.get_offset(), dataset.id.get_storage_size()


def overwrite(source, target, offset: int, data: bytes):
    raw = bytearray(source.read_bytes())
    raw[offset : offset + len(data)] = data
    target.write_bytes(bytes(raw))
    return target


# --- B: damage inside data blocks -----------------------------------------------------------------


def test_written_with_checksums_and_readable_by_xarray(chain_file):
    with h5py.File(chain_file, "r") as handle:
        for name in ("plaq", "charge", "charge_real", "accept_prob", "accepted", "dH"):
            assert handle[name].fletcher32, name
            assert len(handle[name].attrs[DIGEST_ATTR]) == 64, name
    with xr.open_dataset(chain_file, engine="h5netcdf") as ds:
        assert np.isfinite(ds["plaq"].values).all()


@pytest.mark.parametrize("name", ["plaq", "charge", "accept_prob", "accepted", "dH"])
def test_damaged_data_block_refused(workdir, chain_file, name):
    """The issue's case: 32 bytes overwritten at the start of a data block of a real file."""
    offset, size = data_offset(chain_file, name)
    damaged = overwrite(chain_file, workdir / f"b_{name}.nc", offset, b"\x58" * min(32, size))
    code, _, err = invoke(["analyze", str(damaged), "--out", str(workdir / "b.csv")])
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"dlhmc analyze: error: {damaged}: {name}: damaged data block"), err
    assert not (workdir / "b.csv").exists()


def test_digest_catches_what_fletcher32_misses(workdir, chain_file):
    """Fletcher-32 sums 16-bit words modulo 65535: a zero word turned 0xFFFF passes it."""
    offset, size = data_offset(chain_file, "charge")
    raw = chain_file.read_bytes()[offset : offset + size]
    zero = next(i for i in range(0, size, 8) if raw[i : i + 8] == bytes(8))  # a charge of 0
    damaged = overwrite(chain_file, workdir / "ffff.nc", offset + zero, b"\xff\xff")
    with pytest.raises(ChainFileError, match=rf"^{damaged}: charge: checksum mismatch"):
        load_chain_set(damaged)


def test_old_file_loads_and_its_damage_is_out_of_range(workdir, old_file):
    """No checksum, no check of it; the ranges still apply (the issue's plaquette of 3.8e117)."""
    assert load_chain_set(old_file).group == "U1"
    offset, _ = data_offset(old_file, "plaq")
    damaged = overwrite(old_file, workdir / "old_b.nc", offset, b"\x58" * 32)
    code, _, err = invoke(["analyze", str(damaged), "--out", str(workdir / "o.csv")])
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{damaged}: plaq: 4 values out of range (first 3.8" in err
    assert "expected average plaquettes in [-1, 1]" in err


# --- C: impossible values -------------------------------------------------------------------------

IMPOSSIBLE = [
    ("plaq", lambda v: v + 1.0, "out of range", "[-1, 1]"),
    ("plaq", lambda v: np.full_like(v, np.inf), "non-finite", "[-1, 1]"),
    ("charge", lambda v: v + 0.5, "not integer", "integer U(1) charges"),
    ("charge", lambda v: v + 9.0, "out of range", "V/2 = 8"),
    ("charge_real", lambda v: v + VOLUME, "out of range", "V/(2 pi)"),
    ("accept_prob", lambda v: np.full_like(v, 7.0), "out of range", "[0, 1]"),
    ("accept_prob", lambda v: -v, "out of range", "[0, 1]"),
    ("accepted", lambda v: v + 2, "out of range", "0/1 flags"),
    ("divergent", lambda v: v - 1, "out of range", "0/1 flags"),
    ("dH", lambda v: np.full_like(v, np.nan), "non-finite", "where not divergent"),
]


@pytest.mark.parametrize(("name", "change", "what", "expected"), IMPOSSIBLE)
@pytest.mark.parametrize("checksummed", [False, True])
def test_impossible_values_refused(workdir, chain_file, name, change, what, expected, checksummed):
    """Edited with xarray (a new file keeps its digests: the range is named, not the digest)."""
    dataset = read_chains(chain_file)
    if not checksummed:
        dataset = strip_checksums(dataset)
    dataset[name].values[...] = change(dataset[name].values)
    target = workdir / f"c_{name}_{what.replace(' ', '_')}_{checksummed}.nc"
    dataset.to_netcdf(target, engine="h5netcdf")
    code, _, err = invoke(["analyze", str(target), "--out", str(workdir / "c.csv")])
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"dlhmc analyze: error: {target}: {name}: "), err
    assert what in err and expected in err, err


def test_edit_in_range_is_a_checksum_mismatch(workdir, chain_file):
    dataset = read_chains(chain_file)
    dataset["plaq"].values[0, 0] = 0.5
    target = workdir / "edited.nc"
    dataset.to_netcdf(target, engine="h5netcdf")
    with pytest.raises(ChainFileError, match=rf"^{target}: plaq: checksum mismatch"):
        load_chain_set(target)


def test_accepted_divergent_trajectory_refused(workdir, chain_file):
    dataset = strip_checksums(read_chains(chain_file))
    dataset["divergent"].values[0, 2] = 1
    dataset["accept_prob"].values[0, 2] = 0.0
    dataset["accepted"].values[0, 2] = 1
    target = workdir / "flags.nc"
    dataset.to_netcdf(target, engine="h5netcdf")
    with pytest.raises(ChainFileError, match=rf"^{target}: accepted: 1 trajectories accepted"):
        load_chain_set(target)


def _table(workdir, chain_file) -> pd.DataFrame:
    out = workdir / "good.csv"
    if not out.exists():
        assert invoke(["analyze", str(chain_file), "--out", str(out)])[0] == 0
    return pd.read_csv(out)


@pytest.mark.parametrize(
    ("observable", "mean"), [("plaq", 1.9e116), ("plaq", 1.5), ("charge_sq", -1.0),
                             ("charge_sq", 100.0), ("sector_0", 1.5), ("plaq", math.nan)]
)  # fmt: skip
def test_report_never_passes_a_mean_out_of_range(workdir, chain_file, observable, mean):
    table = _table(workdir, chain_file)
    rows = table.observable == observable
    table.loc[rows, "mean"] = mean
    table.loc[rows, "mean_err"] = 1e300  # a pull of 0: would "pass" without the range
    checks = exactness_checks(table)
    assert set(checks[checks.observable == observable].status) == {"out of range"}
    assert "out of range" in checks_html(checks)


# --- L: every trajectory diverged -----------------------------------------------------------------


@pytest.fixture(scope="module")
def diverged(workdir):
    path = workdir / "diverged.nc"
    code, _, err = invoke([*HMC, "--eps", "1e200", "--out", str(path)])
    assert code == 1 and "--eps" in err
    return path


def test_all_diverged_file_says_so(workdir, diverged):
    out = workdir / "diverged.csv"
    code, _, err = invoke(["analyze", str(diverged), "--out", str(out)])
    assert code == 1
    assert err.splitlines()[-1].startswith(f"dlhmc analyze: error: {diverged}: every trajectory")
    table = pd.read_csv(out)
    assert (table.divergent_rate == 1.0).all()
    assert table.frozen_reason.str.contains("every trajectory diverged").all()
    checks = exactness_checks(table)
    listed = checks[checks.observable.isin(("plaq", "charge_sq"))]
    assert set(listed.status) == {"diverged"}
    assert "pass" not in set(checks.status)
    assert "diverged" in checks_html(checks) and "every trajectory diverged" in tau_html(table)


def test_a_few_divergences_are_a_warning(workdir, chain_file):
    dataset = strip_checksums(read_chains(chain_file))
    dataset["divergent"].values[0, :3] = 1
    dataset["accepted"].values[0, :3] = 0
    dataset["accept_prob"].values[0, :3] = 0.0
    dataset["dH"].values[0, :3] = np.nan
    target = workdir / "some.nc"
    dataset.to_netcdf(target, engine="h5netcdf")
    out = workdir / "some.csv"
    code, _, err = invoke(["analyze", str(target), "--out", str(out)])
    assert code == 0 and err.startswith(f"dlhmc analyze: warning: {target}: a fraction 0.125")
    assert (pd.read_csv(out).divergent_rate == 0.125).all()


# --- property-based: random damage, random values -------------------------------------------------

VARIABLES = ("plaq", "charge", "charge_real", "accept_prob", "accepted", "dH", "divergent")


@BUDGET
@given(name=st.sampled_from(VARIABLES), start=st.integers(0, 10**6),
       data=st.binary(min_size=1, max_size=32))  # fmt: skip
def test_random_damage_to_a_data_block_is_refused(workdir, chain_file, name, start, data):
    offset, size = data_offset(chain_file, name)
    start %= size
    data = data[: size - start]
    raw = chain_file.read_bytes()
    if raw[offset + start : offset + start + len(data)] == data:
        return  # no change
    damaged = overwrite(chain_file, workdir / "random.nc", offset + start, data)
    with pytest.raises(ChainFileError) as err:
        load_chain_set(damaged)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{damaged}: ")
    assert message.split(": ")[1] in (name, "accepted", "accept_prob"), message


FINITE = {"allow_nan": False, "allow_infinity": False}
IN_RANGE = {
    "plaq": st.floats(-1.0, 1.0),
    "charge": st.integers(-VOLUME // 2, VOLUME // 2).map(float),
    "charge_real": st.floats(-VOLUME / (2 * math.pi), VOLUME / (2 * math.pi)),
    "accept_prob": st.floats(1e-300, 1.0),
    "dH": st.floats(**FINITE),
}
OUT_OF_RANGE = {
    "plaq": st.one_of(st.floats(1.001, 1e308), st.floats(-1e308, -1.001),
                      st.sampled_from([math.nan, math.inf, -math.inf])),
    "charge": st.one_of(st.integers(-8, 8).map(lambda q: q + 0.5),
                        st.integers(9, 2**40).map(float), st.floats(0.01, 0.99)),
    "charge_real": st.floats(VOLUME / (2 * math.pi) * 1.001, 1e308),
    "accept_prob": st.one_of(st.floats(1.001, 1e308), st.floats(-1e308, -1e-3),
                             st.just(math.nan)),
    "accepted": st.integers(-128, 127).filter(lambda v: v not in (0, 1)),
    "divergent": st.integers(-128, 127).filter(lambda v: v not in (0, 1)),
    "dH": st.sampled_from([math.nan, math.inf, -math.inf]),
}  # fmt: skip


def _with_value(workdir, chain_file, name, value, where):
    dataset = strip_checksums(read_chains(chain_file))
    dataset[name].values[where] = value
    target = workdir / "values.nc"
    dataset.to_netcdf(target, engine="h5netcdf")
    return target


@VALUES_BUDGET
@given(name=st.sampled_from(sorted(IN_RANGE)), data=st.data(),
       where=st.tuples(st.integers(0, 1), st.integers(0, 11)))  # fmt: skip
def test_random_values_in_range_load(workdir, chain_file, name, data, where):
    value = data.draw(IN_RANGE[name])
    load_chain_set(_with_value(workdir, chain_file, name, value, where))


@VALUES_BUDGET
@given(name=st.sampled_from(sorted(OUT_OF_RANGE)), data=st.data(),
       where=st.tuples(st.integers(0, 1), st.integers(0, 11)))  # fmt: skip
def test_random_values_out_of_range_refused(workdir, chain_file, name, data, where):
    value = data.draw(OUT_OF_RANGE[name])
    target = _with_value(workdir, chain_file, name, value, where)
    with pytest.raises(ChainFileError, match=rf"^{target}: {name}: .*expected"):
        load_chain_set(target)
