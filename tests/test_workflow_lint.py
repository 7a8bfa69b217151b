"""The workflow follows Snakemake's style and best practices: snakefmt and `snakemake --lint`."""

from __future__ import annotations

import subprocess

from workflow_helpers import BIN, REPO, snakemake, workflow_env


def test_snakefmt_check():
    result = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflow"],
        cwd=REPO,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint():
    """Lints (missing log or conda directive, path composition, ...) make --lint exit non-zero."""
    result = snakemake("--lint", cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr
