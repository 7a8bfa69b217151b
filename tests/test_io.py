"""Chain files: round trip through xarray, attribute conversion, atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr

from dlhmc import __version__
from dlhmc.io import chain_dataset, read_chains, write_chains


def example(chains=3, traj=5, **extra_attrs):
    rng = np.random.default_rng(0)
    per_traj = {
        "plaq": rng.random((chains, traj)),
        "charge": rng.integers(-2, 3, (chains, traj)).astype(float),
        "charge_real": rng.normal(size=(chains, traj)),
        "accept_prob": rng.random((chains, traj)),
        "accepted": rng.random((chains, traj)) < 0.5,
        "dH": rng.normal(size=(chains, traj)),
    }
    attrs = {
        "group": "U1",
        "lattice": (8, 8),
        "beta": 2.0,
        "sampler": "hmc",
        "nlf": 10,
        "eps": 0.1,
        "n_therm": 20,
        "seed": 1,
        "wall_seconds": 1.5,
        "traj_per_second": 16.7,
        **extra_attrs,
    }
    return per_traj, attrs


def test_round_trip_through_open_dataset(tmp_path):
    per_traj, attrs = example(flag=True, checkpoint=tmp_path / "run")
    path = write_chains(tmp_path / "chains.nc", chain_dataset(per_traj, attrs))
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert dict(ds.sizes) == {"chain": 3, "traj": 5}
        for name, values in per_traj.items():
            assert ds[name].dims == ("chain", "traj")
            np.testing.assert_array_equal(ds[name].values, np.asarray(values, dtype=float))
        assert ds["accepted"].dtype == np.int8
        np.testing.assert_array_equal(ds.attrs["lattice"], [8, 8])
        assert np.asarray(ds.attrs["lattice"]).dtype.kind == "i"
        assert ds.attrs["group"] == "U1" and ds.attrs["sampler"] == "hmc"
        assert ds.attrs["beta"] == 2.0 and ds.attrs["nlf"] == 10 and ds.attrs["seed"] == 1
        assert ds.attrs["flag"] == 1
        assert ds.attrs["checkpoint"] == str(tmp_path / "run")
        assert ds.attrs["dlhmc_version"] == __version__
    loaded = read_chains(path)
    np.testing.assert_array_equal(loaded["plaq"].values, per_traj["plaq"])
    assert list(loaded.attrs["lattice"]) == [8, 8]


def test_per_layer_variables(tmp_path):
    per_traj, attrs = example()
    ds = chain_dataset(per_traj, attrs, per_layer={"lf_energy": np.arange(4.0)})
    loaded = read_chains(write_chains(tmp_path / "c.nc", ds))
    assert loaded["lf_energy"].dims == ("lf",)
    np.testing.assert_array_equal(loaded["lf_energy"].values, np.arange(4.0))


def test_missing_variables_and_attributes_are_named():
    per_traj, attrs = example()
    del per_traj["dH"]
    with pytest.raises(ValueError, match="dH"):
        chain_dataset(per_traj, attrs)
    per_traj, attrs = example()
    del attrs["seed"]
    with pytest.raises(ValueError, match="seed"):
        chain_dataset(per_traj, attrs)


def test_unstorable_attribute_and_shape_mismatch():
    per_traj, attrs = example(note=None)
    with pytest.raises(ValueError, match="note"):
        chain_dataset(per_traj, attrs)
    per_traj, attrs = example()
    per_traj["dH"] = per_traj["dH"][:, :2]
    with pytest.raises(ValueError, match="dH"):
        chain_dataset(per_traj, attrs)


def test_write_is_atomic(tmp_path, monkeypatch):
    """A failing write leaves neither the target nor the temporary file; an old file survives."""
    per_traj, attrs = example()
    ds = chain_dataset(per_traj, attrs)
    target = tmp_path / "chains.nc"
    target.write_text("previous")

    def broken(self, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        write_chains(target, ds)
    assert target.read_text() == "previous"
    assert sorted(os.listdir(tmp_path)) == ["chains.nc"]
