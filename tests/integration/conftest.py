"""Google connections as Airflow reads them from the environment: anonymous, as the emulators want."""

from __future__ import annotations

import json

import pytest

from dev.airflow_env import LOCAL_PROJECT


@pytest.fixture
def gcp_connection(monkeypatch):
    def connect(conn_id: str = "google_cloud_default", **extra) -> None:
        connection = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, **extra}}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))

    return connect


@pytest.fixture
def firestore_hook(firestore, gcp_connection):
    """`FirestoreHook` on the session's emulator, wiped for this test."""
    from batch_cleanup.hooks.firestore import FirestoreHook

    gcp_connection(project=LOCAL_PROJECT)
    return FirestoreHook(gcp_conn_id="google_cloud_default")
