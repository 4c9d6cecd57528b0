# One command sets everything up: a virtual environment in .venv, the installs, then the job.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# PyTorch is pinned first so that the CPU build is used where it is available;
# pass e.g. TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu" to pick the CPU wheel.
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: test demo lint bench clean-venv

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,data]"
	touch $(STAMP)

# Two pytest-xdist workers (one per core of a small machine), each given whole test files
# (a file's module fixtures, such as test_many.py's dask cluster, start once): on a cold
# Numba cache the two compile the tests' two shared frame loops at once (tests/conftest.py).
# TEST_WORKERS=auto takes one worker per CPU; TEST_WORKERS=0 runs in this one process.
TEST_WORKERS ?= 2
PYTEST_XDIST = -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_XDIST)

demo: $(STAMP)
	$(BIN)/sigmadelta demo

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python scripts/benchmark.py

clean-venv:
	rm -rf $(VENV)
