"""The history app in this process, mounted as Airflow mounts it, reading the Firestore emulator
and this test session's Airflow database (the last run, and the runs the backtest replays)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.ui import history_data

# A frozen clock: H = 12:00 on a Tuesday, and the page is looked at half an hour later.
NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


@pytest.fixture
def db(firestore, airflow, monkeypatch):
    """An empty emulator and a Firestore client on it, for seeding; the session's migrated Airflow."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore as gcf

    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", history_data.connection_json())
    return gcf.Client(project=history_data.PROJECT, credentials=AnonymousCredentials())


class FakeUser:
    def get_id(self) -> str:
        return "tester"

    def get_name(self) -> str:
        return "tester"


@pytest.fixture
def make_client(db):
    """A TestClient of the app at /batch-cleanup; signed in as a reader who may not edit the DAG unless
    `signed_in=False`, or as `user` (a `SimpleAuthManagerUser`: its role is what Airflow's auth
    manager checks)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from batch_cleanup.ui import app as ui
    from batch_cleanup.ui.auth import may_edit, require_dag_reader
    from batch_cleanup.ui.queries import HistoryStore

    def make(*, last_run=None, now=NOW, signed_in=True, max_events=5000, max_runs=10_000, overrides=None,
             user=None):  # fmt: skip
        app = ui.create_app()
        app.dependency_overrides[ui.get_now] = lambda: now
        app.dependency_overrides[ui.get_last_run] = lambda: lambda dag_id: last_run
        app.dependency_overrides[ui.get_store] = lambda: HistoryStore(
            dag_id=history_data.DAG_ID, max_events=max_events, max_runs=max_runs
        )
        if user is not None or not signed_in:
            # The real checks, and the auth manager Airflow would have made (Simple, by default).
            from airflow.api_fastapi.app import create_auth_manager
            from airflow.api_fastapi.core_api.security import get_user

            create_auth_manager()
            if user is not None:
                app.dependency_overrides[get_user] = lambda: user
        else:
            app.dependency_overrides[require_dag_reader] = FakeUser
            app.dependency_overrides[may_edit] = lambda: False
        app.dependency_overrides.update(overrides or {})
        airflow = FastAPI()  # stands for Airflow's api-server, which mounts plugin apps the same way
        airflow.mount("/batch-cleanup", app)
        return TestClient(airflow, follow_redirects=False)

    return make
