"""`make run`: the DAG on a local Airflow, next to its stand-ins.

Starts the Firestore emulator, the coordinator stand-in (seeded with demo batches) and the Slack
sink, then `airflow standalone` (LocalExecutor on SQLite) with its home in `.airflow/`. Once
Airflow is healthy and the DAG unpaused, it prints where to look. Ctrl-C stops everything.

Airflow's database persists in the home, and so does Firestore's data: on every stop the
emulator's documents are exported to `.airflow/firestore-export/`, and the next start imports
them: the history page reads Airflow's runs and Firestore's cleanups of the same sessions.

    python -m dev.run_local [--port 8080] [--home DIR] [--log-dir DIR] [--check]

`--check` starts everything, logs in to the REST API, checks that the DAG is listed and
unpaused, prints OK and stops: tests/integration/test_run_local.py runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from dev import services
from dev.airflow_env import LOCAL_PROJECT, REPO, airflow_env, slack_bot_connection
from dev.slack_sink import WEBHOOK_PATH

DAG_ID = "stalled_batch_cleanup"
DIGEST_DAG_ID = "batch_cleanup_weekly_digest"
USERNAME = "admin"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
# Measured on 2 CPUs, fresh home included: 20 s when idle, 70 s with a test suite running alongside.
AIRFLOW_START_TIMEOUT = 300.0
# From the first healthy answer to the DAG in the database: the dag-processor's first parse.
DAG_PARSE_TIMEOUT = 120.0
# Measured: standalone stops in about 9 s; the scheduler first lets running tasks finish.
STOP_TIMEOUT = 30.0
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
# In the home: the emulator's documents between sessions (services.export_firestore), and the
# simple auth manager's generated password, for its owner's eyes only.
FIRESTORE_EXPORT = "firestore-export"
PASSWORDS_FILE = "passwords.json"


class StartFailed(RuntimeError):
    """Something did not come up; the message says what and where its log is."""


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _shown(path: Path) -> str:
    """A path as the user typed it: relative to the repo when inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def local_env(
    home: Path,
    port: int,
    *,
    coordinator: services.Service,
    api_key: str,
    sink: services.Service,
    emulator: services.Service,
    monitoring: services.Service | None = None,
    slack_mode: str = "webhook",
) -> dict[str, str]:
    """The whole environment of `airflow standalone` and of the CLI calls made next to it.

    `slack_mode` "bot" posts through the stand-in's Web API (threads, edits) instead of its webhook.
    """
    token = "xoxb-" + secrets.token_hex(12)
    bot = slack_bot_connection(sink.url + "/api/", token) if slack_mode == "bot" else None
    stand_ins = airflow_env(
        home, coordinator_url=coordinator.url, api_key=api_key, slack_webhook_url=sink.url + WEBHOOK_PATH,
        firestore_host=emulator.host, monitoring_url=monitoring.url if monitoring else None,
        slack_connection=bot,
    )  # fmt: skip
    return {
        **os.environ,
        **stand_ins,
        # standalone starts its components as `airflow ...` from PATH: this venv's, not another.
        "PATH": f"{Path(AIRFLOW).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # LocalExecutor forks this many workers up front (32 by default); the DAG runs one task at a time.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
        "AIRFLOW__API__HOST": os.environ.get("AIRFLOW__API__HOST", "127.0.0.1"),
        "AIRFLOW__API__PORT": str(port),
        # Links in Slack messages and the task runners' calls to the execution API use it.
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        "AIRFLOW__API__WORKERS": "1",
        # Signs the UI's and the task runners' tokens. The one Airflow writes to airflow.cfg is
        # too short for its own check (a warning on every request); a new one logs the UI out.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        # Free ports, not 8793/8794: a second local Airflow (a test run) must not collide.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(services.free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(services.free_port()),
    }


