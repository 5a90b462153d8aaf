"""Airflow's own components as separate processes, as a deployment runs them, and a REST client.

Two configurations: `local-sqlite` (LocalExecutor on SQLite, as `make run`) and
`celery-postgres-redis` (CeleryExecutor with its own worker process, PostgreSQL as the metadata
database, Redis as the broker). Every component logs to `<work>/components/<name>.log`; a failed
check shows the tails of those logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from dev import services
from dev.airflow_env import REPO
from tests.conftest import OUTPUT, stand_in_env

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAG_ID = "stalled_batch_cleanup"
USERNAME = "admin"
NEW_YORK = ZoneInfo("America/New_York")
# Every component carries it, so that anything left running after stop() can be found.
MARK_VARIABLE = "SYSTEM_TEST_DEPLOYMENT"

MIGRATE_TIMEOUT = 600
# Five Airflow processes importing Airflow at once on 2 CPUs; measured 25-40 s.
HEALTHY_TIMEOUT = 240.0
DAG_PARSED_TIMEOUT = 180.0
RUN_TIMEOUT = 300.0
STOP_TIMEOUT = 30.0
TERMINAL_STATES = {"success", "failed"}
TRIGGER_ATTEMPTS = 2
AUDIT_LOG = "INSERT INTO log ("


@dataclass
class Component:
    name: str
    process: subprocess.Popen
    log_path: Path


@dataclass
class Deployment:
    """The components of one configuration, started in `work/`, and REST calls to its API server."""

    name: str
    work: Path
    env: dict[str, str]
    port: int
    password: str
    celery: bool = False
    components: list[Component] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    client: httpx.Client | None = None

    @property
    def home(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.work / "components"

    def use_celery(self, database_url: str, broker_url: str) -> None:
        """The CeleryExecutor with its own worker, on `database_url` (not SQLite) and `broker_url`."""
        self.celery = True
        for suffix in ("", "_ASYNC"):  # not SQLite: no lock timeout to hand its driver
            del self.env[f"AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS{suffix}"]
        self.env |= {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database_url}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        }

    def start(self) -> None:
        started = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # The simple auth manager keeps its users' passwords in this file; one written first is kept.
        passwords = Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
        passwords.write_text(json.dumps({USERNAME: self.password}))
        self._migrate()
        self.timings["db migrate"] = time.monotonic() - started

        started = time.monotonic()
        commands = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer"],
        }
        if self.celery:
            # Mingle and gossip only matter with several workers; without them start-up is seconds faster.
            commands["celery-worker"] = [
                "celery", "worker", "--concurrency", "2", "--without-mingle", "--without-gossip",
            ]  # fmt: skip
        for name, args in commands.items():
            self._spawn(name, args)
        self._wait_healthy()
        if self.celery:
            self._wait_for_log_line("celery-worker", " ready.")
        self.timings["components healthy"] = time.monotonic() - started
        self.client = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self._token()}"}, timeout=30
        )

    def _migrate(self) -> None:
        options = dict(cwd=REPO, env=self.env, capture_output=True, text=True, timeout=MIGRATE_TIMEOUT)
        done = subprocess.run([AIRFLOW, "db", "migrate"], **options)
        (self.log_dir / "db-migrate.log").write_text(output := done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(
                f"[{self.name}] airflow db migrate failed (exit {done.returncode}):\n{output[-4000:]}"
            )

    def _spawn(self, name: str, args: list[str]) -> None:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:  # in its own process group: stop() reaches its children too
            process = subprocess.Popen(
                [AIRFLOW, *args], cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.components.append(Component(name, process, log_path))

    def _check_alive(self) -> None:
        for component in self.components:
            if component.process.poll() is not None:
                code, tail = component.process.returncode, services.log_tail(component.log_path)
                raise RuntimeError(
                    f"[{self.name}] {component.name} exited with code {code} while starting. "
                    f"Last lines of {component.log_path}:\n{tail}"
                )

    def _wait_healthy(self) -> None:
        """Until `/api/v2/monitor/health` reports the database and every component healthy."""
        deadline = time.monotonic() + HEALTHY_TIMEOUT
        health: Any = "no answer"
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(httpx.HTTPError, ValueError):  # not listening yet
                health = httpx.get(self.base_url + "/api/v2/monitor/health", timeout=5).json()
                parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
                if all((health.get(part) or {}).get("status") == "healthy" for part in parts):
                    return
            time.sleep(1)
        why = f"not healthy within {HEALTHY_TIMEOUT:.0f} s; last answer: {health}"
        raise RuntimeError(f"[{self.name}] {why}\n{self.explain()}")

    def _wait_for_log_line(self, name: str, text: str) -> None:
        deadline = time.monotonic() + HEALTHY_TIMEOUT
        while time.monotonic() < deadline:
            self._check_alive()
            if text in self.component_log(name):
                return
            time.sleep(0.5)
        raise RuntimeError(f"[{self.name}] {name} did not log {text!r} in time\n{self.explain()}")

    def _token(self) -> str:
        """A JWT from the simple auth manager's token endpoint, as the UI's login gets one."""
        login = {"username": USERNAME, "password": self.password}
        response = httpx.post(self.base_url + "/auth/token", json=login, timeout=30)
        assert response.status_code in (200, 201), f"login refused: {response.status_code} {response.text}"
        return response.json()["access_token"]

    def stop(self) -> None:
        """SIGTERM to every component's process group at once, then SIGKILL for what is left."""
        started = time.monotonic()
        if self.client is not None:
            self.client.close()
        # All at once; each component stops its own children (executor workers, server workers).
        for component in self.components:
            _signal_group(component.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for component in self.components:
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for component in self.components:
            _signal_group(component.process.pid, signal.SIGKILL)
            component.process.wait()
        self.timings["stop"] = time.monotonic() - started

    def left_running(self) -> list[int]:
        """Ids of processes that carry this deployment's mark: started by it, still running (and killed)."""
        mark = f"{MARK_VARIABLE}={self.env[MARK_VARIABLE]}".encode()
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):  # gone already, or another user's
                if mark in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
        for pid in found:  # ours, by id: a failed test must not leave them to the next one
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return found

    def component_log(self, name: str) -> str:
        [component] = [c for c in self.components if c.name == name]
        return component.log_path.read_text(errors="replace")

    def explain(self, lines: int = 40) -> str:
        """The last lines of every component's log, for an assertion message; the API server's
        access log (mostly this test's own polling) left out."""
        tails = []
        for component in self.components:
            log = self.component_log(component.name).splitlines()
            kept = [line for line in log if "[http.access]" not in line][-lines:]
            tails.append(f"--- {component.name} ({component.log_path}) ---\n" + "\n".join(kept))
        return f"[{self.name}] component logs:\n" + "\n".join(tails)

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:2000]}"
        return response.json()

    def dag(self) -> dict[str, Any] | None:
        response = self.client.get(f"/api/v2/dags/{DAG_ID}")
        return None if response.status_code == 404 else response.raise_for_status().json()

    def wait_for_dag(self) -> dict[str, Any]:
        """The DAG as the REST API lists it, once the dag-processor has parsed it."""
        started = time.monotonic()
        deadline = started + DAG_PARSED_TIMEOUT
        while (dag := self.dag()) is None:
            errors = self.get("/api/v2/importErrors")["import_errors"]
            assert not errors, f"[{self.name}] import errors instead of the DAG: {errors}"
            assert time.monotonic() < deadline, f"{DAG_ID} not listed in time\n{self.explain()}"
            time.sleep(1)
        self.timings["DAG parsed"] = time.monotonic() - started
        return dag

    def trigger(self, conf: dict[str, Any], run_id: str | None = None) -> httpx.Response:
        """`POST .../dagRuns` with the body the UI's trigger form sends.

        On SQLite, Airflow 3.3's api-server can answer 500 "database is locked" when its audit
        log (`INSERT INTO log`, written by an `async` dependency that blocks the event loop)
        waits out SQLite's 5 s timeout behind a task's write in the same process. That fails
        before the route runs, so no run was made; like a user pressing Trigger again, this
        tries once more, for that error only. Any other answer is returned as it is.
        """
        body = {"logical_date": None, "conf": conf} | ({} if run_id is None else {"dag_run_id": run_id})
        for attempt in range(1, TRIGGER_ATTEMPTS + 1):
            response = self.client.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json=body)
            if not _audit_log_locked(response):
                return response
            self.timings[f"trigger retried: audit log locked ({attempt})"] = 0.0
        return response

    def runs(self) -> list[dict[str, Any]]:
        return self.get(f"/api/v2/dags/{DAG_ID}/dagRuns", limit=100)["dag_runs"]

    def wait_for_run(self, run_id: str) -> dict[str, Any]:
        started = time.monotonic()
        deadline = started + RUN_TIMEOUT
        while (run := self.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"))["state"] not in TERMINAL_STATES:
            assert time.monotonic() < deadline, (
                f"run {run_id} still {run['state']} after {RUN_TIMEOUT:.0f} s; "
                f"tasks: {self.task_states(run_id)}\n{self.explain()}"
            )
            time.sleep(1)
        self.timings[f"run {run_id}"] = time.monotonic() - started
        return run

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def task_states(self, run_id: str) -> dict[str, str | None]:
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(run_id)}

    def task_log(self, run_id: str, task_id: str, try_number: int) -> TaskLog:
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        response = self.client.get(
            path, params={"full_content": True}, headers={"Accept": "application/json"}
        )
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:2000]}"
        return TaskLog(f"{run_id}/{task_id}/{try_number}", response.text, response.json()["content"])

    def run_logs(self, run_id: str) -> list[TaskLog]:
        """Every try of every task of the run that started (skipped tasks never ran: no log)."""
        return [
            self.task_log(run_id, ti["task_id"], attempt)
            for ti in self.task_instances(run_id)
            for attempt in range(1, ti["try_number"] + 1)
        ]

    def explain_run(self, run_id: str) -> str:
        """Task states and the logs of the tasks that did not succeed, then the component logs."""
        lines = [f"run {run_id}: {self.task_states(run_id)}"]
        for ti in self.task_instances(run_id):
            if ti["state"] not in ("success", "skipped") and ti["try_number"] > 0:
                log = self.task_log(run_id, ti["task_id"], ti["try_number"])
                lines.append(f"--- log of {log.where} ---\n{log.text[-3000:]}")
        return "\n".join(lines) + "\n" + self.explain(lines=25)


