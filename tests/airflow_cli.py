"""Runs the DAG through Airflow's own CLI (`airflow dags test`) in a child process, as a user would.

Each run is a process of its own, started one of two ways, with the same command line,
environment, output and exit code:

- forked from a warm Airflow (`tests/support/fork_server.py`): one long-lived process per Airflow
  home that has imported Airflow, its CLI and the providers once, so a run skips seconds of
  imports. Only for runs that change nothing but the settings in `FORKABLE_ENV`: those are read
  when a run looks them up (connections, variables), when it imports the project (`[batch_cleanup]`)
  or when it makes its Firestore client, never while Airflow is imported;
- a fresh process (`subprocess.run`), for every other run (one that sets PYTHONPATH for a cluster
  policy, or turns on metrics, which Airflow sets up at import), and for every run when
  `TESTS_FRESH_AIRFLOW=1`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import locale
import os
import re
import resource
import secrets
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
RUN_DAG_AT = Path(__file__).parent / "support" / "run_dag_at.py"
FORK_SERVER = Path(__file__).parent / "support" / "fork_server.py"
KNOWN_DEADLINE_CRASH = "(builtins.AttributeError) 'dict' object has no attribute 'hex'"
# What a forked run may set differently from its Airflow home's environment (see the docstring).
FORKABLE_ENV = re.compile(
    r"AIRFLOW_CONN_[A-Z0-9_]+|AIRFLOW_VAR_[A-Z0-9_]+|AIRFLOW__BATCH_CLEANUP__[A-Z0-9_]+|FIRESTORE_EMULATOR_HOST"
)
FRESH_ONLY = os.environ.get("TESTS_FRESH_AIRFLOW") == "1"
# The fork server imports what a fresh `airflow` imports; measured 4-10 s, longer under load.
WARM_START_TIMEOUT = 240


@dataclass
class DagRun:
    returncode: int
    output: str
    run_id: str
    state: str
    task_states: dict[str, str] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)

    def explain(self) -> str:
        tail = self.output[-4000:]
        return f"run {self.run_id} ended {self.state} with tasks {self.task_states}; output tail:\n{tail}"


class AirflowCLI:
    def __init__(self, env: dict[str, str], log_dir: Path, secrets: tuple[str, ...] = ()) -> None:
        self.env = {**os.environ, **env}
        self.home = Path(env["AIRFLOW_HOME"])
        self.log_dir = log_dir
        self.secrets = secrets  # that no run may leave anywhere (`dags_test` checks every run)
        self.outputs: list[str] = []
        log_dir.mkdir(parents=True, exist_ok=True)
        self._warm: WarmAirflow | None = None
        self._warm_lock = threading.Lock()

    def run(self, *args: str):
        return subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=300)

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        done = self.run("db", "migrate")
        assert done.returncode == 0, f"airflow db migrate failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"

    def dags_test(
        self,
        dag_id: str,
        *,
        conf: dict | None = None,
        name: str = "run",
        extra_env: dict[str, str] | None = None,
        run_after: datetime | None = None,
        expect: str | None = None,
    ) -> DagRun:
        """`airflow dags test`; with `run_after`, the same `DAG.test()` at that run time; with
        `expect`, the state the run must end in."""
        env = {**self.env, **(extra_env or {})}
        if run_after is None:
            args = ["dags", "test", dag_id] + (["--conf", json.dumps(conf)] if conf is not None else [])
            done, how, wall, cpu = self._execute([AIRFLOW, *args], env, airflow_main=True)
        else:
            script = [sys.executable, str(RUN_DAG_AT), dag_id, "--run-after", run_after.isoformat()]
            script += ["--conf", json.dumps(conf or {})]
            done, how, wall, cpu = self._execute(script, env, airflow_main=False)
        output = done.stdout + done.stderr
        self.outputs.append(output)
        (self.log_dir / f"{name}-{len(self.outputs)}.log").write_text(output)
        # One line per run, so that a slower run shows: how it was started, wall and CPU seconds.
        with (self.log_dir / "run-times.tsv").open("a") as times:
            times.write(f"{name}-{len(self.outputs)}\t{how}\t{wall:.2f}\t{cpu:.2f}\n")
        finished = re.findall(
            r"DagRun Finished: dag_id=\S+, logical_date=.*?, run_id=([^,]+), .*?state=(\w+)", output
        )
        if not finished and KNOWN_DEADLINE_CRASH in output:
            # apache/airflow#73428 (3.3.1-3.3.2): `DAG.test()` of a DAG with `deadline=` crashes in
            # DagRun.update_state *after* marking the run successful. Only that exact case passes.
            marked = re.findall(r"Marking run <DagRun \S+ @ \S+ \S+: (\S+), state:\w+.*?> successful", output)
            finished = [(run_id, "success") for run_id in marked]
        if not finished:
            raise AssertionError(
                f"`airflow dags test` did not finish a run (rc={done.returncode}):\n{output[-5000:]}"
            )
        run_id, state = finished[-1]
        # Every run of the suite is scanned for secrets as it ends: no test relies on another's runs.
        scanned = {f"the output of {name}-{len(self.outputs)}": output}
        scanned |= {f"table {table}, run {run_id}": t for table, t in self.database_text(run_id).items()}
        self.assert_no_secret(scanned)
        run = DagRun(done.returncode, output, run_id, state, *self.task_instances(dag_id, run_id))
        assert expect in (None, state), run.explain()
        return run

    def assert_no_secret(self, scanned: dict[str, str]) -> None:
        """None of `secrets` in any of the `scanned` texts (where → text); each leak shown in place."""
        leaks = {
            f"{secret[:8]}… in {where}": text[max(0, text.find(secret) - 120) :][:200]
            for where, text in scanned.items()
            for secret in self.secrets
            if secret in text
        }
        assert leaks == {}, f"a secret leaked: {leaks}"

    def database_text(self, run_id: str | None = None) -> dict[str, str]:
        """Each table of the metadata database as text; with `run_id`, that run's rows of each table
        that has a `run_id` (XCom, rendered fields, task instances, the audit log, ...)."""
        with contextlib.closing(sqlite3.connect(self.home / "airflow.db")) as db:
            text = {}
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                if run_id is None:
                    rows = db.execute(f'SELECT * FROM "{table}"')
                elif "run_id" in {column[1] for column in db.execute(f'PRAGMA table_info("{table}")')}:
                    rows = db.execute(f'SELECT * FROM "{table}" WHERE run_id = ?', (run_id,))
                else:
                    continue
                text[table] = "\n".join(map(repr, rows))
        return text

    def _execute(
        self, command: list[str], env: dict[str, str], *, airflow_main: bool, timeout: int = 300
    ) -> tuple[subprocess.CompletedProcess, str, float, float]:
        """`command` with `env`, its output captured: forked from the warm Airflow where that is sound.
        Also how it was started (forked or fresh), and its wall and CPU seconds."""
        changed = {key for key in env.keys() | self.env.keys() if env.get(key) != self.env.get(key)}
        started = time.monotonic()
        if FRESH_ONLY or not all(FORKABLE_ENV.fullmatch(key) for key in changed):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # approximate if runs overlap
            how, cpu = "fresh", after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        else:
            warm = self.warm_up()
            argv = command if airflow_main else command[1:]  # the script runs as `python SCRIPT ...`
            done, cpu = warm.run(argv, env, airflow_main=airflow_main, timeout=timeout)
            how = "forked"
        return done, how, time.monotonic() - started, cpu

    def warm_up(self) -> WarmAirflow | None:
        """This home's warm Airflow, started (after `migrate`) if it is not running yet."""
        if FRESH_ONLY:
            return None
        with self._warm_lock:
            if self._warm is None:
                self._warm = WarmAirflow(self.env, self.log_dir / "fork-server.log")
            return self._warm

    def close(self) -> None:
        """Stop the warm Airflow, if one was started (also done at exit)."""
        with self._warm_lock:
            if self._warm is not None:
                self._warm.stop()
                self._warm = None

    def task_instances(self, dag_id: str, run_id: str) -> tuple[dict[str, str], dict[str, int]]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute(
                "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ?",
                (dag_id, run_id),
            ).fetchall()
        return {task: state for task, state, _ in rows}, {task: tries for task, _, tries in rows}


class WarmAirflow:
    """The fork server of one Airflow home (tests/support/fork_server.py) and the runs forked from it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.address = f"airflow-fork-server-{os.getpid()}-{secrets.token_hex(8)}"
        self.log_path = log_path
        ready_read, ready_write = os.pipe()  # the server writes one line to it once it listens
        try:
            with log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, str(FORK_SERVER), self.address, str(ready_write)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=[ready_write],
                )
            os.close(ready_write)
            _started.add(self)
            if not select.select([ready_read], [], [], WARM_START_TIMEOUT)[0]:
                self.stop()
                raise RuntimeError(f"the fork server did not start in time:\n{self._log_tail()}")
            if os.read(ready_read, 64) != b"ready\n":  # it exited before it was ready
                self.stop()
                raise RuntimeError(
                    f"the fork server exited ({self.process.returncode}) while starting:\n{self._log_tail()}"
                )
        finally:
            os.close(ready_read)

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def run(
        self, argv: list[str], env: dict[str, str], *, airflow_main: bool, timeout: float
    ) -> tuple[subprocess.CompletedProcess, float]:
        """A child that runs `argv` as its own process would, like `subprocess.run(..., text=True)`;
        and the child's CPU seconds."""
        with tempfile.TemporaryDirectory(prefix="airflow-run-") as folder:
            stdout, stderr = Path(folder) / "stdout", Path(folder) / "stderr"

            def outputs() -> tuple[str, str]:
                return _text(stdout.read_bytes()), _text(stderr.read_bytes())

            request = {"argv": argv, "env": env, "cwd": os.getcwd(), "airflow_main": airflow_main}
            request |= {"stdout": str(stdout), "stderr": str(stderr)}
            deadline = time.monotonic() + timeout
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect("\0" + self.address)
                conn.sendall(json.dumps(request).encode() + b"\n")
                replies = conn.makefile("rb")
                pid = self._reply(conn, replies, deadline, "pid")["pid"]
                try:
                    ended = self._reply(conn, replies, deadline, "returncode")
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired(argv, timeout, *outputs()) from None
            return subprocess.CompletedProcess(argv, ended["returncode"], *outputs()), ended["cpu_seconds"]

    def _reply(self, conn: socket.socket, replies, deadline: float, key: str) -> dict:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            line = replies.readline()
        except TimeoutError:
            raise
        except OSError as error:
            raise RuntimeError(f"the fork server failed ({error}):\n{self._log_tail()}") from error
        if not line:
            raise RuntimeError(f"the fork server closed the connection:\n{self._log_tail()}")
        reply = json.loads(line)
        if key not in reply:
            raise RuntimeError(f"the fork server answered {reply}:\n{self._log_tail()}")
        return reply

    def stop(self) -> None:
        _started.discard(self)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _text(data: bytes) -> str:
    """Bytes as `subprocess.run(..., text=True)` decodes them: locale encoding, universal newlines."""
    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


_started: set[WarmAirflow] = set()


@atexit.register
def _stop_all() -> None:
    for warm in list(_started):
        warm.stop()
