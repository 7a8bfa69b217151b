"""Replica exchange (``dlhmc trex``): parallel tempering and T-REX are exact, a wrong Jacobian is
caught, the identity bridge is the plain swap bit for bit, the tables count what happened, and
the command refuses bad input on one line and writes files the analysis reads."""

from __future__ import annotations

import contextlib
import csv
import io
import math

import numpy as np
import pytest
import torch

from dlhmc.analysis.autocorr import gamma_method
from dlhmc.analysis.chains import KINDS, load_chain_set
from dlhmc.analysis.exact import exact_plaquette
from dlhmc.chain_checks import check_chain_values
from dlhmc.cli import main
from dlhmc.commands import trex as trex_command
from dlhmc.flows import mixture
from dlhmc.flows.model import FlowConfig, GaugeFlow
from dlhmc.io import chain_dataset, read_chains
from dlhmc.lattice import make_theory
from dlhmc.samplers.hmc import HMC
from dlhmc.samplers.replica_exchange import ReplicaExchange, round_trips, run_ladder, swap_pairs

LATTICE = (4, 4)
BETAS = (1.0, 2.0, 3.0)
PULL = 4.5  # |mean - exact| / Gamma-method error allowed at every beta


def _theory(precision="double"):
    return make_theory("U1", LATTICE, BETAS[0], precision, "cpu")


def _ladder(bridges=None, nlf=5, eps=0.2, chains=64, traj=200, therm=50, seed=0, every=1,
            precision="double"):
    theory = _theory(precision)
    kernels = [HMC(theory.with_beta(b), nlf, eps) for b in BETAS]
    exchange = ReplicaExchange(kernels, bridges)
    generator = torch.Generator().manual_seed(seed)
    xs = [theory.hot_start(chains, generator) for _ in BETAS]
    return run_ladder(exchange, xs, therm, traj, every, generator)


def _pulls(chains) -> list[float]:
    pulls = []
    for beta, per_traj in zip(BETAS, chains.per_traj, strict=True):
        result = gamma_method(per_traj["plaq"])
        exact = exact_plaquette("U1", LATTICE, beta).value
        pulls.append((result.mean - exact) / result.mean_err)
    return pulls


class NoJacobian(GaugeFlow):
    """A bridge whose swap forgets ``log|J|``: the broken ratio the exactness test must catch."""

    def forward(self, x):
        y, log_j = super().forward(x)
        return y, torch.zeros_like(log_j)

    def inverse(self, y):
        x, log_j = super().inverse(y)
        return x, torch.zeros_like(log_j)


