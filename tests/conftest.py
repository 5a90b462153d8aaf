"""Airflow's environment is set first (tests.session_home), before any test module imports Airflow."""

from __future__ import annotations

# isort: off
from tests.session_home import HOME as _HOME, OUTPUT, REPO  # first: Airflow's environment
# isort: on

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
    yield service
    service.stop()


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
    """A migrated Airflow home whose connections point at the stand-ins; retries wait 1 s."""
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
    return cli


@pytest.fixture(scope="session")
def airflow(coordinator, slack_sink, firestore_emulator):
    """The Airflow the end-to-end scenarios run the DAG on."""
    return migrated_airflow(_HOME, OUTPUT / "dag-runs", coordinator, slack_sink, firestore_emulator)
