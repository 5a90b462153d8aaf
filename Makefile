# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv

.PHONY: help venv run test test-unit lint bench lock clean

help:
	@echo "make run    - start the stand-ins and Airflow (standalone) with the DAG unpaused"
	@echo "make test   - create the virtual environment if missing and run the whole suite"
	@echo "make lint   - ruff (with Airflow's AIR rules)"
	@echo "make bench  - benchmarks; prints a table and writes bench/results.json"
	@echo "make lock   - re-resolve requirements.lock from requirements-dev.txt"

# The venv is rebuilt only when the lock changes; uv installs the pinned set in seconds.
$(BIN)/.installed: requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==0.13.8
	$(UV) pip install --quiet --python $(BIN)/python -r requirements.lock
	touch $@

venv: $(BIN)/.installed

lock:
	$(UV) pip compile --quiet --python-version 3.11 requirements-dev.txt -o requirements.lock

run: venv
	$(BIN)/python -m dev.run_local

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

test-unit: venv
	$(BIN)/python -m pytest tests/unit

lint: venv
	$(BIN)/ruff check .

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .airflow .run test-output .pytest_cache .ruff_cache
