"""A warm Airflow for `airflow dags test`: imports Airflow once, then forks a child for each run.

A fresh `airflow dags test` spends seconds importing Airflow, its CLI, the providers and Google's
and Slack's clients before it reads the DAG. This process, started by `tests.airflow_cli` with an
Airflow home's environment, imports those once and then, for each request, forks a child that does
what the `airflow` script (or `tests/support/run_dag_at.py`) does in a new process:

- the run's whole environment replaces `os.environ`; its stdout and stderr go to the files named in
  the request (stdin is /dev/null), the working directory and `sys.argv` are the request's;
- the SQLAlchemy engine made while importing Airflow is disposed and made again (`airflow.settings`),
  so no database connection is shared with the server or another run;
- the in-process Execution API every task of `DAG.test()` talks to has been built (and its routes
  generated) before the fork, as each process builds it at its first task (`_build_execution_api`);
- `airflow.__main__.main()` (or the script, as `__main__`) runs, and its exit code is the child's,
  as Python sets it: `SystemExit`'s code, 1 and the traceback on stderr for an uncaught exception;
  non-daemon threads are joined and `atexit` handlers run, as at interpreter exit.

The server reports the child's pid, then its exit status from `waitpid` (negative: killed by a
signal, as `subprocess` reports it). Children are independent: two runs can go on at once.

Not imported before the fork, so each run imports them itself: the project's package
`batch_cleanup` and the DAG file (they read `[batch_cleanup]` settings at import, which tests vary
per run), anything that reads a setting a run may change (`tests.airflow_cli.FORKABLE_ENV` says
which settings a forked run may change; every other run gets a fresh process), and
`airflow_local_settings` from a run's own PYTHONPATH (such a run gets a fresh process too).

`python fork_server.py ADDRESS READY_FD`: writes "ready" to file descriptor READY_FD once it
listens. Protocol, over the abstract Unix socket ADDRESS, one connection per run: the
client sends one JSON line {argv, env, cwd, stdout, stderr, airflow_main}; the server answers
{"pid": n}, then {"returncode": n, "cpu_seconds": s} once the child has exited.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import time

# What every `airflow dags test` imports and none of the settings a forked run may change is read
# by at import time (measured: a run imports ~2,800 modules; these bring in all but the project's).
PRELOAD = (
    "airflow", "airflow.__main__", "airflow.cli.cli_parser", "airflow.cli.commands.dag_command",
    "airflow.dag_processing.dagbag", "airflow.dag_processing.bundles.manager", "airflow.models.dag",
    "airflow.models.dagrun", "airflow.models.taskinstance", "airflow.models.serialized_dag",
    "airflow.models.xcom", "airflow.serialization.serialized_objects", "airflow.sdk", "airflow.sdk.serde",
    "airflow.sdk.api.client", "airflow.sdk.execution_time.supervisor",
    "airflow.sdk.execution_time.task_runner", "airflow.sdk.definitions.deadline",
    "airflow.api_fastapi.execution_api.app", "airflow.api_fastapi.common.dagbag",
    "airflow.api_fastapi.execution_api.routes.connections",
    "airflow.api_fastapi.execution_api.routes.variables", "airflow.api_fastapi.execution_api.routes.xcoms",
    "airflow.api_fastapi.execution_api.security", "airflow.api_fastapi.execution_api.routes",
    "airflow.api_fastapi.execution_api.versions", "airflow.api_fastapi.common.exceptions", "a2wsgi",
    "anyio._backends._asyncio", "airflow.dag_processing.bundles.local", "airflow.dag_processing.collection",
    "airflow.models.renderedtifields", "airflow.models.dagwarning", "airflow.models.db_callback_request",
    "airflow.models.dag_favorite", "airflow.timetables.trigger", "airflow.utils.db",
    "airflow.sdk.bases.sensor", "airflow.sdk.definitions.decorators", "airflow.sdk.execution_time.cache",
    "airflow.sdk.execution_time.timeout", "airflow.sdk.observability.stats",
    "airflow.providers.standard.decorators.branch_python", "airflow.providers.standard.operators.empty",
    "airflow.providers.standard.operators.trigger_dagrun",
    "airflow.providers.standard.sensors.external_task", "airflow.providers.common.compat.openlineage.check",
    "alembic.command", "alembic.autogenerate", "alembic.runtime.migration", "mako.template",
    "mako.ext.pygmentplugin", "pygments.formatters.html", "pygments.lexers.python", "pygments.lexers.web",
    "pygments.styles.default", "jinja2.ext", "grpc._interceptor", "tomllib", "timeit",
    "airflow.providers.standard.operators.python", "airflow.providers.standard.decorators.python",
    "airflow.providers.http.hooks.http", "airflow.providers.slack.hooks.slack_webhook",
    "airflow.providers.google.common.hooks.base_google", "google.cloud.firestore",
    "google.cloud.firestore_v1.base_query", "google.api_core.exceptions", "slack_sdk",
    "slack_sdk.http_retry.builtin_handlers", "slack_sdk.http_retry.builtin_async_handlers", "requests",
)  # fmt: skip
# Never before the fork (see the module's docstring).
NOT_PRELOADED = ("batch_cleanup", "airflow_local_settings")


def _preload() -> None:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as missing:  # another Airflow version: that run imports less
            print(f"fork server: not preloaded: {name} ({missing})", file=sys.stderr)
    _build_execution_api()
    early = [m for m in sys.modules if m.split(".")[0] in NOT_PRELOADED]
    assert not early, f"imported before the fork, which must not be: {early}"
    from airflow import settings

    # Whatever connection importing made is closed: children make their own engine.
    settings.dispose_orm(do_log=False)
    # Everything made so far is kept for the server's lifetime: out of the garbage collector's
    # sight, so that a child's first full collection does not walk (and copy, page by page) the
    # whole inherited heap: measured 0.6 s of each run's CPU. (gc.freeze() is meant for this.)
    gc.collect()
    gc.freeze()
    # A fork copies only the calling thread: a thread started by an import would be missing (and
    # could hold a lock) in every child. There is none; if an upgrade starts one, fail here.
    threads = os.listdir("/proc/self/task")
    assert len(threads) == 1, f"the fork server must have one thread before forking, has {len(threads)}"


def _build_execution_api() -> None:
    """The in-process Execution API that `DAG.test()` runs every task through, built once.

    A process builds it at its first task (`in_process_api_server()`, cached per process), and the
    app generates its versioned routes (Cadwyn) at its first request: seconds of CPU, the same in
    every run; it reads no setting a forked run may change. Built here without its transport, whose
    event-loop thread each child starts for itself at its first task, as a fresh process does.
    """
    try:
        from airflow.sdk.execution_time import supervisor
    except ImportError as missing:
        print(f"fork server: no in-process Execution API to build ({missing})", file=sys.stderr)
        return
    if not hasattr(supervisor.in_process_api_server, "cache_info"):
        # Airflow 3.1 and 3.2 build a new one for every task (3.3 caches it per process): 3 s of
        # CPU per task of every run. Cached as 3.3 does; what a task sees of it is the same.
        supervisor.in_process_api_server = functools.cache(supervisor.in_process_api_server)
    app = supervisor.in_process_api_server().app
    if hasattr(app, "_cadwyn_initialize") and not getattr(app, "_cadwyn_initialized", True):
        app._cadwyn_initialize()


def _exit_code(exit: SystemExit) -> int:
    """The process's exit status for `raise SystemExit(code)`, as the interpreter sets it."""
    code = exit.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _child(request: dict) -> None:
    """Runs in the forked child; never returns."""
    code = 1
    try:
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL if signum != signal.SIGINT else signal.default_int_handler)
        signal.set_wakeup_fd(-1)
        stdin = os.open(os.devnull, os.O_RDONLY)
        stdout = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        stderr = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        argv = request["argv"]
        sys.argv = list(argv)
        # `python SCRIPT` puts the script's folder first on sys.path, as for this server's own.
        sys.path[0] = os.path.dirname(os.path.realpath(argv[0]))

        from airflow import settings

        settings.reconfigure_orm()
        try:
            if request["airflow_main"]:
                from airflow.__main__ import main

                sys.exit(main())  # the `airflow` script's last line
            else:
                import runpy

                runpy.run_path(argv[0], run_name="__main__")
                code = 0
        except SystemExit as exit:
            code = _exit_code(exit)
        except BaseException:
            sys.excepthook(*sys.exc_info())
            code = 1
        # What interpreter exit does before the process ends.
        import threading

        threading._shutdown()  # type: ignore[attr-defined]
        import atexit

        atexit._run_exitfuncs()
    except BaseException:  # the child's own set-up failed: say so on its stderr
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed stream: nothing left to write
                stream.flush()
        os._exit(code)


