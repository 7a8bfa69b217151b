"""Costs in leapfrog steps by a fixed count of operations (analysis/move_costs.py), never by a
measured time: the same chains cost the same whatever the machine's load was when they ran."""

from __future__ import annotations

import numpy as np
import pytest
from chain_helpers import ar1, sector_chains, write_chain_file

from dlhmc.analysis.chains import load_chain_set
from dlhmc.analysis.move_costs import MOVES, moves_lf_per_traj
from dlhmc.analysis.table import tau_table
from dlhmc.cli import main
from dlhmc.io import read_chains

LATTICE = (8, 8)
VOLUME = LATTICE[0] * LATTICE[1]
BETA = 2.0
NLF, HITS = 10, 5
N_CHAINS, N_TRAJ = 4, 400


def _winding_file(path, measured=None, size=0, accepted=None, rate=30.0, extra=None):
    """Winding-HMC chains drawn from one seed, so that files differ only in their attributes."""
    rng = np.random.default_rng(5)
    attrs = {"instanton_hits": HITS, "instanton_size": size, **(extra or {})}
    if measured is not None:
        attrs["hit_cost_lf"] = measured
    if accepted is None:  # hits accepted after every other trajectory
        accepted = np.zeros((N_CHAINS, N_TRAJ))
        accepted[:, ::2] = 2
    return write_chain_file(
        path,
        sector_chains(BETA, LATTICE, 0.6, N_CHAINS, N_TRAJ, rng),
        0.8 + 0.002 * ar1(0.5, N_CHAINS, N_TRAJ, rng),
        lattice=LATTICE,
        beta=BETA,
        nlf=NLF,
        traj_per_second=rate,
        extra_attrs=attrs,
        extra_vars={"instanton_accepted": accepted},
    )


def test_the_measured_hit_cost_of_a_file_changes_no_cost_in_leapfrog_steps(tmp_path):
    """Identical chains with no, a small and a large measured ``hit_cost_lf`` (old files carry
    one): the same leapfrog-step cost; the seconds come from the throughput alone."""
    files = [
        _winding_file(tmp_path / f"w{i}.nc", measured)
        for i, measured in enumerate((None, 0.25, 40.0))
    ]
    chain_sets = [load_chain_set(f) for f in files]
    assert len({cs.lf_per_traj for cs in chain_sets}) == 1
    table = tau_table(chain_sets, "e")
    costs = table.pivot(index="observable", columns="file", values="cost_lf")
    assert np.allclose(costs.to_numpy(), costs.to_numpy()[:, :1])
    seconds = table.pivot(index="observable", columns="file", values="seconds_per_indep")
    assert np.allclose(seconds.to_numpy(), seconds.to_numpy()[:, :1])


@pytest.mark.parametrize("size", [0, 2, 4, 8])
def test_a_hit_counts_its_patch_plaquettes_over_the_lattice_plaquettes(tmp_path, size):
    """``P / V`` per hit (the delocalized instanton: all ``V``), plus one force evaluation
    after each trajectory with an accepted hit (half of them here)."""
    chains = load_chain_set(_winding_file(tmp_path / "w.nc", size=size))
    patch = size * size if size else VOLUME
    assert chains.lf_per_traj == pytest.approx(NLF + HITS * patch / VOLUME + 0.5)


def test_the_integrator_counts_its_force_evaluations_and_old_files_without_the_record(tmp_path):
    """Omelyan: two force evaluations per step; a file without ``instanton_accepted`` counts
    no refresh; a plain HMC file has no other move."""
    omelyan = _winding_file(tmp_path / "o.nc", extra={"force_evaluations": 2 * NLF})
    assert load_chain_set(omelyan).lf_per_traj == pytest.approx(2 * NLF + HITS + 0.5)
    never = _winding_file(tmp_path / "n.nc", accepted=np.zeros((N_CHAINS, N_TRAJ)))
    assert load_chain_set(never).lf_per_traj == pytest.approx(NLF + HITS)
    rng = np.random.default_rng(1)
    plain = write_chain_file(
        tmp_path / "p.nc",
        sector_chains(BETA, LATTICE, 0.6, N_CHAINS, N_TRAJ, rng),
        0.8 + 0.002 * ar1(0.5, N_CHAINS, N_TRAJ, rng),
        lattice=LATTICE,
        beta=BETA,
        nlf=NLF,
    )
    plain = load_chain_set(plain)
    assert moves_lf_per_traj(plain) == 0.0 and plain.lf_per_traj == NLF
    assert "winding_hit" in MOVES  # the line a hit is counted by


def test_dlhmc_hmc_writes_what_the_rule_counts_from(tmp_path):
    """A winding-HMC run records hits, patch and accepted hits, and no measured cost: its
    leapfrog-step cost follows from the file alone."""
    out = tmp_path / "w.nc"
    argv = ["hmc", "--group", "U1", "--lattice", "4", "6", "--beta", "1.0", "--nlf", "5",
            "--eps", "0.15", "--chains", "4", "--trajectories", "12", "--therm", "2",
            "--instanton-hits", "3", "--instanton-size", "2", "--seed", "3", "--device", "cpu",
            "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    data = read_chains(out)
    assert "hit_cost_lf" not in data.attrs
    refreshed = float(np.mean(data["instanton_accepted"].values > 0))
    assert load_chain_set(out).lf_per_traj == pytest.approx(5 + 3 * 4 / 24 + refreshed)
