# Two entry points: `make run` (the default pipeline) and `make test` (the test suite).
# Both create .venv on first use with the CPU build of torch, the mpich wheel and the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
# Test workers (pytest-xdist): every test runs on one thread (tests/conftest.py), so one worker
# per core of the 2-core reference machine halves the suite's wall time. Whole files go to a
# worker (--dist loadfile): a module's fixtures (a tiny pipeline run, a trained model) are then
# made once, not once on each worker that draws one of its tests. The files go out in the order
# tests/conftest.py collects them, slowest first (--no-loadscope-reorder).
TEST_WORKERS ?= 2
TEST_DIST := --dist loadfile --no-loadscope-reorder
# Bytecode of the package before a run: every pipeline job and every command a test starts is a
# new Python process importing the package, and where PYTHONDONTWRITEBYTECODE is set (as on the
# development machine) each would compile the sources again (~0.3 CPU-s a `dlhmc` start here).
# compileall writes only what is missing or stale.
COMPILE := $(BIN)/python -m compileall -q src

.PHONY: run test test-all lint bench clean

$(BIN)/dlhmc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install mpich
	$(BIN)/pip install -e '.[workflow,dev]'
	touch $@

run: $(BIN)/dlhmc
	$(COMPILE)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES)

test: $(BIN)/dlhmc
	$(COMPILE)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/pytest -n $(TEST_WORKERS) $(TEST_DIST)

test-all: $(BIN)/dlhmc
	$(COMPILE)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/pytest -n $(TEST_WORKERS) $(TEST_DIST) -m ''

lint: $(BIN)/dlhmc
	$(BIN)/ruff check src tests benchmarks profiles tests/fakepbs/qsub tests/fakepbs/qstat tests/fakepbs/qdel
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakefmt --check Snakefile workflow
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --lint

bench: $(BIN)/dlhmc
	$(BIN)/python benchmarks/hmc_throughput.py
	$(BIN)/python benchmarks/l2hmc_step.py
	$(BIN)/python benchmarks/su3_integrators.py
	$(BIN)/python benchmarks/local_vs_dense.py
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python benchmarks/pipeline_tiny.py

clean:
	rm -rf $(VENV)
