#!/usr/bin/env bash
# Fill .gpu_wheels/ (git-ignored) with the wheels a CUDA machine without network lacks.
#
#   benchmarks/gpu_wheels.sh            # here, where PyPI is reachable
#
# The device machine (see benchmarks/gpu_check.sh) has Python 3.12, a CUDA build of torch and
# numpy, scipy, pandas, xarray, h5py, matplotlib, mpi4py, pyyaml, tqdm, psutil, but neither the
# NetCDF engine dlhmc writes chains with (h5netcdf), nor pyerrors and its dependencies, nor an
# MPI launcher.  pyerrors needs iminuit, lxml and python-rapidjson, which are compiled: their
# cp312 manylinux wheels come along.  mpich (a binary wheel with mpiexec and libmpi) gives
# mpi4py an MPI library; an mpi4py wheel comes too, for a machine whose mpi4py cannot load it.
# Everything is pinned to the versions of this checkout's environment where they are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.gpu_wheels
PIP=(python3 -m pip download --no-deps --dest "$DEST" --only-binary=:all: --python-version 3.12
     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
     --platform manylinux2014_x86_64 --platform any)
PACKAGES=(h5netcdf pyerrors autograd numdifftools packaging iminuit lxml python-rapidjson
          mpich mpi4py)

pinned() {  # "name==version" when installed here, else the bare name (newest release)
    local version
    version=$(python3 -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p')
    if [ -n "$version" ]; then echo "$1==$version"; else echo "$1"; fi
}

mkdir -p "$DEST"
specs=()
for name in "${PACKAGES[@]}"; do specs+=("$(pinned "$name")"); done
"${PIP[@]}" "${specs[@]}"
ls -l "$DEST"
du -sh "$DEST"