def _bridges(cls=GaugeFlow, strength=3.0):
    """One coupling layer per pair with random weights, its circle maps squeezing the plaquettes
    (log-scale ``strength log(beta_k / beta_k+1) / 2``: 3 times what turns one beta's width into
    the next's, so the log-Jacobians are far from 0 and the swaps still accept 7-20 %).

    In single precision: the inverse bisects to the last bit, 26 halvings instead of 55, and
    these two tests take a third of the time."""
    generator = torch.Generator().manual_seed(1)
    bridges = []
    for low, high in zip(BETAS, BETAS[1:], strict=False):
        flow = cls(_theory("single"), FlowConfig(layers=1, hidden=(2,), local_period=2))
        with torch.no_grad():
            for p in flow.parameters():
                p.copy_(0.05 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
            for layer in flow.layers:
                layer.net.head.bias[:mixture.N_COMPONENTS] += strength * math.log(low / high) / 2
        bridges.append(flow)
    return bridges


def test_parallel_tempering_gives_the_exact_plaquette_at_every_beta():
    chains = _ladder()
    assert all(abs(p) < PULL for p in _pulls(chains)), _pulls(chains)
    rates = [chains.swaps[k]["accepted"].mean() for k in (0, 1)]
    assert all(0.05 < r < 0.6 for r in rates), rates  # the swaps did happen
    assert chains.flow_passes == 0 and chains.force_refreshes > 0


def test_trex_with_random_bridges_gives_the_exact_plaquette():
    chains = _ladder(_bridges(), nlf=2, chains=128, traj=100, therm=20, precision="single")
    assert all(abs(p) < PULL for p in _pulls(chains)), _pulls(chains)
    assert all(chains.swaps[k]["accepted"].mean() > 0.03 for k in (0, 1))
    assert chains.flow_passes == 2.0  # one pair per round, f and f^-1


def test_a_wrong_jacobian_is_detected():
    """The same bridges and seed with the log-Jacobians dropped: biased by many sigma."""
    chains = _ladder(_bridges(NoJacobian), nlf=2, chains=128, traj=100, therm=20,
                     precision="single")
    assert max(abs(p) for p in _pulls(chains)) > PULL, _pulls(chains)  # -9.4 sigma at beta 1


def test_identity_bridges_swap_as_parallel_tempering_bit_for_bit():
    theory = _theory()
    identity = [GaugeFlow(theory, FlowConfig(layers=0)) for _ in BETAS[1:]]
    plain = _ladder(None, chains=8, traj=30, therm=5, seed=4)
    bridged = _ladder(identity, chains=8, traj=30, therm=5, seed=4)
    for k in plain.swaps:
        for name, values in plain.swaps[k].items():
            np.testing.assert_array_equal(values, bridged.swaps[k][name], err_msg=name)
    for a, b in zip(plain.per_traj, bridged.per_traj, strict=True):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert plain.swaps[0]["accepted"].any()


class Broken:
    """A bridge whose log-Jacobian is NaN: every swap through it must be rejected and counted."""

    layers = (None,)

    def forward(self, x):
        return x, torch.full((x.shape[0],), math.nan, dtype=x.dtype)

    inverse = forward


def test_non_finite_swaps_are_rejected_and_counted():
    chains = _ladder([Broken(), Broken()], chains=4, traj=10, therm=0)
    for pair in chains.swaps.values():
        assert pair["divergent"].all() and not pair["accepted"].any()
        assert (pair["accept_prob"] == 0).all()
    assert chains.force_refreshes == 0
    rows = trex_command.swap_rows(BETAS, chains.swaps)
    assert [row["divergent"] for row in rows] == [20, 20]
    assert trex_command._swap_divergences(rows, "out") == 1  # all diverged: exit 1


def test_replica_outside_the_ladder_is_refused_by_the_chain_checks():
    per_traj = {name: np.zeros((2, 3)) for name in ("plaq", "charge", "accept_prob", "accepted",
                                                      "dH")}
    attrs = {"group": "U1", "lattice": [4, 4], "beta": 1.0, "sampler": "pt", "nlf": 1, "eps": 0.1,
             "n_therm": 0, "seed": 0, "wall_seconds": 1.0, "traj_per_second": 1.0,
             "ladder_size": 3}  # fmt: skip
    check_chain_values(chain_dataset({**per_traj, "replica": np.full((2, 3), 2.0)}, attrs), "f")
    with pytest.raises(ValueError, match=r"^f: replica: 6 values out of range .* ladder_size - 1"):
        check_chain_values(chain_dataset({**per_traj, "replica": np.full((2, 3), 3.0)}, attrs), "f")


def test_even_odd_rounds_and_ladder_checks():
    assert swap_pairs(0, 5) == (0, 2) and swap_pairs(1, 5) == (1, 3)
    assert swap_pairs(0, 2) == (0,) and swap_pairs(1, 2) == ()
    theory = _theory()
    with pytest.raises(ValueError, match="^betas: expected strictly increasing"):
        ReplicaExchange([HMC(theory.with_beta(b), 2, 0.1) for b in (2.0, 1.0)])
    with pytest.raises(ValueError, match="^bridges: expected one per neighbouring pair"):
        ReplicaExchange([HMC(theory.with_beta(b), 2, 0.1) for b in BETAS], [None])


def test_round_trips_of_a_hand_made_history():
    # Rungs of replicas 0, 1, 2 of one ladder over 9 swap rounds: replica 0 goes bottom, top,
    # bottom (step 5: one trip) and up again; replica 1 from the bottom (step 1) to the top (4)
    # and back (7: one trip); replica 2 starts on top, so its first descent is no trip, and it
    # climbs back (step 6) but does not return.
    rungs = np.array([[0, 1, 2, 2, 1, 0, 0, 1, 2],
                      [1, 0, 0, 1, 2, 2, 1, 0, 0],
                      [2, 2, 1, 0, 0, 1, 2, 2, 1]])  # fmt: skip
    replica = np.argsort(rungs, axis=0)[:, None, :]  # [rung, ladder, step]: who sits there
    assert round_trips(replica).tolist() == [2]
    row = trex_command.trip_row(np.concatenate([replica, replica], axis=1))
    assert row["round_trips"] == 4 and row["ladders"] == 2 and row["trajectories"] == 9
    assert row["per_1000_trajectories"] == pytest.approx(1000 * 4 / 18)


def test_swap_rows_count_and_rate():
    accepted = np.array([[1, 0, 1], [0, 0, 1]], dtype=bool)
    swaps = {0: {"accepted": accepted, "accept_prob": np.full((2, 3), 0.5),
                 "divergent": np.zeros((2, 3), dtype=bool)}}  # fmt: skip
    rows = trex_command.swap_rows([1.0, 1.5, 2.0], swaps)
    first, second = rows
    assert (first["pair"], first["proposed"], first["accepted"]) == ("0-1", 6, 3)
    assert first["acceptance"] == 0.5 and first["accept_prob"] == 0.5
    assert first["acceptance_error"] == pytest.approx(math.sqrt(0.25 / 6))  # too short: binomial
    assert (second["pair"], second["proposed"], second["beta_to"]) == ("1-2", 0, 2.0)
    text = trex_command.csv_text(rows, trex_command.SWAP_COLUMNS)
    assert text.splitlines()[0] == ",".join(trex_command.SWAP_COLUMNS)


# --- the command -------------------------------------------------------------------------------

BASE = ["trex", "--lattice", "4", "4", "--betas", "1", "2", "3", "--nlf", "3", "--eps", "0.2",
        "--chains", "4", "--trajectories", "12", "--therm", "2", "--seed", "1", "--device", "cpu",
        "--no-progress"]  # fmt: skip


def invoke(args) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:
            code = exit_.code
    return code, err.getvalue().strip()


@pytest.mark.parametrize(("change", "option"), [
    (["--betas", "2", "1"], "--betas"),
    (["--betas", "2"], "--betas"),
    (["--betas", "1", "1", "2"], "--betas"),
    (["--swap-every", "0"], "--swap-every"),
    (["--bridges", "a"], "--bridges"),
    (["--group", "SU3", "--lattice", "4", "4", "4", "4", "--bridges", "a", "b"], "--bridges"),
    (["--lattice", "4"], "--lattice"),
    (["--seed", str(2**64)], "--seed"),
    (["--device", "xyz"], "--device"),
    (["--chains", "1000000000000"], "--chains"),
])  # fmt: skip
def test_bad_input_is_one_line_naming_the_option(tmp_path, change, option):
    code, err = invoke([*BASE, *change, "--out-dir", tmp_path / "out"])
    assert code == 2 and len(err.splitlines()) == 1, err
    assert option in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_pt_run_writes_every_file_the_analysis_reads(tmp_path):
    out = tmp_path / "pt"
    assert invoke([*BASE, "--out-dir", out]) == (0, "")
    for beta in (1.0, 2.0, 3.0):
        data = read_chains(out / f"beta{beta}.nc")
        assert dict(data.sizes) == {"chain": 4, "traj": 12}
        assert {"plaq", "charge", "charge_real", "accept_prob", "accepted", "dH", "divergent",
                "replica"} <= set(data.data_vars)
        attrs = data.attrs
        assert (attrs["sampler"], attrs["beta"], attrs["ladder_size"]) == ("pt", beta, 3)
        assert list(attrs["betas"]) == [1.0, 2.0, 3.0] and attrs["bridges"] == ""
        assert attrs["force_evaluations"] == 9 and attrs["flow_layers"] == 0
        assert attrs["training_seconds"] == 0.0  # nothing learned
        chains = load_chain_set(out / f"beta{beta}.nc")
        assert chains.category == "pt" and KINDS["pt"].baseline == "hmc"
        assert chains.lf_per_traj == pytest.approx(9 + attrs["force_refreshes"])
    replica = np.stack([read_chains(out / f"beta{b}.nc")["replica"].values for b in BETAS])
    assert (np.sort(replica, axis=0) == np.arange(3)[:, None, None]).all()  # a permutation
    assert (replica[:, :, -1] != np.arange(3)[:, None]).any()  # that moved
    with open(out / "swaps.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["pair"] for r in rows] == ["0-1", "1-2"]
    assert sum(int(r["proposed"]) for r in rows) == 4 * 12  # one pair of 4 ladders per round
    with open(out / "round_trips.csv") as handle:
        assert list(csv.DictReader(handle))[0]["ladders"] == "4"
    files = [out / f"beta{b}.nc" for b in (1.0, 2.0, 3.0)]
    assert invoke(["analyze", *files, "--out", tmp_path / "t.csv", "--experiment", "x"])[0] == 0


@pytest.fixture
def fake_bridges(monkeypatch):
    """``load_bridge`` (flows/store.py) replaced by random one-layer flows whose checkpoints say
    which pair they bridge: run directory ``b<from>_<to>``."""
    from dlhmc.flows import store

    def load_bridge(run_dir, device, lattice=None):
        low, high = (float(b) for b in str(run_dir).rsplit("/b", 1)[1].split("_"))
        theory = make_theory("U1", lattice, high, "double", device)
        flow = GaugeFlow(theory, FlowConfig(layers=1, hidden=(2,), local_period=2))
        state = {"sampler": "bridge", "config": {"group": "U1", "beta_from": low, "beta": high},
                 "timing": {"training_seconds": 10.0 * high, "previous_training_seconds": 0.0}}
        return flow, state

    monkeypatch.setattr(store, "load_bridge", load_bridge, raising=False)


def test_a_trex_run_counts_its_bridge_passes(tmp_path, fake_bridges):
    out = tmp_path / "trex"
    bridges = [tmp_path / "b1_2", tmp_path / "b2_3"]
    assert invoke([*BASE, "--bridges", *bridges, "--out-dir", out]) == (0, "")
    chains = load_chain_set(out / "beta2.0.nc")
    attrs = chains.data.attrs
    assert (attrs["sampler"], attrs["flow_layers"], attrs["flow_passes"]) == ("trex", 1, 2.0)
    assert attrs["bridges"] == " ".join(str(b) for b in bridges)
    assert attrs["training_seconds"] == 20.0 + 30.0  # every bridge's training, in all
    # The whole ladder per trajectory: 3 rungs x 3 steps, 2 passes of 1 layer, the refreshes.
    assert chains.lf_per_traj == pytest.approx(3 * 3 + 2.0 * 1 + attrs["force_refreshes"])


def test_a_bridge_of_another_pair_is_refused(tmp_path, fake_bridges):
    code, err = invoke([*BASE, "--bridges", tmp_path / "b1_2", tmp_path / "b2_4", "--out-dir",
                        tmp_path / "out"])
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("dlhmc trex: error: --bridges: ") and "b2_4" in err
