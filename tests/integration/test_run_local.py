"""`make run`, checked whole: `python -m dev.run_local --check` starts the stand-ins and Airflow
standalone in a throw-away home, checks the DAG over REST, prints OK and stops everything.

The child's coordinator key is fixed to a recognisable value, so the test can look for it in the
output, the logs and every command line on the machine while it runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from dev import services
from tests.conftest import OUTPUT, REPO

pytestmark = pytest.mark.system

KEY = "run-local-key-5c81d0e2-MUST-NOT-SHOW"
# Passed through the environment and removed before anything starts, so only the code below knows it.
LAUNCH = (
    "import os, sys\n"
    "import dev.run_local as run_local\n"
    "key = os.environ.pop('TEST_RUN_LOCAL_KEY')\n"
    "run_local.new_api_key = lambda: key\n"
    "sys.exit(run_local.main(sys.argv[1:]))\n"
)
TIMEOUT = 420  # a fresh home: the database migration, then four Airflow components


def _processes_where(file: str, marker: str) -> list[str]:
    """`pid: cmdline` of this user's processes whose /proc/PID/`file` contains `marker`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker.encode() in (proc / file).read_bytes():
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{proc.name}: {command}")
        except OSError:  # gone already, or another user's
            continue
    return found


@pytest.fixture(scope="module")
def check_run() -> dict:
    if not Path("/proc/self/environ").exists():
        pytest.skip("needs /proc to see the processes it starts")
    work = Path(tempfile.mkdtemp(prefix="run-local-", dir=OUTPUT))
    home, log_dir, port = work / "home", work / "logs", services.free_port()
    # Every process run_local starts inherits this; none may be left once it exits.
    mark = f"run-local-{uuid.uuid4()}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCH,
            "--check",
            "--port",
            str(port),
            "--home",
            str(home),
            "--log-dir",
            str(log_dir),
        ],
        cwd=REPO,
        env={**os.environ, "TEST_RUN_LOCAL_KEY": KEY, "TEST_RUN_LOCAL_MARK": mark},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    key_on_command_lines: set[str] = set()
    deadline = time.monotonic() + TIMEOUT
    while process.poll() is None and time.monotonic() < deadline:
        key_on_command_lines.update(_processes_where("cmdline", KEY))
        time.sleep(0.5)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # run_local stops what it started
        process.wait(timeout=120)
    output = process.stdout.read()
    (work / "output.txt").write_text(output)
    time.sleep(1)  # the last children reaped by init
    return {
        "returncode": process.returncode,
        "output": output,
        "port": port,
        "home": home,
        "log_dir": log_dir,
        "key_on_command_lines": sorted(key_on_command_lines),
        "left_running": _processes_where("environ", mark),
    }


def test_check_succeeds(check_run: dict) -> None:
    assert check_run["returncode"] == 0, check_run["output"][-5000:]
    assert re.search(r"^OK: stalled_batch_cleanup is listed and unpaused", check_run["output"], re.MULTILINE)


def test_block_shows_the_ui_address_and_the_real_login(check_run: dict) -> None:
    password = json.loads((check_run["home"] / "passwords.json").read_text())["admin"]

    assert f"Airflow UI      http://localhost:{check_run['port']}" in check_run["output"]
    assert f"login: admin / {password}" in check_run["output"]


def test_block_says_where_slack_messages_and_the_coordinator_are(check_run: dict) -> None:
    output = check_run["output"]

    assert re.search(
        r"Slack messages  show up at http://127\.0\.0\.1:\d+/ \(webhook mode;", output, re.MULTILINE
    )
    assert re.search(r"curl -X POST http://127\.0\.0\.1:\d+/admin/batches ", output)


def test_api_key_is_never_shown(check_run: dict) -> None:
    logs = [path for folder in (check_run["log_dir"], check_run["home"]) for path in folder.rglob("*")]
    leaks = [str(path) for path in logs if path.is_file() and KEY.encode() in path.read_bytes()]

    assert KEY not in check_run["output"]
    assert check_run["key_on_command_lines"] == []
    assert leaks == []


def test_nothing_is_left_running(check_run: dict) -> None:
    assert check_run["left_running"] == []
