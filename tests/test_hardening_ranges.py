"""Issue 21 C: the physical ranges of chain-file variables, by gauge group.

Where the ranges differ between groups (the plaquette's range, whether ``charge`` is an integer,
the charges' bounds per unit volume) they come from the group's entry in
``dlhmc.chain_checks.GROUP_RANGES``: U(1) ``Q_Z`` is an integer within ``V/2``, the SU(3)
clover charge a real number within ``9 V/(4 pi^2)``; the U(1) plaquette lies in [-1, 1], the
SU(3) one in [-1/2, 1]. Each value below is checked through ``check_chain_values``, the one
check every reader runs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlhmc.chain_checks import GROUP_RANGES, check_chain_values, variable_ranges
from dlhmc.groups import GROUPS
from dlhmc.io import chain_dataset

LATTICES = {"U1": (4, 4), "SU3": (2, 2, 2, 2)}  # V = 16 in both
VOLUME = 16


def dataset(group: str, lattice=None, **values):
    """A 2-chain, 4-trajectory chain file of ``group`` with every value in range, then
    ``values`` (name -> one value) written into chain 0, trajectory 1."""
    per_traj = {
        "plaq": np.full((2, 4), 0.5),
        "charge": np.zeros((2, 4)),
        "charge_real": np.zeros((2, 4)),
        "accept_prob": np.full((2, 4), 0.5),
        "accepted": np.ones((2, 4)),
        "dH": np.zeros((2, 4)),
    }
    for name, value in values.items():
        per_traj[name][0, 1] = value
    attrs = {"group": group, "lattice": LATTICES[group] if lattice is None else lattice,
             "beta": 1.0, "sampler": "hmc", "nlf": 1, "eps": 0.1, "n_therm": 0, "seed": 0,
             "wall_seconds": 1.0, "traj_per_second": 1.0}  # fmt: skip
    return chain_dataset(per_traj, attrs)


def problem(data) -> str | None:
    try:
        check_chain_values(data, "f.nc")
    except ValueError as err:
        return str(err)
    return None


def test_every_group_has_its_ranges():
    """A new group in the registry without ranges would get no plaquette or charge check."""
    assert set(GROUP_RANGES) == set(GROUPS)


@pytest.mark.parametrize(
    ("group", "name", "value", "expected"),
    [
        ("U1", "plaq", -0.9, None),
        ("U1", "plaq", 1.0, None),
        ("U1", "plaq", -1.1, "expected average plaquettes in [-1, 1]"),
        ("SU3", "plaq", -0.45, None),
        ("SU3", "plaq", 1.0, None),
        ("SU3", "plaq", -0.9, "expected average plaquettes in [-0.5, 1]"),
        ("U1", "charge", 3.0, None),
        ("U1", "charge", -8.0, None),
        ("U1", "charge", 0.5, "values not integer (first 0.5 at chain 0, traj 1); expected "
                              "integer U(1) charges Q_Z within V/2 = 8"),
        ("U1", "charge", 9.0, "out of range"),
        ("SU3", "charge", 0.5, None),  # the clover charge after flow is a real number
        ("SU3", "charge", -2.7, None),
        ("SU3", "charge", 9 * VOLUME / (4 * math.pi**2) + 0.1,
         "expected SU(3) clover charges within 9 V/(4 pi^2) = 3.64756"),
        ("U1", "charge_real", VOLUME / (2 * math.pi) - 0.01, None),
        ("U1", "charge_real", VOLUME / (2 * math.pi) + 0.01, "within V/(2 pi) = 2.54648"),
        ("SU3", "charge_real", 3.6, None),
        ("SU3", "charge_real", 3.7, "within 9 V/(4 pi^2) = 3.64756"),
    ],
)  # fmt: skip
def test_ranges_by_group(group, name, value, expected):
    found = problem(dataset(group, **{name: value}))
    if expected is None:
        assert found is None
    else:
        assert found is not None and found.startswith(f"f.nc: {name}: "), found
        assert expected in found, found


def test_without_a_lattice_an_integer_charge_is_still_one():
    """No volume, no bound on the charges; U(1) Q_Z must still be an integer, SU(3)'s need not."""
    assert "values not integer" in problem(dataset("U1", lattice="?", charge=0.5))
    assert problem(dataset("U1", lattice="?", charge=1e6)) is None
    assert problem(dataset("SU3", lattice="?", charge=0.5)) is None
    assert "charge" not in variable_ranges({"group": "SU3"})
    assert variable_ranges({"group": "U1"})["charge"].integer


def test_an_unknown_group_gets_the_group_independent_ranges():
    ranges = variable_ranges({"group": "SU2", "lattice": np.array([4, 4])})
    assert "plaq" not in ranges and "charge" not in ranges
    assert ranges["accept_prob"].high == 1.0
