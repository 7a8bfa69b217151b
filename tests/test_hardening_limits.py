"""Regression tests for issue 12, cases 1-3 and 16: what every command checks before any work.

Devices outside auto/cpu/cuda[:N], seeds the generators cannot take, runs that cannot fit in
memory and outputs that cannot be written are refused with one line naming the option.
"""

from __future__ import annotations

import math

import pytest
import torch

# --- cases 1-3, 16: devices, seeds, memory, writable outputs ------------------------------------


@pytest.mark.parametrize("name", ["meta", "mps", "xla", "hpu", "cuda:x", "cuda:-1", "CPU", "", 3])
def test_only_auto_cpu_cuda_devices(name):
    from dlhmc.devices import check_device, resolve_device

    with pytest.raises(ValueError, match="unknown device") as info:
        check_device(name)
    assert repr(name) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device(name)


def test_accepted_devices():
    from dlhmc.devices import check_device, resolve_device

    for name in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert check_device(name) == name
    assert resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        with pytest.raises(ValueError, match=f"has {count} CUDA device"):
            resolve_device(f"cuda:{count}")
    else:
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_seeds_fit_every_rank_generator():
    from dlhmc.limits import SEED_LIMIT, check_seed

    assert check_seed(0, "--seed") == 0
    assert check_seed(SEED_LIMIT - 1, "--seed") == SEED_LIMIT - 1
    torch.Generator().manual_seed(SEED_LIMIT - 1)  # the limit is torch's
    with pytest.raises((ValueError, RuntimeError, OverflowError)):
        torch.Generator().manual_seed(SEED_LIMIT)
    assert check_seed(SEED_LIMIT - 4, "seed", world_size=4) == SEED_LIMIT - 4
    for seed, world in ((SEED_LIMIT - 3, 4), (SEED_LIMIT, 1), (-1, 1), (1.0, 1), (1e20, 1),
                        (True, 1), ("7", 1), (10**30, 1)):  # fmt: skip
        with pytest.raises(ValueError, match="^seed: expected an integer in"):
            check_seed(seed, "seed", world_size=world)


def test_field_bytes_are_those_of_real_fields():
    """Against the tensors a real theory allocates (the estimate's building block)."""
    from dlhmc.lattice import make_theory
    from dlhmc.limits import field_bytes

    for group, lattice in (("U1", (3, 5)), ("U1", (4, 4)), ("SU3", (2, 3, 2, 2))):
        for precision in ("double", "single"):
            theory = make_theory(group, lattice, 1.0, precision, "cpu")
            links = theory.hot_start(2, torch.Generator().manual_seed(0))
            momenta = theory.sample_momentum(2, torch.Generator().manual_seed(0))
            expected = (links.nbytes // 2, momenta.nbytes // 2)
            assert field_bytes(group, lattice, precision) == expected


@pytest.mark.parametrize(
    ("lattice", "chains", "command"),
    [
        ((4, 4), 99999999999999999999999, "hmc"),
        ((4, 4), 1000000000000, "infer"),
        ((1000000, 1000000), 64, "hmc"),
        ((4, 4), 1000000000000, "train"),
        ((10**30, 10**30), 1, "hmc"),
    ],
)
def test_absurd_sizes_give_the_memory_error(lattice, chains, command):
    from dlhmc.limits import GiB, check_memory, estimate_bytes

    needed = estimate_bytes("U1", lattice, chains, "double", command, trajectories=10, nlf=2)
    assert needed >= chains * 2 * math.prod(lattice) * 8  # at least the links
    with pytest.raises(ValueError, match=r"^--chains: needed .* GiB, available .* GiB") as info:
        check_memory(needed, "--chains")
    assert "\n" not in str(info.value)
    check_memory(GiB // 1024, "--chains")  # a megabyte fits anywhere


def test_estimate_grows_with_what_a_run_keeps():
    from dlhmc.limits import estimate_bytes

    hmc = estimate_bytes("SU3", (4, 4, 4, 4), 8, "double", "hmc")
    assert estimate_bytes("SU3", (4, 4, 4, 4), 8, "single", "hmc") < hmc
    assert estimate_bytes("SU3", (4, 4, 4, 4), 16, "double", "hmc") == 2 * hmc
    assert estimate_bytes("SU3", (4, 4, 4, 4), 8, "double", "infer") > hmc
    assert estimate_bytes("SU3", (4, 4, 4, 4), 8, "double", "train", nlf=4) > hmc
    with pytest.raises(ValueError, match="unknown kind"):
        estimate_bytes("U1", (4, 4), 1, "double", "sample")


def test_check_writable(tmp_path):
    import os

    from dlhmc.limits import check_writable

    out = tmp_path / "new" / "deeper" / "out.nc"
    assert check_writable(out, "--out") == out
    assert out.parent.is_dir() and list(out.parent.iterdir()) == []
    run = tmp_path / "run"
    check_writable(run, "--out", directory=True)
    assert run.is_dir() and list(run.iterdir()) == []
    with pytest.raises(ValueError, match=rf"^--out: {tmp_path} is a directory"):
        check_writable(tmp_path, "--out")
    plain = tmp_path / "file"
    plain.write_text("x")
    with pytest.raises(ValueError, match=rf"^--out: {plain} exists and is not a directory"):
        check_writable(plain, "--out", directory=True)
    # A parent that is a file cannot be created, even by root.
    with pytest.raises(ValueError, match=rf"^--out: cannot write {plain / 'out.nc'} \("):
        check_writable(plain / "out.nc", "--out")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: nothing to refuse here
            pytest.skip("running as root")
        for target, key in ((locked / "out.nc", "--out"), (locked / "sub" / "x.csv", "--table")):
            with pytest.raises(ValueError, match=rf"^{key}: cannot write {target} \("):
                check_writable(target, key)
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("network", ["dense", "local"])
def test_a_huge_hidden_width_is_refused_before_any_allocation(tmp_path, capsys, network):
    """Issue 21 A: the memory estimate read the networks' input as one number wide, so
    ``--hidden 10000000`` passed and the kernel killed the run after 80 s at 24 GB."""
    from dlhmc.cli import main

    out = tmp_path / "run"
    code = main(["train", "--group", "U1", "--lattice", "8", "8", "--beta", "2", "--steps", "2",
                 "--batch", "4", "--hidden", "10000000", "--network", network, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--hidden" in err and "needed" in err and "available" in err
    assert not out.exists()
