"""Issue 21 E, F, G, I, J, K, M, N, O: outputs that would destroy inputs, config files the workflow
refuses, full disks, Ctrl-C and misnamed causes each end in one line and the right exit status,
with nothing already written lost."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from train_helpers import TINY, cli_env

from dlhmc import atomic
from dlhmc.cli import main
from dlhmc.commands import hmc as hmc_command
from dlhmc.commands import train as train_command
from dlhmc.settings import TrainSettings

HMC = ["hmc", "--group", "U1", "--lattice", "4", "4", "--beta", "1", "--trajectories", "10",
       "--therm", "0", "--chains", "2", "--device", "cpu", "--no-progress"]  # fmt: skip
REPO = Path(__file__).resolve().parents[1]


def run(argv, capsys):
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    return status, err


@pytest.fixture(scope="module")
def chain_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("chains") / "s.nc"
    assert main([*HMC, "--out", str(path)]) == 0
    return path


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A directory that looks like a training run (what the rule looks at: checkpoint.pt)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"model")
    (run / "metrics.csv").write_text("step\n1\n")
    return run


def test_analyze_refuses_its_chain_file_as_out_also_through_a_link(chain_file, tmp_path, capsys):
    before = chain_file.read_bytes()
    link = tmp_path / "link.nc"
    link.symlink_to(chain_file)
    for out in (chain_file, link, chain_file.parent / ".." / chain_file.parent.name / "s.nc"):
        status, err = run(["analyze", chain_file, "--out", out], capsys)
        assert status == 2 and len(err) == 1, err
        assert err[0].startswith("dlhmc analyze: error: --out:") and "CHAINS.nc" in err[0]
    assert chain_file.read_bytes() == before


def test_infer_and_hmc_refuse_a_file_of_a_run_directory(run_dir, capsys):
    status, err = run(["infer", "--checkpoint", run_dir, "--out", run_dir / "checkpoint.pt"],
                      capsys)
    assert status == 2 and len(err) == 1 and "--out:" in err[0], err
    status, err = run([*HMC, "--out", run_dir / "metrics.csv"], capsys)
    assert status == 2 and len(err) == 1, err
    assert "--out:" in err[0] and "training run directory" in err[0]
    assert (run_dir / "checkpoint.pt").read_bytes() == b"model"
    assert (run_dir / "metrics.csv").read_text() == "step\n1\n"


def test_report_refuses_a_run_directory_as_out_dir(run_dir, tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("a\n1\n")
    status, err = run(["report", "--table", table, "--experiment", "x", "--out-dir", run_dir],
                      capsys)
    assert status == 2 and len(err) == 1 and "--out-dir:" in err[0], err


def test_train_refuses_a_config_with_a_duplicated_key(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("beta: 1.0\nbeta: 2.0\n")
    status, err = run(["train", *TINY, "--config", config, "--steps", "2", "--out",
                       tmp_path / "r"], capsys)
    assert status == 2 and len(err) == 1, err
    assert "--config:" in err[0] and "duplicated key" in err[0] and "beta" in err[0]
    assert not (tmp_path / "r").exists()


def test_train_refuses_a_config_that_is_not_utf8(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_bytes('activation: "caf\u00e9"\n'.encode("latin-1"))
    status, err = run(["train", *TINY, "--config", config, "--steps", "2", "--out",
                       tmp_path / "r"], capsys)
    assert status == 2 and len(err) == 1, err
    assert "--config:" in err[0] and "not UTF-8" in err[0] and "0xe9" in err[0]


def test_check_config_accepts_the_shipped_configs(capsys):
    for path in (REPO / "config.yaml", REPO / "tests" / "data" / "tiny_config.yaml"):
        assert main(["check-config", str(path)]) == 0
        assert capsys.readouterr().out.strip().endswith("ok")


def test_check_config_lists_every_problem(tmp_path, capsys):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"experiments:\n  a:\n    description: caf\xe9\n")
    assert main(["check-config", str(latin)]) == 2
    assert "not UTF-8" in capsys.readouterr().out
    text = (REPO / "tests" / "data" / "tiny_config.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("experiments:", "experiments:\n  x: 1\n  x: 2", 1))
    assert main(["check-config", str(bad)]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert any("experiments.x: duplicated key" in line for line in lines), lines
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(text + "\nunknown_key: 1\n")
    assert main(["check-config", str(wrong)]) == 2
    assert "unknown_key" in capsys.readouterr().out


def test_hmc_full_disk_is_one_line_naming_the_output_and_errno(tmp_path, monkeypatch, capsys):
    out = tmp_path / "s.nc"
    out.write_bytes(b"old")

    def full(path, dataset):
        with atomic.atomic_path(path) as tmp:
            tmp.write_bytes(b"part")
            raise OSError(errno.ENOSPC, "Can't write data (file write failed)")

    monkeypatch.setattr(hmc_command, "write_chains", full)
    status, err = run([*HMC, "--out", out], capsys)
    assert status == 1 and len(err) == 1, err
    assert f"cannot write {out}" in err[0] and "ENOSPC" in err[0]
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["s.nc"]


def test_a_runtime_error_on_a_full_file_system_is_enospc(tmp_path, monkeypatch):
    class Full:
        f_bavail, f_frsize = 0, 4096

    monkeypatch.setattr(os, "statvfs", lambda path: Full)
    failure = atomic.write_error(RuntimeError("[enforce fail at inline_container.cc:672]"),
                                 tmp_path / "checkpoint.pt")
    assert failure.errno == errno.ENOSPC and failure.filename.endswith("checkpoint.pt")
    with pytest.raises(OSError) as raised:
        atomic.check_room(tmp_path / "s.nc", 10)
    assert raised.value.errno == errno.ENOSPC


def test_ctrl_c_exits_130_saying_what_was_kept(tmp_path, monkeypatch, capsys):
    out = tmp_path / "s.nc"
    out.write_bytes(b"old")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hmc_command, "run_chains", interrupted)
    status, err = run([*HMC, "--out", out], capsys)
    assert status == 130 and len(err) == 1, err
    assert err[0].startswith("dlhmc hmc: interrupted:") and str(out) in err[0]
    assert out.read_bytes() == b"old"
    monkeypatch.setattr(train_command, "train", interrupted)
    status, err = run(["train", *TINY, "--steps", "2", "--out", tmp_path / "r"], capsys)
    assert status == 130 and len(err) == 1, err
    assert "interrupted" in err[0] and "no checkpoint" in err[0]


def test_all_skipped_training_at_huge_beta_names_beta():
    settings = TrainSettings.from_dict({"group": "U1", "lattice": [4, 4], "beta": 1e300,
                                        "steps": 2})
    assert train_command._skipped_cause(settings).startswith("--beta 1e+300")
    moderate = TrainSettings.from_dict({"group": "U1", "lattice": [4, 4], "beta": 2.0,
                                        "steps": 2})
    assert train_command._skipped_cause(moderate).startswith("lower --lr")


def test_all_skipped_training_prints_its_line_without_a_torch_warning(tmp_path, capsys):
    """Case K: a skipped step still advances the schedule; torch's warning that the scheduler
    stepped before the optimizer must not come before the one-line error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, err = run(["train", *TINY, "--beta", "1e300", "--steps", "2",
                           "--out", tmp_path / "k"], capsys)
    assert status == 1
    assert err[-1].startswith("dlhmc train: error: all 2 steps were skipped")
    assert not [w for w in caught if "lr_scheduler" in str(w.message)]


