"""``dlhmc derivative``: finite differences in beta by independent ensembles, reweighting and a
bridge flow (:mod:`dlhmc.analysis.derivative`), checked against the exact 2D U(1) values.

The flow estimator is importance sampling with the proposal ``f_* p_B1``: unbiased for any
invertible ``f`` whose Jacobian is right. So a flow with random weights must reproduce the exact
difference within its error, and the same flow with its ``log|J|`` dropped must miss it by many
errors: the test that the Jacobian enters where it should.
"""

from __future__ import annotations

import contextlib
import io
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from dlhmc.analysis import derivative as deriv
from dlhmc.analysis.chains import load_chain_set
from dlhmc.cli import main
from dlhmc.flows import mixture
from dlhmc.flows.model import FlowConfig, GaugeFlow
from dlhmc.lattice import make_theory

B1, B2 = 1.0, 1.5
CONTRACT = ["observable", "estimator", "beta_from", "beta_to", "value", "error", "exact",
            "n_configs"]  # fmt: skip


def hmc(path, beta, *extra, lattice=("4", "4"), chains="16", trajectories="400"):
    args = ["hmc", "--group", "U1", "--lattice", *lattice, "--beta", str(beta), "--nlf", "5",
            "--eps", "0.2", "--chains", chains, "--trajectories", trajectories, "--therm", "50",
            "--seed", "3", "--device", "cpu", "--no-progress", "--out", str(path),
            *extra]  # fmt: skip
    assert main(args) == 0
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Ensembles at B1 (configurations every 2nd trajectory) and B2 (none: thinned by B1's K),
    and tiny files for the bad inputs."""
    root = tmp_path_factory.mktemp("derivative")
    tiny = {"chains": "2", "trajectories": "10"}
    return {
        "root": root,
        "b1": hmc(root / "b1.nc", B1, "--save-every", "2"),
        "b2": hmc(root / "b2.nc", B2),
        "other_lattice": hmc(root / "l.nc", B2, "--save-every", "2", lattice=("4", "6"), **tiny),
        "no_links": hmc(root / "n.nc", B2, **tiny),
    }


@pytest.fixture(scope="module")
def chain_sets(files):
    return load_chain_set(files["b1"]), load_chain_set(files["b2"])


def random_flow(layers: int = 4) -> GaugeFlow:
    """Coupling layers with random network weights, their log-scales pulled to -0.3 so that the
    map (and its Jacobian) differs from the identity by a clear amount, not by a wild one: its
    weights keep an effective sample size near 0.1 on the 4x4 ensembles here."""
    torch.manual_seed(1)
    theory = make_theory("U1", (4, 4), B2, "double", "cpu")
    flow = GaugeFlow(theory, FlowConfig(layers=layers, hidden=(4,), local_period=2))
    with torch.no_grad():
        for layer in flow.layers:
            layer.net.head.weight.normal_(0.0, 0.05)
            layer.net.head.bias.zero_()
            layer.net.head.bias[: mixture.N_COMPONENTS] = -0.3
    return flow


class WithoutJacobian:
    """``flow`` with its ``log|J|`` dropped: a wrong importance weight."""

    def __init__(self, flow):
        self.flow, self.theory = flow, flow.theory

    def __call__(self, x):
        y, _ = self.flow(x)
        return y, torch.zeros(x.shape[0], dtype=torch.float64)


def pulls(table: pd.DataFrame, estimator: str) -> dict[str, float]:
    rows = table[table.estimator == estimator]
    return {r.observable: (r.value - r.exact) / r.error for r in rows.itertuples()}


def invoke(args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue().strip()


def test_the_command_writes_every_estimator_within_errors_of_exact(files):
    out = files["root"] / "d.csv"
    code, _, err = invoke(["derivative", "--chains", files["b1"], files["b2"], "--out", out,
                           "--device", "cpu"])  # fmt: skip
    assert code == 0, err
    table = pd.read_csv(out)
    assert list(table.columns) == list(deriv.COLUMNS)
    assert list(table.columns[: len(CONTRACT)]) == CONTRACT
    assert set(zip(table.observable, table.estimator, strict=True)) == {
        (o, e) for o in ("plaq", "q2") for e in ("independent", "reweight")}
    assert (table.beta_from == B1).all() and (table.beta_to == B2).all()
    n = 16 * 200  # chains x saved configurations of each file
    assert table.set_index("estimator").n_configs.to_dict() == {"independent": 2 * n,
                                                                 "reweight": n}
    assert np.isfinite(table[["value", "error", "exact"]].to_numpy()).all()
    for row in table.itertuples():
        assert abs(row.value - row.exact) < 4.5 * row.error, row
    # The exact finite difference lies between the derivatives at the ends (plaq is concave).
    assert 0.25 < table.exact[table.observable == "plaq"].iloc[0] < 0.35


def test_identity_flow_is_reweighting_bit_for_bit(chain_sets):
    theory = make_theory("U1", (4, 4), B2, "double", "cpu")
    table = deriv.derivative_table(*chain_sets, GaugeFlow(theory, FlowConfig(layers=0)))
    columns = ["value", "error", "ess", "tau_int", "n_configs"]
    flow = table[table.estimator == "flow"][columns].to_numpy()
    reweight = table[table.estimator == "reweight"][columns].to_numpy()
    assert np.array_equal(flow, reweight)


def test_a_random_flow_is_unbiased_and_a_wrong_jacobian_is_not(chain_sets):
    flow = random_flow()
    right = deriv.derivative_table(*chain_sets, flow)
    assert all(abs(p) < 4.5 for p in pulls(right, "flow").values()), right
    ess = right[right.estimator == "flow"].ess.iloc[0]
    assert 0.03 < ess < 0.9  # a real change of measure, not the identity
    wrong = deriv.derivative_table(*chain_sets, WithoutJacobian(flow))
    assert pulls(wrong, "flow")["plaq"] > 15, wrong


def test_small_batches_map_the_same(chain_sets):
    first, _ = chain_sets
    theory = make_theory("U1", (4, 4), B1, "double", "cpu")
    links = torch.from_numpy(first.data["links"].values[:3, :5].copy())
    flow = random_flow()
    whole = deriv.map_ensemble(flow, links, theory, theory.with_beta(B2), batch=10**30)
    pieces = deriv.map_ensemble(flow, links, theory, theory.with_beta(B2), batch=4)
    np.testing.assert_allclose(pieces[0], whole[0], rtol=0, atol=1e-10)
    for name in deriv.OBSERVABLES:
        np.testing.assert_allclose(pieces[1][name], whole[1][name], rtol=0, atol=1e-12)


def test_linearized_ratio_error_agrees_with_the_jackknife():
    """Uncorrelated synthetic data: Wolff's projected error of ``<w O'>/<w> - <O>`` against the
    delete-one jackknife of the same function (numpy only)."""
    rng = np.random.default_rng(7)
    chains, n = 8, 1000
    log_w = rng.normal(0.0, 0.7, (chains, n))
    before = rng.normal(0.0, 1.0, (chains, n))
    mapped = before + 0.5 * log_w + rng.normal(0.0, 0.3, (chains, n))
    estimate = deriv.correlated_difference(log_w, mapped, before)
    w = np.exp(log_w - log_w.max()).ravel()
    primaries = np.stack([w * mapped.ravel(), w, before.ravel()])
    total, count = primaries.sum(axis=1, keepdims=True), primaries.shape[1]
    leave_one_out = (total - primaries) / (count - 1)
    jack = leave_one_out[0] / leave_one_out[1] - leave_one_out[2]
    jack_error = math.sqrt((count - 1) / count * ((jack - jack.mean()) ** 2).sum())
    value = primaries[0].mean() / primaries[1].mean() - primaries[2].mean()
    assert estimate.value == pytest.approx(value, rel=1e-12)
    assert estimate.error == pytest.approx(jack_error, rel=0.15)
    assert estimate.n_configs == chains * n


def test_weights_never_overflow():
    log_w = np.array([[1e4, 1e4 - 1.0], [1e4 - 2.0, -1e4]])
    w = deriv.weights(log_w)
    assert w.max() == 1.0 and np.isfinite(w).all()
    with pytest.raises(ValueError, match="non-finite"):
        deriv.weights(np.array([[0.0, np.nan]]))


def test_degenerate_weights_give_no_verdict():
    """A weighted estimate whose weights leave fewer than MIN_EFFECTIVE_CONFIGS effective
    configurations is flagged (its linearized error is then an underestimate); spread-out weights
    of the same data are not."""
    rng = np.random.default_rng(3)
    mapped, before = rng.normal(size=(4, 500)), rng.normal(size=(4, 500))
    spread = deriv.correlated_difference(0.1 * rng.normal(size=(4, 500)), mapped, before)
    assert not spread.frozen and spread.ess * 2000 >= deriv.MIN_EFFECTIVE_CONFIGS
    heavy = deriv.correlated_difference(12.0 * rng.normal(size=(4, 500)), mapped, before)
    assert heavy.ess * 2000 < deriv.MIN_EFFECTIVE_CONFIGS and heavy.frozen


def _fake_bridge(flow, **config):
    state = {"config": {"group": "U1", "lattice": [4, 4], "beta_from": B1, "beta": B2, **config}}

    def load_bridge(run_dir, device, lattice=None):
        return flow, state

    return load_bridge


def test_the_command_with_a_bridge(files, monkeypatch):
    from dlhmc.flows import store

    monkeypatch.setattr(store, "load_bridge", _fake_bridge(random_flow()), raising=False)
    out = files["root"] / "bridge.csv"
    code, printed, err = invoke(["derivative", "--chains", files["b1"], files["b2"], "--bridge",
                                 files["root"] / "run", "--out", out, "--device", "cpu"])
    assert code == 0, err
    table = pd.read_csv(out)
    assert len(table) == 6 and list(table.columns) == list(deriv.COLUMNS)
    assert all(abs(p) < 4.5 for p in pulls(table, "flow").values())
    assert "d<plaq>/dbeta flow" in printed


def test_a_bridge_is_evaluated_on_the_chains_it_did_not_train_on(files, monkeypatch):
    """Trained on B1's own file: only its held-out chains (the last quarter) enter the flow
    rows; an estimate on the training configurations is biased (module docstring)."""
    pytest.importorskip("dlhmc.training.bridge_trainer")
    from dlhmc.flows import store

    bridge = _fake_bridge(random_flow(), data=str(files["b1"]))
    monkeypatch.setattr(store, "load_bridge", bridge, raising=False)
    out = files["root"] / "held.csv"
    code, printed, err = invoke(["derivative", "--chains", files["b1"], files["b2"], "--bridge",
                                 files["root"] / "run", "--out", out, "--device", "cpu"])
    assert code == 0, err
    assert "the flow rows use its 4 held-out chains of 16" in printed
    table = pd.read_csv(out).set_index("estimator")
    assert table.n_configs.to_dict() == {"independent": 6400, "reweight": 3200, "flow": 800}


BAD = {
    "one file": (lambda f: [f["b1"]], "--chains: expected exactly two"),
    "three files": (lambda f: [f["b1"], f["b2"], f["b2"]], "--chains: expected exactly two"),
    "missing": (lambda f: [f["b1"], f["root"] / "absent.nc"], "--chains: .*no such file"),
    "damaged": (lambda f: [f["b1"], f["garbage"]], "--chains: .*not a NetCDF"),
    "lattice": (lambda f: [f["b1"], f["other_lattice"]], "--chains: different lattices"),
    "same beta": (lambda f: [f["b1"], f["b1"]], "--chains: both files are at beta 1"),
    "no links": (lambda f: [f["no_links"], f["b1"]], "--chains: .*no configurations.*--save-every"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_chain_files_are_one_line(files, case):
    (files["root"] / "garbage.nc").write_bytes(b"\x89HDF\r\n" + bytes(range(200)))
    files = {**files, "garbage": files["root"] / "garbage.nc"}
    build, message = BAD[case]
    out = files["root"] / f"bad-{case.replace(' ', '_')}.csv"
    code, _, err = invoke(["derivative", "--chains", *build(files), "--out", out])
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("dlhmc derivative: error: --chains: ")
    assert re.search(message, err), err
    assert not out.exists()


BRIDGES = {
    "beta_from": ({"beta_from": 1.2}, "--bridge: .*beta_from 1.2.*B1"),
    "beta": ({"beta": 1.5 + 1e-6}, "--bridge: .*beta 1.5.*B2"),
    "lattice": ({"lattice": [8, 8]}, "--bridge: .*on 8x8"),
}


@pytest.mark.parametrize("case", sorted(BRIDGES))
def test_a_bridge_between_other_couplings_or_volumes_is_refused(files, monkeypatch, case):
    from dlhmc.flows import store

    config, message = BRIDGES[case]
    monkeypatch.setattr(store, "load_bridge", _fake_bridge(None, **config), raising=False)
    out = files["root"] / "refused.csv"
    code, _, err = invoke(["derivative", "--chains", files["b1"], files["b2"], "--bridge",
                           files["root"] / "run", "--out", out])
    assert code == 2 and len(err.splitlines()) == 1 and re.search(message, err), err
    assert not out.exists()


def test_a_bridge_that_cannot_be_loaded_is_one_line(files, monkeypatch):
    from dlhmc.flows import store

    def load_bridge(run_dir, device, lattice=None):
        raise ValueError(f"{run_dir}/checkpoint.pt: no such file")

    monkeypatch.setattr(store, "load_bridge", load_bridge, raising=False)
    code, _, err = invoke(["derivative", "--chains", files["b1"], files["b2"], "--bridge",
                           files["root"] / "nowhere", "--out", files["root"] / "x.csv"])
    assert code == 2 and err.startswith("dlhmc derivative: error: --bridge: "), err


def test_nan_results_do_not_exit_0(files, monkeypatch):
    table = pd.DataFrame([{**dict.fromkeys(deriv.COLUMNS, 0.0), "observable": "q2",
                           "estimator": "reweight", "error": math.nan}])
    monkeypatch.setattr(deriv, "derivative_table", lambda *a, **k: table)
    code, _, err = invoke(["derivative", "--chains", files["b1"], files["b2"], "--out",
                           files["root"] / "nan.csv"])
    assert code == 1
    assert err.splitlines()[-1].startswith("dlhmc derivative: error: no finite value"), err
