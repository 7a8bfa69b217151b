#!/usr/bin/env bash
# The GPU check of a short device lease: one command, one results file, under 8 minutes.
#
#   benchmarks/gpu_check.sh [OUT_DIR]
#
# OUT_DIR defaults to $OUT when set, else ./gpu_check_out; everything (installation, every
# check's PASS/FAIL line, the timings) goes to OUT_DIR/gpu_check.txt and to the terminal.
# Environment: GPU_CHECK_DEVICE (default cuda), GPU_CHECK_QUICK=1 for tiny sizes (a CPU dry
# run; on a shared CPU also OMP_NUM_THREADS=1), PYTHON (default python3), GPU_CHECK_BUDGET
# (seconds for everything, default 460: each stage's limit is cut to what is left of it).
#
# The device machine has no network: the packages it lacks come from .gpu_wheels/, filled
# beforehand by benchmarks/gpu_wheels.sh.  Only what does not import (or, for mpich, no mpiexec
# on PATH) is installed, into .gpu_env/ (--prefix), so the machine's own packages stay as they
# are.  Each stage runs under `timeout` and a failing stage never stops the next one.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-./gpu_check_out}}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-460}
QUICK=()
[ "${GPU_CHECK_QUICK:-0}" = 1 ] && QUICK=(--quick)
PREFIX=$PWD/.gpu_env
WHEELS=$PWD/.gpu_wheels
# import name:distribution name; pyerrors' compiled dependencies are carried as cp312 wheels
MODULES=(h5netcdf:h5netcdf pyerrors:pyerrors autograd:autograd numdifftools:numdifftools
         packaging:packaging iminuit:iminuit lxml:lxml rapidjson:python-rapidjson)

pip_prefix() {  # install distributions into $PREFIX from the carried wheels only
    timeout 45 "$PY" -m pip install --quiet --no-index --find-links "$WHEELS" --no-deps \
        --ignore-installed --no-warn-script-location --prefix "$PREFIX" "$@"
}

use_prefix() {  # make $PREFIX's programs, libraries and modules visible to what follows
    local paths
    paths=$("$PY" -c "import sysconfig as s; v = {'base': '$PREFIX', 'platbase': '$PREFIX'}; \
print(s.get_path('purelib', vars=v) + ':' + s.get_path('platlib', vars=v))")
    export PATH=$PREFIX/bin:$PATH
    export LD_LIBRARY_PATH=$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export PYTHONPATH=$PWD/src:$paths${PYTHONPATH:+:$PYTHONPATH}
}

mpi_works() {
    timeout 30 "$PY" -c "from mpi4py import MPI; print(MPI.Get_library_version().splitlines()[0])"
}

install_missing() {
    local missing=() pair
    for pair in "${MODULES[@]}"; do
        "$PY" -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
    done
    command -v mpiexec >/dev/null || missing+=(mpich)
    echo "missing here: ${missing[*]:-nothing}"
    if [ ${#missing[@]} -gt 0 ]; then
        if [ ! -d "$WHEELS" ]; then
            echo "FAIL install: no $WHEELS (run benchmarks/gpu_wheels.sh where PyPI is reachable)"
        elif pip_prefix "${missing[@]}"; then
            echo "PASS install: ${missing[*]} into $PREFIX"
        else
            echo "FAIL install: pip could not install ${missing[*]}"
        fi
    fi
    use_prefix
    if ! mpi_works; then  # this mpi4py cannot load the MPI library: the carried one can
        pip_prefix mpi4py && mpi_works && echo "PASS install: mpi4py into $PREFIX"
    fi
    echo "mpiexec: $(command -v mpiexec || echo none)"
}

stage() {  # stage NAME SECONDS ARGS...: one stage of gpu_check.py under `timeout`
    local name=$1 limit=$2 rc left=$((BUDGET - SECONDS - 10))
    shift 2
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 5 ]; then
        echo "FAIL stage $name: not started, the ${BUDGET}s budget is spent"
        return
    fi
    echo "== [$(date -u +%T) UTC, ${SECONDS}s] stage $name, limit ${limit}s"
    timeout --kill-after=10 "$limit" "$PY" benchmarks/gpu_check.py --device "$DEVICE" \
        "${QUICK[@]}" --stage "$name" "$@"
    rc=$?
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "FAIL stage $name: timed out after ${limit}s"
    echo "== stage $name: exit status $rc"
}

main() {
    echo "gpu_check on ${HOSTNAME:-?} at $(date -u +%FT%TZ), device $DEVICE ${QUICK[*]}"
    echo "git $(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
        "python $("$PY" -c 'import sys; print(sys.version.split()[0])')"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv,noheader
    install_missing
    export HYDRA_LAUNCHER=fork  # MPICH's mpiexec starts the rank locally, without ssh
    # The limits add up to 425 s; with the installation all stays within the budget.
    stage env 35
    stage exact 130
    stage mpi 120
    stage bench 140
}

mkdir -p "$OUT_DIR"
RESULT=$OUT_DIR/gpu_check.txt
main 2>&1 | tee "$RESULT"
echo "== done in ${SECONDS}s: $(grep -c '^PASS' "$RESULT") PASS, $(grep -c '^FAIL' "$RESULT") FAIL" \
    | tee -a "$RESULT"
! grep -q '^FAIL' "$RESULT"
