"""Configurations stored in chain files (``dlhmc hmc --save-every K``): the stored links are the
field whose observables the file recorded, for real and complex groups."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlhmc import configurations
from dlhmc.cli import main
from dlhmc.io import read_chains
from dlhmc.lattice import make_theory

U1 = ["hmc", "--group", "U1", "--lattice", "4", "6", "--beta", "2.0", "--nlf", "5", "--eps",
      "0.15", "--chains", "3", "--trajectories", "12", "--therm", "2", "--device", "cpu",
      "--no-progress"]  # fmt: skip


def test_saved_links_are_the_recorded_field(tmp_path):
    out = tmp_path / "c.nc"
    assert main([*U1, "--save-every", "5", "--out", str(out)]) == 0
    data = read_chains(out)
    assert data[configurations.SAVED].values.tolist() == [4, 9]
    assert int(data.attrs["save_every"]) == 5
    links = configurations.links_of(data, str(out), torch.float64)
    assert links.shape == (3, 2, 2, 4, 6)
    theory = make_theory("U1", (4, 6), 2.0, "double", "cpu")
    measured = theory.observables(links.reshape(-1, 2, 4, 6))
    for name in ("plaq", "charge"):
        np.testing.assert_allclose(measured[name].reshape(3, 2).numpy(),
                                   configurations.at_saved(data, name), atol=1e-12)
    # Different trajectories hold different fields (the copy is not a view of the live state).
    assert not torch.equal(links[:, 0], links[:, 1])


def test_without_save_every_no_links(tmp_path):
    out = tmp_path / "c.nc"
    assert main([*U1, "--out", str(out)]) == 0
    data = read_chains(out)
    assert not configurations.has_configurations(data)
    with pytest.raises(ValueError, match="holds no configurations.*--save-every"):
        configurations.links_of(data, "c.nc", torch.float64)


def test_complex_links_round_trip():
    theory = make_theory("SU3", (2, 2, 2, 2), 5.0, "double", "cpu")
    links = theory.hot_start(2, torch.Generator().manual_seed(1))
    array = configurations.stored(links)[:, None]
    variables, coords = configurations.variables(array, np.array([0]))
    back = torch.from_numpy(variables["links"][1])
    restored = torch.view_as_complex(back.contiguous())[:, 0]
    assert torch.equal(restored, links)


def test_save_every_beyond_the_run_is_refused(tmp_path, capsys):
    assert main([*U1, "--save-every", "13", "--out", str(tmp_path / "c.nc")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--save-every" in err[0]
    assert not (tmp_path / "c.nc").exists()