@dataclass
class TaskLog:
    """One try's log as the REST API returns it: the raw body (for secrets) and its lines in plain words."""

    where: str
    raw: str
    content: list[Any]

    @property
    def text(self) -> str:
        lines = []
        for entry in self.content:
            if not isinstance(entry, dict):
                lines.append(str(entry))
                continue
            lines.append(entry.get("event", ""))
            # A task's exception is not in the event ("Task failed with exception") but beside it.
            lines += [f"  {e.get('exc_type')}: {e.get('exc_value')}" for e in entry.get("error_detail") or []]
        return "\n".join(lines)


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(group, signum)


def _audit_log_locked(response: httpx.Response) -> bool:
    if response.status_code != 500:
        return False
    try:
        detail = response.json()["detail"]
        return "database is locked" in detail["orig_error"] and detail["statement"].startswith(AUDIT_LOG)
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def next_quarter_hour(after: datetime) -> datetime:
    """The first :00, :15, :30 or :45 in New York after `after` (the cron `*/15 * * * *` there)."""
    local = after.astimezone(NEW_YORK)
    floor = local.replace(minute=local.minute - local.minute % 15, second=0, microsecond=0)
    # Add in absolute time: wall-clock arithmetic would go wrong across the autumn DST change.
    return floor.astimezone(UTC) + timedelta(minutes=15)