@pytest.mark.parametrize("extra, option", [
    (["--instanton-size", "4"], "--instanton-size"),
    (["--instanton-hits", "100000000000"], "--instanton-hits"),
])  # fmt: skip
def test_instanton_options_that_do_nothing_or_have_no_bound(tmp_path, capsys, extra, option):
    status, err = run([*HMC, *extra, "--out", tmp_path / "s.nc"], capsys)
    assert status == 2 and len(err) == 1 and err[0].startswith(f"dlhmc hmc: error: {option}:")


def test_report_table_that_is_a_device(tmp_path, capsys):
    status, err = run(["report", "--table", "/dev/null", "--experiment", "x", "--out-dir",
                       tmp_path / "rep"], capsys)
    assert status == 2 and len(err) == 1 and "character device" in err[0], err


def test_unwritable_hash_log_creates_no_run_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = tmp_path / "new-run"
    status, err = run(["train", *TINY, "--steps", "2", "--out", out, "--hash-log",
                       blocker / "hashes"], capsys)
    assert status == 2 and len(err) == 1 and "--hash-log:" in err[0], err
    assert not out.exists()


def _tmpfs_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _tmpfs_works(), reason="no user and mount namespaces for a small tmpfs")
def test_full_tmpfs_keeps_the_old_chain_file(tmp_path):
    """A real full disk (a 64 KiB tmpfs in a private mount namespace), no injection."""
    mount = tmp_path / "m"
    mount.mkdir()
    script = (f"mount -t tmpfs -o size=64k tmpfs {mount} && echo old > {mount}/s.nc && "
              f"{sys.executable} -m dlhmc.cli {' '.join(HMC)} --trajectories 200 --chains 8 "
              f"--out {mount}/s.nc; echo status=$?; cat {mount}/s.nc")
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                            text=True, env=cli_env(), timeout=120)
    assert "status=1" in result.stdout and result.stdout.strip().endswith("old"), result
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "ENOSPC" in err[0], err
