"""Property-based tests (issue 21 E): an output that names one of the command's inputs, however
it is spelled (the same path, a symbolic link, a detour through ``..``, a hard link), is refused
with one line naming the output option, and the input is left as it was."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlhmc.cli import main

HMC = ["hmc", "--group", "U1", "--lattice", "4", "4", "--beta", "1", "--trajectories", "10",
       "--therm", "0", "--chains", "2", "--device", "cpu", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A chain file, an analyze table, an ensemble and a (fake) training run to read."""
    root = tmp_path_factory.mktemp("outputs")
    chains = root / "s.nc"
    assert main([*HMC, "--out", str(chains)]) == 0
    table = root / "t.csv"
    assert main(["analyze", str(chains), "--out", str(table), "--experiment", "x"]) == 0
    ensemble = root / "e.nc"  # configurations (--save-every): what a bridge trains on
    assert main([*HMC, "--save-every", "1", "--out", str(ensemble)]) == 0
    run = root / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"not read: refused before")
    return {"chains": chains, "table": table, "run": run, "root": root, "ensemble": ensemble}


def spelled(path: Path, how: str, where: Path, n: int) -> Path:
    """``path`` as ``how`` names it: itself, through ``..``, or a new symbolic or hard link."""
    if how == "same":
        return path
    if how == "dotdot":
        return path.parent / ".." / path.parent.name / path.name
    link = where / f"link{n}{path.suffix}"
    if link.exists() or link.is_symlink():
        link.unlink()
    if how == "symlink":
        link.symlink_to(path)
    else:
        os.link(path, link)
    return link


# (command line without the output, the input it names, the output option)
CASES = {
    "analyze": (lambda f: ["analyze", f["chains"], "--experiment", "x"], "chains", "--out"),
    "report": (lambda f: ["report", "--table", f["table"], "--experiment", "x"], "table",
               "--out-dir"),
    "infer": (lambda f: ["infer", "--checkpoint", f["run"], "--chains", "2"], "run", "--out"),
    "trex": (lambda f: ["trex", "--lattice", "4", "4", "--betas", "1", "2", "--bridges", f["run"],
                        "--chains", "2", "--device", "cpu"], "run", "--out-dir"),
    "train": (lambda f: ["train", "--sampler", "bridge", "--group", "U1", "--lattice", "4", "4",
                         "--beta", "1.5", "--beta-from", "1", "--data", f["ensemble"], "--batch",
                         "4", "--flow-layers", "2", "--hidden", "4"], "ensemble", "--out"),
    "derivative": (lambda f: ["derivative", "--chains", f["chains"], f["chains"]], "chains",
                   "--out"),
}


@given(command=st.sampled_from(sorted(CASES)), how=st.sampled_from(["same", "dotdot", "symlink",
                                                                    "hardlink"]),
       n=st.integers(0, 3))
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_an_output_naming_an_input_is_refused(files, command, how, n):
    build, name, option = CASES[command]
    source = files[name]
    if how == "hardlink" and source.is_dir():
        how = "symlink"  # directories have no hard links
    before = source.read_bytes() if source.is_file() else sorted(os.listdir(source))
    out = spelled(source, how, files["root"], n)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main([str(a) for a in [*build(files), option, out]])
    lines = err.getvalue().strip().splitlines()
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"dlhmc {command}: error: {option}: "), lines
    after = source.read_bytes() if source.is_file() else sorted(os.listdir(source))
    assert after == before
