#!/usr/bin/env bash
# Install the dlhmc package into the freshly created rule environment. Snakemake runs this script
# in its working directory, which must be the repository root (where pyproject.toml is).
set -euo pipefail
if [ ! -f pyproject.toml ]; then
    echo "dlhmc post-deploy: run snakemake from the repository root (no pyproject.toml in $PWD)" >&2
    exit 1
fi
python -m pip install --no-deps -e .
