"""Runs the DAG through Airflow's own CLI (`airflow dags test`) in a child process, as a user would."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
RUN_DAG_AT = Path(__file__).parent / "support" / "run_dag_at.py"
KNOWN_DEADLINE_CRASH = "(builtins.AttributeError) 'dict' object has no attribute 'hex'"


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
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = {**os.environ, **env}
        self.home = Path(env["AIRFLOW_HOME"])
        self.log_dir = log_dir
        self.outputs: list[str] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def run(self, *args: str, extra_env: dict[str, str] | None = None, timeout: int = 300):
        return subprocess.run(
            [AIRFLOW, *args],
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

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
    ) -> DagRun:
        """`airflow dags test`; with `run_after`, the same `DAG.test()` at that run time."""
        env = {**self.env, **(extra_env or {})}
        if run_after is None:
            args = ["dags", "test", dag_id] + (["--conf", json.dumps(conf)] if conf is not None else [])
            done = self.run(*args, extra_env=extra_env)
        else:
            script = [sys.executable, str(RUN_DAG_AT), dag_id, "--run-after", run_after.isoformat()]
            script += ["--conf", json.dumps(conf or {})]
            done = subprocess.run(script, env=env, capture_output=True, text=True, timeout=300)
        output = done.stdout + done.stderr
        self.outputs.append(output)
        (self.log_dir / f"{name}-{len(self.outputs)}.log").write_text(output)
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
        states, tries = self.task_instances(dag_id, run_id)
        return DagRun(done.returncode, output, run_id, state, states, tries)

    def task_instances(self, dag_id: str, run_id: str) -> tuple[dict[str, str], dict[str, int]]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute(
                "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ?",
                (dag_id, run_id),
            ).fetchall()
        return {task: state for task, state, _ in rows}, {task: tries for task, _, tries in rows}
