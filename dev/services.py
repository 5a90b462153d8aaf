"""Start the local stand-ins as child processes: used by the tests and by `make run`.

Each service logs to a file in `log_dir`; when one fails to start, the error carries the tail of
that log, so a broken start-up is diagnosed from the test output alone.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dev.airflow_env import REPO
from dev.coordinator import API_KEY_VARIABLE

STAND_IN_START_TIMEOUT = 15.0
# Measured: the emulator answers `Ok` about 0.7-0.9 s after `java` starts (Debian package
# google-cloud-cli-firestore-emulator 528.0.0, OpenJDK 17, 2 CPUs). The margin is for loaded CI hosts.
EMULATOR_START_TIMEOUT = 60.0

EMULATOR_PACKAGE = "google-cloud-cli-firestore-emulator"
EMULATOR_JAR = Path(
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
)
EMULATOR_MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
INSTALL_HINT = (
    f"install it with `apt-get update && apt-get install -y {EMULATOR_PACKAGE} openjdk-17-jre-headless` "
    "(the emulator package comes from Google Cloud's apt repository: "
    "https://cloud.google.com/sdk/docs/install#deb), or point FIRESTORE_EMULATOR_JAR at the jar"
)

_LISTENING = re.compile(r"listening on (http://\S+)")


class PrerequisiteMissing(RuntimeError):
    """Something to install on this machine, not a bug: the message says what and how."""


@dataclass
class Service:
    """A running child process and where it answers."""

    name: str
    url: str
    process: subprocess.Popen
    log_path: Path

    @property
    def host(self) -> str:
        """`HOST:PORT`, the form `FIRESTORE_EMULATOR_HOST` takes."""
        return urlsplit(self.url).netloc

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, and SIGKILL if the process has not exited `timeout` seconds later."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def spawn(
    name: str,
    command: list[str],
    log_dir: Path,
    env: dict[str, str] | None = None,
    *,
    own_group: bool = False,
) -> tuple[subprocess.Popen, Path]:
    """Start `command` in the repo with its output in `log_dir/NAME.log`; `env` adds to this environment.

    `own_group`: a new session and process group, so that one signal to the group reaches the
    process's children too, and a Ctrl-C in the terminal reaches only whoever manages it.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        # The child holds its own copy of the file; stdout and stderr share it, in order.
        process = subprocess.Popen(
            command,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=own_group,
        )
    return process, log_path


def _start_failed(name: str, process: subprocess.Popen, log_path: Path, why: str) -> RuntimeError:
    process.kill()
    process.wait()
    return RuntimeError(f"{name} did not start: {why}. Last lines of {log_path}:\n{log_tail(log_path)}")


def _start_stand_in(
    name: str, module: str, log_dir: Path, *args: str, env: dict[str, str] | None = None
) -> Service:
    """Run `python -m module --port 0 ...` and wait for its `listening on URL` line."""
    command = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", "0", *args]
    process, log_path = spawn(name, command, log_dir, env)
    deadline = time.monotonic() + STAND_IN_START_TIMEOUT
    while time.monotonic() < deadline:
        match = _LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            return Service(name, match.group(1), process, log_path)
        if process.poll() is not None:
            raise _start_failed(name, process, log_path, f"exited with code {process.returncode}")
        time.sleep(0.05)
    why = f"no 'listening on' line within {STAND_IN_START_TIMEOUT:.0f} s"
    raise _start_failed(name, process, log_path, why)


def start_coordinator(log_dir: Path, *, api_key: str, seed_demo: bool = False) -> Service:
    args = ["--seed-demo"] if seed_demo else []
    # Through the environment: a command line is visible to every user of the machine in `ps`.
    env = {API_KEY_VARIABLE: api_key}
    return _start_stand_in("coordinator", "dev.coordinator", log_dir, *args, env=env)


def start_slack_sink(log_dir: Path) -> Service:
    return _start_stand_in("slack-sink", "dev.slack_sink", log_dir)


def start_monitoring_api(log_dir: Path) -> Service:
    return _start_stand_in("monitoring-api", "dev.monitoring_api", log_dir)


def firestore_emulator_jar() -> Path:
    """The emulator jar: `FIRESTORE_EMULATOR_JAR`, else the Debian package's usual place, else `dpkg -L`."""
    if configured := os.environ.get("FIRESTORE_EMULATOR_JAR"):
        jar = Path(configured)
        if not jar.is_file():
            raise PrerequisiteMissing(f"FIRESTORE_EMULATOR_JAR={configured} is not a file")
        return jar
    if EMULATOR_JAR.is_file():
        return EMULATOR_JAR
    if shutil.which("dpkg"):
        listing = subprocess.run(["dpkg", "-L", EMULATOR_PACKAGE], capture_output=True, text=True)
        for line in listing.stdout.splitlines():
            if line.endswith("/cloud-firestore-emulator.jar") and Path(line).is_file():
                return Path(line)
    raise PrerequisiteMissing(f"the Firestore emulator jar was not found; {INSTALL_HINT}")


# free_port() picks below the kernel's ephemeral range, which every `bind(("", 0))` (a stand-in's,
# the emulator's own WebSocket server's) and every outgoing connection draw from: a port picked
# there can be taken by any of them in the moment before the caller binds it, and with the suite
# on several workers that happens. Here only another free_port() caller can pick it: 1 in ~20,000.
FREE_PORT_LOW = 10000
_random = random.SystemRandom()


