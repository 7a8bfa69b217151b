"""Volume transfer for SU(3): a ``local`` model trained on 2^4 samples larger lattices exactly.

The model is trained briefly through the command line on 2^4 at beta 1 and run by ``dlhmc
infer --lattice`` on 2x2x2x4 (default run) and on 4^4 (slow): the plaquette must match the
strong-coupling series, whose truncation error enters the tolerance, within four standard errors
of the Gamma method (the chains as replicas).  A sampler whose Metropolis test forgot the
Jacobian, or whose covariant update broke on the new volume, shifts the plaquette by several
such errors (tests/test_l2hmc_local_su3.py measured -5.6 and -14 for a dropped ``sum log|J|``).
The weights are the training volume's, so the chain file's parameter count must equal the
checkpoint's on every volume.
"""

from __future__ import annotations

import math

import pytest
from train_helpers import load

from dlhmc.analysis.autocorr import gamma_method
from dlhmc.cli import main
from dlhmc.io import read_chains
from dlhmc.lattice.su3 import SU3Theory

BETA = 1.0
TRAIN = ["train", "--group", "SU3", "--network", "local", "--lattice", "2", "2", "2", "2",
         "--beta", str(BETA), "--nlf", "2", "--hidden", "8", "--eps-init", "0.4", "--batch", "8",
         "--steps", "10", "--checkpoint-every", "10", "--seed", "1", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def su3_local_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("transfer_su3") / "local"
    assert main([*TRAIN, "--out", str(run)]) == 0
    return run


@pytest.mark.parametrize(("lattice", "chains", "trajectories"), [
    ((2, 2, 2, 4), 24, 80),
    pytest.param((4, 4, 4, 4), 8, 60, marks=pytest.mark.slow),
])  # fmt: skip
def test_trained_local_model_reproduces_strong_coupling_on_a_larger_volume(
    su3_local_run, tmp_path, lattice, chains, trajectories
):
    out = tmp_path / "chains.nc"
    code = main(["infer", "--checkpoint", str(su3_local_run), "--out", str(out),
                 "--lattice", *map(str, lattice), "--chains", str(chains),
                 "--trajectories", str(trajectories), "--therm", "20", "--seed", "3",
                 "--layer-samples", "1", "--no-progress"])  # fmt: skip
    assert code == 0
    ds = read_chains(out)
    assert list(ds.attrs["lattice"]) == list(lattice)
    assert list(ds.attrs["train_lattice"]) == [2, 2, 2, 2]
    assert ds.attrs["network"] == "local" and int(ds.attrs["training_steps"]) == 10
    stored = sum(v.numel() for v in load(su3_local_run)["model"].values())
    assert int(ds.attrs["n_params"]) == stored

    accept = float(ds["accept_prob"].mean())
    assert 0.1 < accept < 0.98  # a real Metropolis test, neither frozen nor trivially accepting
    plaq = gamma_method(ds["plaq"].values)
    exact = SU3Theory.exact_plaquette(lattice, BETA)
    tolerance = 4 * math.hypot(plaq.mean_err, exact.error)
    assert abs(plaq.mean - exact.value) < tolerance, (lattice, plaq.mean, plaq.mean_err, exact)
    assert plaq.mean_err < 0.03 * exact.value  # teeth: a 3% bias would be seen