def _send(conn: socket.socket, message: dict) -> None:
    with contextlib.suppress(OSError):  # the client went away; the run still ends on its own
        conn.sendall(json.dumps(message).encode() + b"\n")


def _read_request(conn: socket.socket) -> dict:
    conn.settimeout(30)
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the client closed before sending a whole request")
        data += chunk
    conn.settimeout(None)
    return json.loads(data)


def serve(address: str, ready_fd: int) -> None:
    _preload()
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + address)
    listener.listen(64)
    # SIGCHLD wakes the select below at once when a run ends.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    running: dict[int, socket.socket] = {}
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
    try:
        while os.getppid() == parent:
            try:
                readable, _, _ = select.select([listener, wake_read], [], [], 1.0)
            except InterruptedError:
                readable = []
            if wake_read in readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(wake_read, 512):
                        pass
            if listener in readable:
                conn, _ = listener.accept()
                try:
                    request = _read_request(conn)
                except (OSError, ValueError) as error:
                    _send(conn, {"error": f"bad request: {error}"})
                    conn.close()
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    conn.close()
                    for other in running.values():
                        other.close()
                    os.close(wake_read)
                    os.close(wake_write)
                    _child(request)
                running[pid] = conn
                _send(conn, {"pid": pid})
            while running:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
                if pid == 0:
                    break
                conn = running.pop(pid, None)
                if conn is not None:
                    cpu = usage.ru_utime + usage.ru_stime
                    _send(conn, {"returncode": os.waitstatus_to_exitcode(status), "cpu_seconds": cpu})
                    conn.close()
    finally:
        # The tests are gone or stopped this server: no run outlives them.
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while running and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            running.pop(pid, None) if pid else time.sleep(0.05)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