class Airflow:
    """`airflow standalone` in its own process group, so that stopping it reaches every component."""

    def __init__(self, env: dict[str, str], log_dir: Path, base_url: str) -> None:
        self.env, self.log_dir, self.base_url = env, log_dir, base_url
        self.passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
        self.log_path = log_dir / "airflow.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        Path(self.env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        owner_only(self.passwords)
        # Its own process group: stop() reaches the scheduler's task runners and log servers too.
        self.process, self.log_path = services.spawn(
            "airflow", [AIRFLOW, "standalone"], self.log_dir, self.env, own_group=True
        )

    def _failed(self, why: str) -> StartFailed:
        return StartFailed(
            f"Airflow {why}. Its log: {_shown(self.log_path)}\n{services.log_tail(self.log_path)}"
        )

    def _json(self, path: str, token: str | None = None, body: dict | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {"Content-Type": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers)
        # 30 s: a just-started api-server on a busy machine can take that long to answer.
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def wait_healthy(self, timeout: float) -> None:
        """Until `/api/v2/monitor/health` reports every component healthy."""
        deadline = time.monotonic() + timeout
        health: Any = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self._failed(f"exited with code {self.process.returncode} while starting")
            try:
                health = self._json("/api/v2/monitor/health")
                if all((health.get(name) or {}).get("status") == "healthy" for name in COMPONENTS):
                    return
            except (OSError, ValueError):  # not listening yet, or starting up
                pass
            time.sleep(1)
        raise self._failed(f"was not healthy within {timeout:.0f} s (last health answer: {health})")

    def password(self) -> str:
        """The simple auth manager's password for USERNAME: it generates it into its passwords file."""
        try:
            return json.loads(self.passwords.read_text())[USERNAME]
        except (OSError, ValueError, KeyError) as err:
            raise self._failed(f"wrote no password for {USERNAME!r} to {self.passwords} ({err!r})") from None

    def token(self, password: str) -> str:
        """A JWT for the REST API, from the simple auth manager's `POST /auth/token`."""
        return self._json("/auth/token", body={"username": USERNAME, "password": password})["access_token"]

    def dag(self, token: str) -> dict[str, Any] | None:
        """The DAG as `GET /api/v2/dags/{id}` lists it, or None while it is not parsed yet."""
        try:
            return self._json(f"/api/v2/dags/{DAG_ID}", token)
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [AIRFLOW, *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120
        )

    def unpause_dag(self, token: str, timeout: float) -> dict[str, Any]:
        """Wait for the DAG to be parsed, unpause it, and return it as the REST API lists it."""
        deadline = time.monotonic() + timeout
        while self.dag(token) is None:
            if time.monotonic() > deadline:
                errors = self.cli("dags", "list-import-errors").stdout.strip()
                raise self._failed(f"did not list {DAG_ID} within {timeout:.0f} s; import errors:\n{errors}")
            time.sleep(2)
        # Already unpaused at creation (DAGS_ARE_PAUSED_AT_CREATION), unless someone paused it in
        # an earlier session; the CLI says "No paused DAGs were found" and exits 0 either way.
        done = self.cli("dags", "unpause", DAG_ID)
        if done.returncode != 0:
            raise self._failed(f"refused `airflow dags unpause {DAG_ID}`:\n{done.stdout}{done.stderr}")
        return self.dag(token) or {}

    def stop(self) -> None:
        """Ctrl-C for standalone (it stops its components), then SIGTERM and SIGKILL for what is left."""
        if self.process is None:
            return
        group = self.process.pid
        # standalone alone: it stops each component with one SIGTERM. Signalling the whole group too
        # doubled the signals and, measured, stretched the stop from about 9 s to 40 s.
        self.process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(group, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                self.process.poll()  # reap standalone: a zombie leader would keep the group alive
                os.killpg(group, 0)
                time.sleep(0.2)
            os.killpg(group, signal.SIGKILL)
        self.process.wait()


def owner_only(path: Path) -> None:
    """Create `path` empty with mode 0600, or set an existing one's mode to 0600. Airflow writes the
    passwords into the file as it finds it (`a+`: the mode stays), and reads an empty one as none."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    path.chmod(0o600)  # a home made before this, or a umask-proof mode


class KeptFirestore:
    """The emulator, whose documents outlive it: imported from `directory` at start, exported there
    at stop (Ctrl-C and SIGTERM end in `stop()` too)."""

    def __init__(self, log_dir: Path, directory: Path) -> None:
        self.directory = directory
        self.service = services.start_firestore_emulator(log_dir, import_from=directory)

    def stop(self) -> None:
        try:
            services.export_firestore(self.service.url, LOCAL_PROJECT, self.directory)
        except (OSError, RuntimeError) as err:  # keep the previous export; say so
            print(
                f"warning: Firestore's documents were not saved ({err}); {_shown(self.directory)}/ "
                "keeps the last export",
                file=sys.stderr,
            )
        self.service.stop()


def new_api_key() -> str:
    """A new coordinator key each run, known only to this process and its children: never shown."""
    return secrets.token_urlsafe(32)


def banner(
    base_url: str, password: str, home: Path, log_dir: Path, coordinator: str, sink: str, emulator: str,
    monitoring: str, slack_mode: str = "webhook",
) -> str:  # fmt: skip
    slack = (
        "bot-token mode: one thread per incident, through its Web API"
        if slack_mode == "bot"
        else "webhook mode; `make run SLACK_MODE=bot` for one thread per incident"
    )
    seed = json.dumps({"batches": [{"batch_id": "manual-1", "completion_pct": 95, "stalled_minutes": 30}]})
    return f"""
Airflow is up; {DAG_ID} is unpaused and runs every 15 minutes. The weekly digest,
{DIGEST_DAG_ID}, is paused (as it is created everywhere): trigger it to post one.

  Airflow UI      {base_url}   login: {USERNAME} / {password}
  Slack messages  show up at {sink}/ ({slack})
  Coordinator     {coordinator}/admin/batches (its batches), /admin/calls (what the DAG sent)
                  seed a stalled batch, then trigger the DAG in the UI:
                  curl -X POST {coordinator}/admin/batches -H 'Content-Type: application/json' -d '{seed}'
  Firestore       emulator at {emulator} (FIRESTORE_EMULATOR_HOST), project demo-batch-cleanup
  Metrics         each run's Cloud Monitoring write shows up at {monitoring}/admin/requests
  Task logs       in the UI (Grid, a task, Logs) and under {_shown(home / "logs")}/
  Service logs    {_shown(log_dir)}/ (airflow.log, coordinator.log, slack-sink.log, firestore-emulator.log)

Stop with Ctrl-C.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    port, slack = int(os.environ.get("AIRFLOW__API__PORT", "8080")), os.environ.get("SLACK_MODE") or "webhook"
    parser.add_argument(
        "--port", type=int, default=port, help="of the UI and API ($AIRFLOW__API__PORT, 8080)"
    )
    parser.add_argument("--home", type=Path, default=REPO / ".airflow", help="AIRFLOW_HOME (.airflow)")
    parser.add_argument("--log-dir", type=Path, default=REPO / ".run" / "services", help="service logs")
    slack_help = "a webhook, or a bot token: one thread per incident ($SLACK_MODE, webhook)"
    parser.add_argument("--slack", choices=("webhook", "bot"), default=slack, help=slack_help)
    parser.add_argument("--check", action="store_true", help="start, check the DAG over REST, print OK, stop")
    args = parser.parse_args(argv)
    home, log_dir = args.home.resolve(), args.log_dir.resolve()
    base_url = f"http://localhost:{args.port}"

    if not services.port_is_free(args.port):
        print(f"error: port {args.port} is in use; stop what runs there or pass --port", file=sys.stderr)
        return 1

    # Ctrl-C and SIGTERM both stop everything. Set explicitly: a shell that starts this in the
    # background ignores SIGINT, and its children, Airflow included, would inherit that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    started: list[services.Service | KeptFirestore | Airflow] = []
    try:
        print(f"Starting the stand-ins (logs in {_shown(log_dir)}/) ...", flush=True)
        started.append(KeptFirestore(log_dir, home / FIRESTORE_EXPORT))
        emulator, api_key = started[-1].service, new_api_key()
        started.append(services.start_coordinator(log_dir, api_key=api_key, seed_demo=True))
        started.append(services.start_slack_sink(log_dir))
        started.append(services.start_monitoring_api(log_dir))
        coordinator, sink, monitoring = started[1:]
        env = local_env(
            home, args.port, coordinator=coordinator, api_key=api_key, sink=sink, emulator=emulator,
            monitoring=monitoring, slack_mode=args.slack,
        )  # fmt: skip
        airflow = Airflow(env, log_dir, base_url)
        started.append(airflow)
        print(f"Starting Airflow standalone in {_shown(home)}/ (takes a minute) ...", flush=True)
        airflow.start()
        airflow.wait_healthy(AIRFLOW_START_TIMEOUT)
        password = airflow.password()
        token = airflow.token(password)
        dag = airflow.unpause_dag(token, DAG_PARSE_TIMEOUT)
        where = (coordinator.url, sink.url, emulator.host, monitoring.url)
        print(banner(base_url, password, home, log_dir, *where, args.slack), flush=True)

        if args.check:
            if dag.get("dag_id") != DAG_ID or dag.get("is_paused") is not False:
                print(f"FAILED: the REST API lists the DAG as {dag}", file=sys.stderr)
                return 1
            print(f"OK: {DAG_ID} is listed and unpaused at {base_url}/api/v2/dags/{DAG_ID}", flush=True)
            return 0
        code = airflow.process.wait()
        print(f"error: Airflow stopped by itself (exit code {code}); see {_shown(airflow.log_path)}")
        return 1
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, urllib.error.URLError) as err:  # what did not start says so, with its log
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not cut the stop short and leave Airflow's components running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if started:
            print("Stopping Airflow and the stand-ins (up to a minute) ...", flush=True)
        for item in reversed(started):
            item.stop()


if __name__ == "__main__":
    sys.exit(main())