def new_deployment(
    name: str,
    coordinator: services.Service,
    slack_sink: services.Service,
    firestore_emulator: services.Service,
    **settings: str,
) -> Deployment:
    """A deployment in a new folder under test-output/system, pointed at the session's stand-ins.

    The environment of every component: `stand_in_env`, the project's `settings` (`[batch_cleanup]`),
    the executor, the database, the API server's address and what the components must share."""
    work = OUTPUT.resolve() / "system" / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}"  # absolute: SQLite
    work.mkdir(parents=True)
    home, port = work / "home", services.free_port()
    env = {
        **os.environ,
        **stand_in_env(home, coordinator, slack_sink, firestore_emulator),
        **{f"AIRFLOW__BATCH_CLEANUP__{key}": value for key, value in settings.items()},
        **{
            "PATH": f"{Path(AIRFLOW).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            MARK_VARIABLE: f"{name}-{secrets.token_hex(8)}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # LocalExecutor starts this many worker processes; the DAG runs one task at a time anyway.
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__WORKERS": "1",
            # A database error's answer names the statement and the error (see `trigger`).
            "AIRFLOW__API__EXPOSE_STACKTRACE": "True",
            # Task runners (local or Celery) report to the API server's execution API.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # Shared by every component: the API server signs the task runners' tokens with it.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            # Free ports: another Airflow on this machine (`make run`, a colleague's) keeps 8793/8794.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(services.free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(services.free_port()),
            # Look for new DAG files every 5 s rather than every 5 min; each file is re-parsed after 30 s.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
        },
    }
    return Deployment(name, work, env, port, secrets.token_urlsafe(16))


@contextlib.contextmanager
def running(deployment: Deployment) -> Iterator[Deployment]:
    """The deployment started and its DAG parsed; stopped afterwards, pass or fail."""
    try:
        deployment.start()
        deployment.wait_for_dag()
        yield deployment
    finally:
        deployment.stop()
