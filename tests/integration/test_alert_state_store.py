"""The alert state's transactions against the Firestore emulator: one poster per decision,
no lost or doubled state, and the incident timeline."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from batch_cleanup.hooks.firestore import INCIDENT_COLLECTION, FirestoreHook

DAG = "stalled_batch_cleanup"
OPEN = {"open": True, "severity": "WARNING", "notifications": 1}


@pytest.fixture
def store(firestore, monkeypatch):
    connection = {"conn_type": "google_cloud_platform", "extra": {"project": "demo-batch-cleanup"}}
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(connection))
    return FirestoreHook()


def test_no_state_reads_as_empty_version_zero(store):
    assert store.read_state(DAG) == ({}, 0)


def test_only_one_of_two_runs_deciding_on_the_same_version_gets_the_lease(store):
    assert store.claim_lease(DAG, run_id="run-a", version=0, kind="alert") is None
    refused = store.claim_lease(DAG, run_id="run-b", version=0, kind="alert")
    assert refused == "run run-a is delivering a alert message"
    assert store.claim_lease(DAG, run_id="run-a", version=0, kind="alert") is None, "a retry keeps its lease"


def test_concurrent_claims_in_threads_grant_exactly_one(store):
    results = {}

    def claim(run_id):
        results[run_id] = FirestoreHook().claim_lease(DAG, run_id=run_id, version=0, kind="alert")

    threads = [threading.Thread(target=claim, args=(f"run-{index}",)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(outcome is None for outcome in results.values()) == 1, results


def test_the_lease_holder_saves_and_bumps_the_version(store):
    store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    assert store.save_state(DAG, OPEN, run_id="run-a", version=0) is None
    stored, version = store.read_state(DAG)
    assert version == 1
    assert stored["open"] is True and stored["lease"] is None and stored["updated_by"] == "run-a"


def test_a_run_that_decided_on_an_old_version_neither_claims_nor_saves(store):
    store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    store.save_state(DAG, OPEN, run_id="run-a", version=0)
    assert "state changed" in store.claim_lease(DAG, run_id="run-b", version=0, kind="alert")
    assert "state changed" in store.save_state(DAG, {"open": False}, run_id="run-b", version=0)
    assert store.read_state(DAG)[0]["open"] is True


def test_a_quiet_save_waits_for_a_run_holding_the_lease(store):
    store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    assert "delivering" in store.save_state(DAG, {"open": False, "last_count": 2}, run_id="run-b", version=0)


def test_released_lease_lets_the_next_run_post(store):
    store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    store.release_lease(DAG, run_id="run-a")
    assert store.claim_lease(DAG, run_id="run-b", version=0, kind="alert") is None


def test_an_expired_lease_blocks_no_one(store):
    store.client.collection("batch_cleanup_alert_state").document(DAG).set(
        {
            "version": 0,
            "lease": {
                "run_id": "dead",
                "kind": "alert",
                "expires_at": datetime.now(UTC) - timedelta(seconds=1),
            },
        }
    )
    assert store.claim_lease(DAG, run_id="run-b", version=0, kind="alert") is None


def test_saving_writes_the_incident_timeline_entry(store):
    opened = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    incident = {"id": "stalled_batch_cleanup-20261128T150000Z", "opened_at": opened, "severity": "WARNING"}
    store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    store.save_state(DAG, OPEN, run_id="run-a", version=0, incident=dict(incident))
    closing = {"id": incident["id"], "closed_at": opened + timedelta(hours=1), "severity": "WARNING"}
    store.save_state(DAG, {"open": False}, run_id="run-b", version=1, incident=closing)
    [entry] = [doc.to_dict() for doc in store.client.collection(INCIDENT_COLLECTION).stream()]
    assert entry["opened_at"] == opened and entry["closed_at"] == opened + timedelta(hours=1)
