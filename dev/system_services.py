"""PostgreSQL and Redis for the system tests: throw-away instances that the test run starts and stops.

PostgreSQL is a private cluster (`initdb` into a temporary folder, `pg_ctl start` on a free port,
its socket in that folder), never the machine's own cluster on 5432. Redis is a `redis-server`
child process on a free port that keeps nothing on disk. What is missing is installed from
Debian's packages with `apt-get`; when that cannot work, the error says which command to run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dev.services import PrerequisiteMissing, free_port, log_tail, spawn, stop_process

# Measured on 2 CPUs: initdb about 1.5 s, the server ready about 0.3 s after `pg_ctl start`.
POSTGRES_START_TIMEOUT = 60
REDIS_START_TIMEOUT = 15.0
APT_TIMEOUT = 600
POSTGRES_VERSION = "15"  # the version on this project's machines; any other found is used too
POSTGRES_PACKAGE = f"postgresql-{POSTGRES_VERSION}"
REDIS_PACKAGE = "redis-server"
# initdb and the server refuse to run as root; Debian's postgresql-common creates this user.
POSTGRES_OS_USER = "postgres"


def apt_install(package: str) -> None:
    """`apt-get install -y PACKAGE`, after `apt-get update` if the first try fails; raises saying why."""
    # The lock timeout: wait while another install (a colleague's, say) holds dpkg, rather than fail.
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", package]
    shown = " ".join(command)
    if shutil.which("apt-get") is None:
        raise PrerequisiteMissing(f"{package} is missing and there is no apt-get here; install {package}")
    if os.geteuid() != 0:
        raise PrerequisiteMissing(f"{package} is missing; install it as root: `sudo {shown}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT)
    if done.returncode != 0:  # most often stale package lists
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=APT_TIMEOUT)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise PrerequisiteMissing(
            f"`{shown}` failed with exit code {done.returncode} (after `apt-get update` too):\n"
            + "\n".join(output)
        )


def _as_postgres_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", POSTGRES_OS_USER, "--", *command]


def postgres_bin_dir() -> Path:
    """The server's bin folder: `POSTGRES_BIN_DIR`, else Debian's for version 15, else the newest there."""
    if configured := os.environ.get("POSTGRES_BIN_DIR"):
        return Path(configured)

    def installed() -> list[Path]:
        found = [path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")]

        def rank(bin_dir: Path) -> tuple[bool, int]:  # POSTGRES_VERSION first, then the newest
            name = bin_dir.parent.name
            return name != POSTGRES_VERSION, -int(name) if name.isdigit() else 0

        return sorted(found, key=rank)

    if not installed():
        apt_install(POSTGRES_PACKAGE)
    if not installed():
        raise PrerequisiteMissing(f"{POSTGRES_PACKAGE} is installed, yet /usr/lib/postgresql has no initdb")
    return installed()[0]


@dataclass
class Postgres:
    """A private PostgreSQL cluster: data, socket and server log in `folder`, listening on 127.0.0.1."""

    bin_dir: Path
    folder: Path
    port: int
    database: str
    user: str

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    @property
    def sqlalchemy_url(self) -> str:
        # Trust authentication on loopback: a throw-away cluster that lives as long as the test run.
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def pg_ctl(self, *args: str, timeout: float = POSTGRES_START_TIMEOUT) -> subprocess.CompletedProcess:
        command = _as_postgres_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args])
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    def stop(self, keep_log_in: Path | None = None) -> None:
        """Stop the server (fast: open sessions are cut) and delete the cluster; its log is kept if asked."""
        if self.data_dir.exists():
            self.pg_ctl("stop", "-m", "fast", "-w")
        if keep_log_in is not None and self.log_path.exists():
            keep_log_in.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.log_path, keep_log_in / "postgres.log")
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(*, database: str = "airflow", user: str = "airflow") -> Postgres:
    """initdb into a new temporary folder, start the server on a free port and create `database`."""
    bin_dir = postgres_bin_dir()
    # Under /tmp, not the repo: the postgres user must be able to reach it.
    folder = Path(tempfile.mkdtemp(prefix="system-test-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(folder, POSTGRES_OS_USER, POSTGRES_OS_USER)
    server = Postgres(bin_dir, folder, free_port(), database, user)
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(server.data_dir), "-U", user, "--auth=trust"]
        initdb = _as_postgres_user([*initdb, "--encoding=UTF8", "--locale=C", "--no-sync"])
        done = subprocess.run(initdb, capture_output=True, text=True, timeout=POSTGRES_START_TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({' '.join(initdb)}):\n{done.stdout}{done.stderr}")
        options = (
            f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1"
            # Durability is worthless for a database deleted after the run; speed is not.
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        done = server.pg_ctl("start", "-w", "-l", str(server.log_path), "-o", options)
        if done.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed:\n{done.stdout}{done.stderr}\n"
                f"Last lines of {server.log_path}:\n{log_tail(server.log_path)}"
            )
        createdb = [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", user]
        done = subprocess.run(
            [*createdb, database], capture_output=True, text=True, timeout=POSTGRES_START_TIMEOUT
        )
        if done.returncode != 0:
            raise RuntimeError(f"createdb failed:\n{done.stdout}{done.stderr}")
    except BaseException:
        server.stop()
        raise
    return server


def redis_server_binary() -> str:
    """`redis-server` on PATH, installed from Debian's package first if it is not there."""
    if found := shutil.which("redis-server"):
        return found
    apt_install(REDIS_PACKAGE)
    if found := shutil.which("redis-server"):
        return found
    raise PrerequisiteMissing(f"{REDIS_PACKAGE} was installed, yet `redis-server` is not on PATH")


@dataclass
class Redis:
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.process)


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(log_dir: Path) -> Redis:
    """`redis-server` on a free loopback port, without persistence; ready once it answers PING."""
    binary = redis_server_binary()
    port = free_port()
    command = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", tempfile.gettempdir(),  # nothing is written there with persistence off
    ]  # fmt: skip
    process, log_path = spawn("redis", command, log_dir)
    server = Redis(port, process, log_path)
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if _redis_answers(port):
            return server
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        server.stop()
    raise RuntimeError(
        f"redis-server did not answer PING on port {port} within {REDIS_START_TIMEOUT:.0f} s "
        f"(exit code {process.poll()}). Last lines of {log_path}:\n{log_tail(log_path)}"
    )
