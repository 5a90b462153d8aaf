"""Airflow's environment is set first (tests.session_home), before any test module imports Airflow."""

from __future__ import annotations

# isort: off
from tests.session_home import HOME as _HOME, OUTPUT, REPO  # first: Airflow's environment
# isort: on

import json
import os
import time
from pathlib import Path

import pytest

from dev import services
from dev.airflow_env import LOCAL_PROJECT

__all__ = ["OUTPUT", "REPO"]

# --- the local services, shared by the integration and end-to-end tests -----------------------

# Tests use a recognisable fake key, so that a leak is easy to find in any log.
API_KEY = "test-api-key-4f1c9e27-DO-NOT-LOG"
SLACK_WEBHOOK_PATH = "/services/T0TEST/B0TEST/webhook-secret-7d3a91"
SERVICE_LOGS = OUTPUT / "services"


@pytest.fixture(scope="session")
def firestore_emulator():
    service = services.start_firestore_emulator(SERVICE_LOGS)
    _first_request(service)
    yield service
    service.stop()


def _first_request(emulator: services.Service, patience: float = services.EMULATOR_START_TIMEOUT) -> None:
    """A wipe, as a test's first request would be, until the emulator answers it: a fresh JVM
    answers its first requests slowly, and while several xdist workers start at once that can
    take longer than the 10 s a test's wipe waits."""
    deadline = time.monotonic() + patience
    while True:
        try:
            services.wipe_firestore(emulator.url, LOCAL_PROJECT)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="session")
def coordinator():
    service = services.start_coordinator(SERVICE_LOGS, api_key=API_KEY)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def slack_sink():
    service = services.start_slack_sink(SERVICE_LOGS)
    yield service
    service.stop()


@pytest.fixture
def firestore(firestore_emulator, monkeypatch):
    """An empty emulator database, and this process pointed at it."""
    services.wipe_firestore(firestore_emulator.url, LOCAL_PROJECT)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", LOCAL_PROJECT)
    return firestore_emulator


def migrated_airflow(home: Path, log_dir: Path, coordinator, slack_sink, firestore_emulator):
    """A migrated Airflow home whose connections point at the stand-ins; retries wait 1 s.

    Its warm Airflow (the fork server `dags_test` forks runs from) is started here and ready when
    this returns, so that two homes' runs started together (test_two_deployments_...) start together.
    """
    from dev.airflow_env import airflow_env
    from tests.airflow_cli import AirflowCLI

    env = airflow_env(
        home,
        coordinator_url=coordinator.url,
        api_key=API_KEY,
        slack_webhook_url=slack_sink.url + SLACK_WEBHOOK_PATH,
        firestore_host=firestore_emulator.host,
        retry_delay_seconds=1,
    )
    cli = AirflowCLI(env, log_dir)
    cli.migrate()
    cli.warm_up()
    return cli


@pytest.fixture(scope="session")
def airflow(coordinator, slack_sink, firestore_emulator):
    """The Airflow the end-to-end scenarios run the DAG on."""
    cli = migrated_airflow(_HOME, OUTPUT / "dag-runs", coordinator, slack_sink, firestore_emulator)
    yield cli
    cli.close()


# --- pytest-xdist: what must share a worker ---------------------------------------------------

