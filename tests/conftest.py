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
from hypothesis import settings

from dev import services
from dev.airflow_env import LOCAL_PROJECT

__all__ = ["OUTPUT", "REPO"]

# Tests use a recognisable fake key, so that a leak is easy to find in any log.
API_KEY = "test-api-key-4f1c9e27-DO-NOT-LOG"
SLACK_WEBHOOK_PATH = "/services/T0TEST/B0TEST/webhook-secret-7d3a91"
SLACK_WEBHOOK_SECRET = SLACK_WEBHOOK_PATH.rsplit("/", 1)[-1]
SERVICE_LOGS = OUTPUT / "services"
# No time limit per example: speed is measured in `make bench`, and a limit fails on a loaded machine.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


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


@pytest.fixture(scope="session")
def monitoring_api():
    service = services.start_monitoring_api(SERVICE_LOGS)
    yield service
    service.stop()


@pytest.fixture
def firestore(firestore_emulator, monkeypatch):
    """An empty emulator database, and this process pointed at it."""
    services.wipe_firestore(firestore_emulator.url, LOCAL_PROJECT)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", LOCAL_PROJECT)
    return firestore_emulator


def stand_in_env(home: Path, coordinator, slack_sink, firestore_emulator) -> dict[str, str]:
    """Airflow's environment for `home`, its connections pointing at the stand-ins; retries wait 1 s."""
    from dev.airflow_env import airflow_env

    return airflow_env(
        home,
        coordinator_url=coordinator.url,
        api_key=API_KEY,
        slack_webhook_url=slack_sink.url + SLACK_WEBHOOK_PATH,
        firestore_host=firestore_emulator.host,
        retry_delay_seconds=1,
    )


def migrated_airflow(home: Path, log_dir: Path, coordinator, slack_sink, firestore_emulator):
    """A migrated Airflow home whose connections point at the stand-ins; retries wait 1 s.

    Its warm Airflow (the fork server `dags_test` forks runs from) is started here and ready when
    this returns, so that two homes' runs started together (test_two_deployments_...) start together.
    """
    from tests.airflow_cli import AirflowCLI

    env = stand_in_env(home, coordinator, slack_sink, firestore_emulator)
    cli = AirflowCLI(env, log_dir, secrets=(API_KEY, SLACK_WEBHOOK_SECRET))
    cli.migrate()
    cli.warm_up()
    return cli


@pytest.fixture(scope="session")
def airflow(coordinator, slack_sink, firestore_emulator):
    """The Airflow the end-to-end scenarios run the DAG on."""
    cli = migrated_airflow(_HOME, OUTPUT / "dag-runs", coordinator, slack_sink, firestore_emulator)
    yield cli
    cli.close()


# pytest-xdist: what must share a worker.
# Each worker that runs a test using the session's Airflow (`airflow`) starts an Airflow of its own
# (a migrated home and a warm fork server, ~30 CPU-s). No test reads what another's runs left, so
# those tests are dealt out in turn, in the collected order, to this many groups, each one worker's
# session Airflow: few Airflows to start, and each group gets a share of every module's long runs.
# (A module with module-scoped fixtures stays whole instead: tests/ui/test_ui_browser.py.)
AIRFLOW_SESSIONS = 3
# Started first, as they take longest (each a prefix of a group's name): the session Airflows'
# groups (~350-450 s each), then the module-scoped deployments (~150-260 s each).
SLOW_FIRST = (
    "airflow-session-",
    "tests/system/test_scheduler.py",
    "tests/system/test_run_timeout.py",
    "tests/system/test_deadline_and_overlap.py",
    "tests/integration/test_run_local.py",
    "tests/ui/test_ui_browser.py",
)


def _module_fixtures(item: pytest.Item) -> dict[str, object]:
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return {name: defs[-1] for name, defs in definitions.items() if defs[-1].scope == "module"}


def _module_group(item: pytest.Item) -> str:
    """The test's module, with its module-scoped fixtures. A module-scoped fixture with params is
    made once per param, and the tests of one param see nothing of another's: each param its own
    group (tests/system/test_scheduler.py's two configurations)."""
    module = item.nodeid.split("::", 1)[0]
    params = getattr(getattr(item, "callspec", None), "params", {})
    per_param = [f"{name}={params[name]}" for name in sorted(params) if name in _module_fixtures(item)]
    return f"{module}[{','.join(per_param)}]" if per_param else module


def _xdist_groups(items: list[pytest.Item]) -> dict[str, str]:
    """Each test's group: its module's (with a module-scoped fixture, always: a deployment is made
    once); a test that uses the session's Airflow and no module-scoped fixture is dealt in turn to
    one of the session Airflows' groups."""
    groups, dealt = {}, 0
    for item in items:
        groups[item.nodeid] = _module_group(item)
        if "airflow" in item.fixturenames and not _module_fixtures(item):
            groups[item.nodeid] = f"{SLOW_FIRST[0]}{dealt % AIRFLOW_SESSIONS}"
            dealt += 1
    return groups


def _groups_file(controller_pid: int) -> Path:
    return REPO / "test-output" / f".xdist-groups-{controller_pid}.json"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker: the slowest groups first, the collected order within each group; and each
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