def _ephemeral_ports_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:  # taken
            return False
    return True


def free_port() -> int:
    """A port nothing on 127.0.0.1 listens on now, for a process about to bind it."""
    high = _ephemeral_ports_start()
    for _ in range(100) if high - FREE_PORT_LOW > 1000 else ():
        port = _random.randrange(FREE_PORT_LOW, high)
        if port_is_free(port):
            return port
    with socket.socket() as probe:  # no room below the ephemeral range: the kernel's choice
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


EMULATOR_READY_LINE = "Dev App Server is now running."
EMULATOR_PORT_ATTEMPTS = 3


def start_firestore_emulator(
    log_dir: Path, *, port: int | None = None, import_from: Path | None = None
) -> Service:
    """Google's Firestore emulator on 127.0.0.1; ready once it says it runs and `GET /` answers `Ok`.

    On a port of free_port()'s choosing, a start whose port was taken meanwhile is tried again on
    another port (the error says why the last try failed); a port asked for is tried once.
    `import_from`: a folder `export_firestore` wrote; its documents are loaded at start, when it
    holds an export.
    """
    metadata = import_from / EXPORT_METADATA if import_from is not None else None
    flags = [f"--import-data={metadata}"] if metadata is not None and metadata.is_file() else []
    java = shutil.which("java")
    if java is None:
        raise PrerequisiteMissing(f"`java` is not on PATH; the Firestore emulator needs it: {INSTALL_HINT}")
    jar = firestore_emulator_jar()
    for _ in range(1 if port is not None else EMULATOR_PORT_ATTEMPTS):
        try:
            return _start_firestore_emulator(java, jar, log_dir, port or free_port(), flags)
        except _PortTaken as taken:
            error = taken.error
    raise error from None


class _PortTaken(Exception):
    def __init__(self, error: RuntimeError) -> None:
        self.error = error


def _start_firestore_emulator(java: str, jar: Path, log_dir: Path, port: int, flags: list[str]) -> Service:
    url = f"http://127.0.0.1:{port}"
    # -Duser.language=en as Google's wrapper script: its error messages exist in English only.
    command = [java, "-Duser.language=en", "-cp", str(jar), EMULATOR_MAIN_CLASS, "--host=127.0.0.1"]
    command += [f"--port={port}", *flags]
    name = "firestore-emulator"
    process, log_path = spawn(name, command, log_dir)
    deadline = time.monotonic() + EMULATOR_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:  # most often: the port was taken
            raise _PortTaken(_start_failed(name, process, log_path, f"exited with code {process.returncode}"))
        # Until this emulator says it runs, whoever answers on the port is another process.
        if EMULATOR_READY_LINE in log_path.read_text(errors="replace"):
            try:
                with urllib.request.urlopen(url + "/", timeout=2) as response:
                    if response.read().strip() == b"Ok" and process.poll() is None:
                        return Service(name, url, process, log_path)
            except OSError:  # not answering yet
                pass
            except http.client.HTTPException as error:  # another server on the port
                why = f"{url}/ is answered by another server: {error!r}"
                raise _PortTaken(_start_failed(name, process, log_path, why)) from None
        time.sleep(0.1)
    why = f"{url}/ did not answer Ok within {EMULATOR_START_TIMEOUT:.0f} s"
    raise _start_failed(name, process, log_path, why)


# `export_firestore` names its export so; the emulator's `--import-data` takes this file.
EXPORT_NAME = "firestore"
EXPORT_METADATA = f"{EXPORT_NAME}.overall_export_metadata"


def export_firestore(emulator_url: str, project: str, directory: Path) -> None:
    """Write every document of `project` into `directory` (replaced whole only once the export is
    complete), through the emulator's own export endpoint, for `start_firestore_emulator(import_from=)`.

    The emulator's `--export-on-exit` was tried: with SIGTERM it logged "Failed during export" and
    wrote nothing (528.0.0), so the export is asked for before the emulator is stopped.
    """
    fresh, old = directory.with_name(directory.name + ".new"), directory.with_name(directory.name + ".old")
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    fresh.mkdir(parents=True)  # the emulator wants an existing folder
    database = f"projects/{project}/databases/(default)"
    body = {"database": database, "export_directory": str(fresh), "export_name": EXPORT_NAME}
    _emulator_call("exporting", f"{emulator_url.rstrip('/')}/emulator/v1/projects/{project}:export", body)
    if directory.exists():
        directory.rename(old)
    (fresh / EXPORT_NAME).rename(directory)
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def wipe_firestore(emulator_url: str, project: str) -> None:
    """Delete every document of `project`'s default database in the emulator."""
    url = f"{emulator_url.rstrip('/')}/emulator/v1/projects/{project}/databases/(default)/documents"
    _emulator_call("wiping", url)


def _emulator_call(doing: str, url: str, body: dict | None = None) -> None:
    """POST `body` to (or, without one, DELETE) an emulator endpoint; an error answer raises."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method="POST" if data else "DELETE", headers=headers)
    try:
        # 60 s: a just-started emulator's JVM, on a machine running the suite's workers, is slow.
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
    except urllib.error.HTTPError as err:
        detail = err.read()[:200]
        raise RuntimeError(f"{doing} Firestore at {url} failed: HTTP {err.code} {detail!r}") from None