# The tests that use the session's Airflow (`airflow`) share it in the order of a serial run:
# some read what the session's earlier runs left. These modules read all of it (test_secrets_e2e
# scans every run's output and log and the whole metadata database), so every test that comes
# before their end in a serial run (test_end_to_end's scan of every log among them) shares one
# worker's Airflow, in serial order; the tests that come after them share another worker's.
SCANS_THE_SESSION = ("tests/dags/test_secrets_e2e.py",)
# Modules that read nothing earlier runs left, and whose runs handle no secret the scan would miss
# (no API key or webhook URL in their error paths): they join the second worker's Airflow wherever
# they sort, which halves the first one's serial queue (the suite's longest).
AFTER_THE_SCANS = (
    "tests/dags/test_firestore_outage_e2e.py",
    "tests/dags/test_metrics_e2e.py",
    "tests/dags/test_monitoring_e2e.py",
    "tests/dags/test_cutover_e2e.py",
)
# The injected faults read nothing earlier runs left either, and take minutes (outages waited out):
# a third worker's Airflow runs them beside the other two.
OWN_SESSION = ("tests/faults/",)
AIRFLOW_SESSION_GROUP, AIRFLOW_SESSION_AFTER_SCANS = "airflow-session", "airflow-session-after-scans"
AIRFLOW_SESSION_FAULTS = "airflow-session-faults"
# Started first, as they take longest (each a prefix of a group's name).
SLOW_FIRST = (
    AIRFLOW_SESSION_GROUP,
    AIRFLOW_SESSION_AFTER_SCANS,
    AIRFLOW_SESSION_FAULTS,
    "tests/system/test_scheduler.py",
    "tests/system/test_run_timeout.py",
    "tests/system/test_deadline_and_overlap.py",
    "tests/integration/test_run_local.py",
    "tests/ui/test_ui_browser.py",
)


def _module_group(item: pytest.Item) -> str:
    """The test's module, with its module-scoped fixtures. A module-scoped fixture with params is
    made once per param, and the tests of one param see nothing of another's: each param its own
    group (tests/system/test_scheduler.py's two configurations)."""
    module = item.nodeid.split("::", 1)[0]
    callspec = getattr(item, "callspec", None)
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    if callspec is not None:
        per_param = [
            f"{name}={callspec.params[name]}"
            for name in sorted(callspec.params)
            if name in definitions and definitions[name][-1].scope == "module"
        ]
        if per_param:
            return f"{module}[{','.join(per_param)}]"
    return module


def _xdist_groups(items: list[pytest.Item]) -> dict[str, str]:
    """Each test's group, by the rules above; `items` in the serial run's order."""
    scans_end = max(
        (index for index, item in enumerate(items) if item.nodeid.split("::", 1)[0] in SCANS_THE_SESSION),
        default=len(items),
    )
    groups = {}
    for index, item in enumerate(items):
        if "airflow" not in item.fixturenames:
            groups[item.nodeid] = _module_group(item)
        else:
            module = item.nodeid.split("::", 1)[0]
            first = index <= scans_end and module not in AFTER_THE_SCANS
            if module.startswith(OWN_SESSION):
                groups[item.nodeid] = AIRFLOW_SESSION_FAULTS
            else:
                groups[item.nodeid] = AIRFLOW_SESSION_GROUP if first else AIRFLOW_SESSION_AFTER_SCANS
    return groups


def _groups_file(controller_pid: int) -> Path:
    return REPO / "test-output" / f".xdist-groups-{controller_pid}.json"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker: the slowest groups first, the serial order within each group; and each
    test's group written for the controller's scheduler (`pytest_xdist_make_scheduler`), which sees
    test ids only. A run without xdist is left as it is."""
    if not hasattr(config, "workerinput"):
        return
    groups = _xdist_groups(items)

    def rank(item: pytest.Item) -> int:
        group = groups[item.nodeid]
        return next((i for i, prefix in enumerate(SLOW_FIRST) if group.startswith(prefix)), len(SLOW_FIRST))

    items.sort(key=rank)  # stable
    # Every worker collects the same tests: each writes the same file, whole (rename is atomic).
    target = _groups_file(os.getppid())  # xdist starts its workers as the controller's children
    partial = target.with_name(f"{target.name}.{os.getpid()}")
    partial.write_text(json.dumps(groups))
    partial.replace(target)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Each group (`_xdist_groups`) to one worker, whole and in order; groups in the order collected.

    xdist's own `--dist loadgroup` cannot be used: it renames test ids, which pytest 9 ignores.
    """
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:
                path = _groups_file(os.getpid())
                self.groups = json.loads(path.read_text())
                path.unlink()
            return self.groups.get(nodeid) or nodeid.split("::", 1)[0]

    config.option.loadscopereorder = False  # keep the collected order (slowest groups first)
    return GroupScheduling(config, log)
