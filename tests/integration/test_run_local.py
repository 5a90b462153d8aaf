"""`make run`, checked whole: `python -m dev.run_local --check` starts the stand-ins and Airflow
standalone in a throw-away home, checks the DAG over REST, prints OK and stops everything.

Before it, the same home had a session stopped with Ctrl-C, as a user stops `make run`, after a
document was written into its Firestore emulator: the `--check` session must start with it.

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
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from dev import services
from dev.airflow_env import LOCAL_PROJECT
from dev.run_local import FIRESTORE_EXPORT
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
# What the first session writes into Firestore, and the second must find.
KEPT = f"/v1/projects/{LOCAL_PROJECT}/databases/(default)/documents/run_local_test/kept"


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


class Launch:
    """`run_local` with `args`, its output written to `log` as it comes."""

    def __init__(self, log: Path, *args: str, mark: str) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", LAUNCH, *args],
                cwd=REPO,
                # Every process run_local starts inherits the mark; none may be left once it exits.
                env={**os.environ, "TEST_RUN_LOCAL_KEY": KEY, "TEST_RUN_LOCAL_MARK": mark},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, until, key_seen: set[str]) -> None:
        """Until `until(self)` holds or the process ends (at most TIMEOUT), looking for the key on
        command lines meanwhile; a launch still running after TIMEOUT is stopped."""
        deadline = time.monotonic() + TIMEOUT
        while self.process.poll() is None and not until(self) and time.monotonic() < deadline:
            key_seen.update(_processes_where("cmdline", KEY))
            time.sleep(0.5)
        if self.process.poll() is None and not until(self):
            self.stop(signal.SIGTERM)

    def stop(self, signum: int) -> None:
        self.process.send_signal(signum)  # run_local stops what it started
        self.process.wait(timeout=120)


@pytest.fixture(scope="module")
def check_run() -> dict:
    if not Path("/proc/self/environ").exists():
        pytest.skip("needs /proc to see the processes it starts")
    work = Path(tempfile.mkdtemp(prefix="run-local-", dir=OUTPUT))
    home, log_dir, port = work / "home", work / "logs", services.free_port()
    places = ["--home", str(home), "--log-dir", str(log_dir)]
    mark = f"run-local-{uuid.uuid4()}"
    key_on_command_lines: set[str] = set()

    # A session stopped with Ctrl-C once it is up, with a document written into its Firestore.
    # Its own port: the first session's may still be held (TIME_WAIT) when the second starts.
    first = Launch(work / "first-output.txt", "--port", str(services.free_port()), *places, mark=mark)
    first.wait(lambda launch: "Stop with Ctrl-C." in launch.output, key_on_command_lines)
    emulator = re.search(r"Firestore       emulator at (\S+) ", first.output)
    if emulator and first.process.poll() is None:
        document = json.dumps({"fields": {"written": {"stringValue": "in the first session"}}}).encode()
        request = urllib.request.Request(
            f"http://{emulator.group(1)}{KEPT}", data=document, method="PATCH",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        urllib.request.urlopen(request, timeout=30).close()
    if first.process.poll() is None:
        first.stop(signal.SIGINT)  # Ctrl-C

    check = Launch(work / "output.txt", "--check", "--port", str(port), *places, mark=mark)
    check.wait(lambda launch: False, key_on_command_lines)
    time.sleep(1)  # the last children reaped by init
    return {
        "returncode": check.process.returncode,
        "output": check.output,
        "first": {"returncode": first.process.returncode, "output": first.output, "emulator": emulator},
        "port": port,
        "home": home,
        "log_dir": log_dir,
        "key_on_command_lines": sorted(key_on_command_lines),
        "left_running": _processes_where("environ", mark),
    }


def test_a_session_stopped_with_ctrl_c_keeps_firestore_for_the_next(check_run: dict) -> None:
    first = check_run["first"]
    assert first["emulator"] and first["returncode"] == 0, first["output"][-5000:]
    # The --check session's own stop exported again what it had: the document only if it imported it.
    emulator = services.start_firestore_emulator(
        check_run["log_dir"] / "reread", import_from=check_run["home"] / FIRESTORE_EXPORT
    )
    try:
        with urllib.request.urlopen(emulator.url + KEPT, timeout=30) as response:
            kept = json.load(response)["fields"]
    except urllib.error.HTTPError as err:
        kept = f"HTTP {err.code}"
    finally:
        emulator.stop()
    assert kept == {"written": {"stringValue": "in the first session"}}


def test_the_password_file_is_readable_by_its_owner_only(check_run: dict) -> None:
    passwords = check_run["home"] / "passwords.json"
    assert passwords.stat().st_mode & 0o777 == 0o600
    assert "admin" in json.loads(passwords.read_text())


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
