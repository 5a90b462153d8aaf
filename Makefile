# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv

.PHONY: help venv run test test-fast test-unit lint bench lock clean test-compat

help:
	@echo "make run    - start the stand-ins and Airflow (standalone) with the DAG unpaused"
	@echo "              (SLACK_MODE=bot: a bot-token Slack connection, one thread per incident)"
	@echo "make test   - create the virtual environment if missing and run the whole suite"
	@echo "make test-fast - the tests that start no Airflow process and no emulator (unit, deploy)"
	@echo "make lint   - ruff (with Airflow's AIR rules)"
	@echo "make bench  - benchmarks; prints a table and writes bench/results.json"
	@echo "make lock   - re-resolve requirements.lock (Airflow 3.3) and requirements/airflow-3.{1,2}.lock"
	@echo "make test-compat - the DAG's end-to-end suite on Airflow 3.1, 3.2 and 3.3 (COMPAT=3.1 for one)"

# The venv is rebuilt only when the lock changes; uv installs the pinned set in seconds.
$(BIN)/.installed: requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==0.13.8
	$(UV) pip install --quiet --python $(BIN)/python -r requirements.lock
	touch $@

venv: $(BIN)/.installed

# Each Airflow version Cloud Composer 3 runs has its lock; each is resolved with the pins Airflow's
# own constraints would impose (requirements/constraints-3.x.txt, each pin with its reason).
COMPAT_LOCKED := 3.1 3.2

lock:
	$(UV) pip compile --quiet --python-version 3.11 requirements-dev.txt \
		-c requirements/constraints-3.3.txt -o requirements.lock
	for v in $(COMPAT_LOCKED); do \
		$(UV) pip compile --quiet --python-version 3.11 requirements/dev-$$v.txt \
			-c requirements/constraints-$$v.txt -o requirements/airflow-$$v.lock || exit 1; \
	done

# One venv per version (.venv-3.1, .venv-3.2, .venv-3.3), made or synced from its lock when it
# changed, then tests/dags with its python; prints a table, fails if any version fails.
COMPAT ?=
test-compat: venv
	$(PYTHON) dev/compat.py --uv $(UV) --python $(PYTHON) $(COMPAT)

# SLACK_MODE=bot: Slack through the stand-in's Web API with a bot token (incidents as threads).
SLACK_MODE ?= webhook
run: venv
	$(BIN)/python -m dev.run_local --slack $(SLACK_MODE)

# The whole suite on TEST_WORKERS pytest-xdist workers, each a session of its own (own Airflow home,
# emulator, stand-ins and test-output/gwN). tests/conftest.py schedules them: the tests that use
# the session's Airflow dealt out to three groups (three Airflows to start), each other module in a
# group of its own, so that module-scoped deployments stay on one worker; the slowest start first.
# Most of the suite waits (on schedulers, retries, timeouts), so it runs more workers than cores.
TEST_WORKERS ?= 6
PYTEST_PARALLEL := -n $(TEST_WORKERS)
# Python's bytecode cache for the tests, in the venv (never beside the sources), also where
# PYTHONDONTWRITEBYTECODE is set: each of the suite's ~100 Python processes (Airflow's components,
# each `airflow dags test`) then compiles a module only if no process did before; seconds each.
TEST_ENV := env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$(abspath $(VENV))/pycache
# When make started: the wall time printed at the end includes making the venv.
MAKE_STARTED := $(shell date +%s)

# Once per venv: what the suite's Airflow processes import, compiled into that cache by one process
# before the workers start, rather than by all of them at once (tests/support/warm_bytecode.py).
$(VENV)/pycache/.warm: $(BIN)/.installed tests/support/warm_bytecode.py
	$(TEST_ENV) $(BIN)/python tests/support/warm_bytecode.py
	mkdir -p $(@D) && touch $@

test: venv $(VENV)/pycache/.warm
	@suite=$$(date +%s); status=0; \
	$(BIN)/ruff check . && $(TEST_ENV) $(BIN)/python -m pytest $(PYTEST_PARALLEL) || status=$$?; \
	now=$$(date +%s); \
	echo "make test: $$((now - suite)) s wall for lint and the suite, $$((now - $(MAKE_STARTED))) s with the venv"; \
	exit $$status

# The tests that start no process of Airflow's and no emulator: the pure modules, the deployment
# files. Under a minute.
test-fast: venv
	$(TEST_ENV) $(BIN)/python -m pytest tests/unit tests/deploy tests/ui/test_ui_history.py

test-unit: test-fast

lint: venv
	$(BIN)/ruff check .

# With the bytecode cache, as Airflow's DAG processor parses: a compile of every module from source
# in each fresh interpreter would be most of the parse time measured.
bench: venv $(VENV)/pycache/.warm
	$(TEST_ENV) $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .airflow .run test-output .pytest_cache .ruff_cache
