"""Compile what the suite's Airflow processes import, once, into the bytecode cache `make test` uses.

Run by `make test` after the venv is made, with the tests' PYTHONPYCACHEPREFIX. Without it the
first processes of a run (six xdist workers, their emulators' migrations, four deployments'
components) would each compile the same few thousand modules at the same time on the same CPUs.
Importing is all it does: in a throw-away Airflow home, nothing is started or written there.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fork_server import PRELOAD

# What Airflow's components and the test processes import beyond a DAG run's modules.
COMPONENTS = (
    "airflow.cli.commands.api_server_command", "airflow.cli.commands.scheduler_command",
    "airflow.cli.commands.dag_processor_command", "airflow.cli.commands.triggerer_command",
    "airflow.cli.commands.standalone_command", "airflow.cli.commands.db_command", "airflow.api_fastapi.app",
    "airflow.api_fastapi.core_api.app", "airflow.jobs.scheduler_job_runner",
    "airflow.jobs.triggerer_job_runner", "airflow.dag_processing.manager",
    "airflow.executors.local_executor", "airflow.providers.celery.executors.celery_executor", "uvicorn",
    "fastapi.testclient", "hypothesis", "playwright.sync_api",
)  # fmt: skip


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="warm-bytecode-") as home:
        os.environ["AIRFLOW_HOME"] = home
        os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
        os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
        missing = []
        for name in (*PRELOAD, *COMPONENTS):
            try:
                importlib.import_module(name)
            except Exception as error:  # another Airflow version, an optional extra: compiled less
                missing.append(f"{name} ({type(error).__name__}: {error})")
    print(f"warm_bytecode: {len(sys.modules)} modules compiled or found compiled", file=sys.stderr)
    for name in missing:
        print(f"warm_bytecode: not imported: {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
