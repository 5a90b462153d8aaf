"""Airflow's environment for a test session, set before any test module imports Airflow.

A module of its own, always imported as `tests.session_home`: pytest loads `tests/conftest.py`
as `conftest`, and test modules that import `tests.conftest` load it a second time, which must
not make a second home (the in-process Airflow would then read another database than the one
the session migrated).

Under pytest-xdist every worker process is a session: its own home and its own `OUTPUT` folder
(`test-output/gw0`, ...), so workers share no file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Under pytest-xdist each worker (gw0, gw1, ...) is a session of its own, with its own folder for
# everything it writes: its Airflow home, its stand-ins' logs, its DAG runs' output.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
OUTPUT = REPO / "test-output" / WORKER if WORKER else REPO / "test-output"
OUTPUT.mkdir(parents=True, exist_ok=True)

# One throw-away Airflow home per test session: tests never touch a developer's `make run` state.
HOME = Path(tempfile.mkdtemp(prefix="airflow-home-", dir=OUTPUT))
os.environ["AIRFLOW_HOME"] = str(HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{HOME / 'airflow.db'}"
