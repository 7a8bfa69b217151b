"""Wall time of the tiny experiment (tests/data/tiny_config.yaml) through Snakemake.

    .venv/bin/python benchmarks/pipeline_tiny.py [--cores 2]

The end-to-end test checks what the run writes; how long it takes belongs here,
with the conditions it ran under, because on a loaded machine a timed assertion
measures the neighbours rather than the pipeline.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conditions import describe

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    print(describe(), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with tempfile.TemporaryDirectory() as workdir:
        cmd = [
            str(Path(sys.executable).parent / "snakemake"),
            "-s", str(REPO / "Snakefile"),
            "--cores", str(args.cores),
            "--configfile", str(REPO / "tests/data/tiny_config.yaml"),
        ]  # fmt: skip
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = children.ru_utime + children.ru_stime
    if result.returncode != 0:
        sys.exit(f"pipeline failed:\n{result.stderr[-2000:]}")
    print(f"tiny pipeline, {args.cores} cores: {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"(cpu/wall {cpu / wall:.2f})")


if __name__ == "__main__":
    main()
