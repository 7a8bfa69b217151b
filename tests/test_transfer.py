"""Volume transfer: a ``network: local`` model trained on one torus samples any other exactly.

A local model is trained briefly by the command line on U(1) 4x4 and run by ``dlhmc infer
--lattice`` on 8x8 and 6x4; the plaquette and ``<Q_Z^2>`` must match the exact finite-volume
values of those volumes (not of the training one).  The errors are the Gamma method's, with
the chains as replicas.  Beta is small enough that short chains mix in charge.  Dense models,
whose weights read every link of one volume, are refused on one line, by ``infer`` and by a
warm start, and so are lattices that the group or the local masks cannot take.
"""

from __future__ import annotations

import pytest
from train_helpers import TINY, load

from dlhmc.analysis.autocorr import gamma_method
from dlhmc.cli import main
from dlhmc.io import read_chains
from dlhmc.lattice.u1_exact import exact_plaquette, sector_distribution

BETA = 1.5
# Three layers of eps ~ 0.3: trajectories long enough for tau_int ~ 2 at this beta.
LOCAL = ["--beta", str(BETA), "--nlf", "3", "--hidden", "4", "--eps-init", "0.3",
         "--network", "local", "--local-period", "2"]  # fmt: skip


def _run(*argv) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:  # argparse errors
        return exc.code


def _one_line_naming(capsys, *words) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("transfer") / "local"
    assert main(["train", *TINY, *LOCAL, "--steps", "30", "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("transfer") / "dense"
    assert main(["train", *TINY, "--steps", "3", "--out", str(run)]) == 0
    return run


def _infer(run, out, *extra) -> int:
    return _run("infer", "--checkpoint", str(run), "--out", str(out), "--no-progress",
                "--layer-samples", "1", *extra)  # fmt: skip


def _exact_q2(volume: int) -> float:
    charges, probs, _ = sector_distribution(BETA, volume, 10)
    return float((probs * charges**2).sum() / probs.sum())


def test_local_model_samples_other_volumes_exactly(local_run, tmp_path):
    n_params = set()
    for lattice in [(8, 8), (6, 4)]:
        out = tmp_path / f"{lattice[0]}x{lattice[1]}.nc"
        code = _infer(local_run, out, "--lattice", *map(str, lattice), "--chains", "32",
                      "--trajectories", "200", "--therm", "20", "--seed", "3")  # fmt: skip
        assert code == 0
        ds = read_chains(out)
        volume = lattice[0] * lattice[1]
        assert dict(ds.sizes)["chain"] == 32 and list(ds.attrs["lattice"]) == list(lattice)
        assert list(ds.attrs["train_lattice"]) == [4, 4]
        assert ds.attrs["network"] == "local" and ds.attrs["local_period"] == 2
        assert ds.attrs["winding"] == 0
        n_params.add(int(ds.attrs["n_params"]))

        plaq = gamma_method(ds["plaq"].values)
        exact = exact_plaquette(BETA, volume)
        assert abs(plaq.mean - exact) < 4 * plaq.mean_err, (lattice, plaq, exact)
        assert plaq.mean_err < 0.01  # teeth: a wrong sampler shifts the plaquette by more
        q2 = gamma_method(ds["charge"].values ** 2)
        exact_q2 = _exact_q2(volume)
        assert abs(q2.mean - exact_q2) < 4 * q2.mean_err, (lattice, q2, exact_q2)
        assert q2.mean_err < 0.1 * exact_q2
    # One parameter count for every volume: the weights stored in the checkpoint.
    stored = sum(v.numel() for v in load(local_run)["model"].values())
    assert n_params == {stored}


def test_the_charge_tells_the_volumes_apart():
    """Guards the test above: the plaquette barely depends on the volume, but ``<Q_Z^2>`` grows
    with it, so chains of the 4x4 training volume would fail the charge check."""
    for volume in (64, 24):
        assert abs(_exact_q2(16) - _exact_q2(volume)) > 0.2 * _exact_q2(volume)


def test_dense_model_on_another_volume_is_refused(dense_run, tmp_path, capsys):
    out = tmp_path / "chains.nc"
    out.write_bytes(b"previous result")
    assert _infer(dense_run, out, "--lattice", "8", "8") == 2
    _one_line_naming(capsys, "--lattice", "dense", "4 4", "8 8")
    assert out.read_bytes() == b"previous result"
    # Its own volume, named explicitly, is fine; dense chains carry no local_period.
    assert _infer(dense_run, out, "--lattice", "4", "4", "--chains", "2",
                  "--trajectories", "2", "--therm", "0") == 0  # fmt: skip
    attrs = read_chains(out).attrs
    assert attrs["network"] == "dense" and "local_period" not in attrs
    assert list(attrs["train_lattice"]) == [4, 4]
    assert attrs["n_params"] == sum(v.numel() for v in load(dense_run)["model"].values())


def test_warm_start_of_a_local_model_on_another_volume_and_beta(local_run, tmp_path):
    run = tmp_path / "big"
    argv = ["train", *TINY, *LOCAL, "--lattice", "8", "8", "--beta", "2.5", "--steps", "2",
            "--init", str(local_run), "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    state = load(run)
    assert state["config"]["lattice"] == [8, 8] and state["config"]["beta"] == 2.5
    assert state["config"]["init"] == str(local_run.resolve())
    assert set(state["model"]) == set(load(local_run)["model"])


def test_warm_start_of_a_dense_model_on_another_volume_is_refused(dense_run, tmp_path, capsys):
    run = tmp_path / "big"
    argv = ["train", *TINY, "--lattice", "8", "8", "--steps", "2", "--init", str(dense_run),
            "--out", str(run)]  # fmt: skip
    assert _run(*argv) == 2
    _one_line_naming(capsys, "--init", "--lattice 4 4")
    assert not run.exists()
    # Nor does a warm start change the network family.
    argv += ["--network", "local"]
    assert _run(*argv) == 2
    _one_line_naming(capsys, "--init", "--network dense")
    assert not run.exists()


@pytest.mark.parametrize(
    ("lattice", "words"),
    [
        (["8"], ["--lattice", "2D"]),
        (["4", "4", "4", "4"], ["--lattice", "2D"]),
        (["5", "4"], ["--lattice", "even extents"]),
    ],
)
def test_bad_lattices_are_refused_before_any_work(
    local_run, tmp_path, capsys, lattice, words
):
    out = tmp_path / "chains.nc"
    assert _infer(local_run, out, "--lattice", *lattice) == 2
    _one_line_naming(capsys, *words)
    assert not out.exists()
    run = tmp_path / "run"
    assert _run("train", *TINY, *LOCAL, "--lattice", *lattice, "--out", str(run)) == 2
    _one_line_naming(capsys, *words)
    assert not run.exists()


def test_local_options_are_checked_before_any_work(tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", *TINY, "--out", str(run)]
    assert _run(*base, "--network", "local", "--lattice", "5", "4") == 2  # period 4: 4k + 1
    _one_line_naming(capsys, "--lattice", "4k + 1")
    assert _run(*base, "--network", "local", "--mask", "random") == 2
    # The setting of another family is named, with the family that reads it and this one.
    _one_line_naming(capsys, "--mask", "network dense", "network local")
    assert _run(*base, "--local-period", "2") == 2  # dense has no local masks
    _one_line_naming(capsys, "--local-period")
    assert _run(*base, "--local-period", "3") == 2
    _one_line_naming(capsys, "--local-period")
    su3 = ["--group", "SU3", "--lattice", "2", "2", "2", "3", "--network", "local"]
    assert _run(*base, *su3) == 2  # the SU(3) parity masks need even extents
    _one_line_naming(capsys, "--lattice")
    assert not run.exists()
