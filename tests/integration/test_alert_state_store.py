"""The alert state's transactions against the Firestore emulator: one poster per decision,
no lost or doubled state, and the incident timeline."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from batch_cleanup.delivery import thread_posted
from batch_cleanup.hooks.firestore import INCIDENT_COLLECTION, FirestoreHook

DAG = "stalled_batch_cleanup"
OPEN = {"open": True, "severity": "WARNING", "notifications": 1}


@pytest.fixture
def store(firestore, monkeypatch):
    connection = {
        "conn_type": "google_cloud_platform",
        "extra": {"project": "demo-batch-cleanup", "is_anonymous": True},
    }
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
    assert store.save_state(DAG, OPEN, run_id="run-a", version=0, carry=thread_posted) is None
    stored, version = store.read_state(DAG)
    assert version == 1
    assert stored["open"] is True and stored["lease"] is None and stored["updated_by"] == "run-a"


def test_the_thread_of_the_holders_accepted_message_is_saved_with_the_open_incident(store):
    store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    where = {"channel": "C0TEST", "ts": "1764650000.000100"}
    store.record_post(DAG, run_id="run-a", kind="alert", where=where)

    assert store.read_state(DAG)[0]["posted"] == {"run_id": "run-a", "kind": "alert", **where}
    assert store.save_state(DAG, OPEN, run_id="run-a", version=0, carry=thread_posted) is None

    stored, _ = store.read_state(DAG)
    assert (stored["slack_channel"], stored["slack_ts"]) == ("C0TEST", "1764650000.000100")
    assert "posted" not in stored, "the marker goes once the state holds what it said"


def test_a_resolved_incident_keeps_no_thread_and_another_runs_post_is_not_taken(store):
    store.claim_lease(DAG, run_id="run-a", version=0, kind="resolved")
    store.record_post(DAG, run_id="run-a", kind="resolved", where={"channel": "C0TEST", "ts": "1.1"})
    store.save_state(DAG, {"open": False}, run_id="run-a", version=0, carry=thread_posted)
    assert "slack_ts" not in store.read_state(DAG)[0]

    store.record_post(DAG, run_id="run-other", kind="alert", where={"channel": "C0TEST", "ts": "2.2"})
    store.save_state(DAG, OPEN, run_id="run-b", version=1, carry=thread_posted)
    assert "slack_ts" not in store.read_state(DAG)[0], "only the lease holder's own post names the thread"


def test_a_run_that_decided_on_an_old_version_neither_claims_nor_saves(store):
    store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    store.save_state(DAG, OPEN, run_id="run-a", version=0, carry=thread_posted)
    assert "state changed" in store.claim_lease(DAG, run_id="run-b", version=0, kind="alert")
    assert "state changed" in store.save_state(
        DAG, {"open": False}, run_id="run-b", version=0, carry=thread_posted
    )
    assert store.read_state(DAG)[0]["open"] is True


def test_a_quiet_save_waits_for_a_run_holding_the_lease(store):
    store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    assert "delivering" in store.save_state(
        DAG, {"open": False, "last_count": 2}, run_id="run-b", version=0, carry=thread_posted
    )


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
    store.save_state(DAG, OPEN, run_id="run-a", version=0, carry=thread_posted, incident=dict(incident))
    closing = {"id": incident["id"], "closed_at": opened + timedelta(hours=1), "severity": "WARNING"}
    store.save_state(DAG, {"open": False}, run_id="run-b", version=1, carry=thread_posted, incident=closing)
    [entry] = [doc.to_dict() for doc in store.client.collection(INCIDENT_COLLECTION).stream()]
    assert entry["opened_at"] == opened and entry["closed_at"] == opened + timedelta(hours=1)


class _PausedState(Mapping):
    """A state whose first read inside the transaction body waits for the test: the point where the
    body has read the document (and holds its lock) and is building what it writes."""

    def __init__(self, state: dict, reached: threading.Event, resume: threading.Event) -> None:
        self.state, self.reached, self.resume, self.reads = state, reached, resume, 0

    def __getitem__(self, key):
        return self.state[key]

    def __iter__(self):
        return iter(self.state)

    def __len__(self):
        return len(self.state)

    def keys(self):
        self.reads += 1
        if self.reads == 1:
            self.reached.set()
            self.resume.wait(20)
        return self.state.keys()


def test_a_save_that_collides_with_another_writer_is_rerun_by_firestore_and_completes(store):
    """Two writers really collide on the emulator: the save's transaction is aborted and run again,
    and the second run of its body must do exactly what the first would have."""
    from google.cloud import firestore

    store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    ref = store.client.collection("batch_cleanup_alert_state").document(DAG)
    other_read, other_write = threading.Event(), threading.Event()
    save_read, save_resume = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def other_writer():  # e.g. an operator's edit: reads the state, then writes a field of its own
        client = FirestoreHook().client

        @firestore.transactional
        def touch(transaction):
            ref.get(transaction=transaction)
            other_read.set()
            other_write.wait(20)
            transaction.set(ref, {"note": "edited"}, merge=True)

        touch(client.transaction())
        outcome["other"] = "committed"

    state = _PausedState(OPEN, save_read, save_resume)
    incident = {"id": "stalled_batch_cleanup-20261128T150000Z", "severity": "WARNING"}

    def saver():
        try:
            outcome["save"] = FirestoreHook().save_state(
                DAG, state, run_id="run-a", version=0, carry=thread_posted, incident=incident
            )
        except Exception as err:  # the assertion below names it
            outcome["save"] = err

    writer = threading.Thread(target=other_writer)
    writer.start()
    assert other_read.wait(20)
    saving = threading.Thread(target=saver)
    saving.start()
    assert save_read.wait(20)
    # The save asks to commit first and waits on the other writer's lock; when the other commits
    # too, the emulator aborts the save's transaction and the client runs its body again.
    save_resume.set()
    saving.join(1)
    other_write.set()
    saving.join(30)
    writer.join(30)

    assert state.reads == 2, "the two writers did not collide: the save's body ran once"
    assert outcome == {"other": "committed", "save": None}
    stored, version = store.read_state(DAG)
    assert version == 1 and stored["severity"] == "WARNING" and stored["lease"] is None
    [entry] = [doc.to_dict() for doc in store.client.collection(INCIDENT_COLLECTION).stream()]
    assert entry == {"severity": "WARNING"}
    assert incident["id"] == "stalled_batch_cleanup-20261128T150000Z", "the caller's incident is untouched"


@pytest.mark.parametrize("garbage", ["seven", 7.5, None, True], ids=["text", "fraction", "null", "bool"])
def test_a_garbage_version_reads_as_zero_is_logged_and_the_next_save_repairs_it(store, caplog, garbage):
    store._state_ref(DAG).set({**OPEN, "version": garbage})
    _, version = store.read_state(DAG)
    assert version == 0
    assert f"batch_cleanup_alert_state/{DAG}" in caplog.text
    assert store.claim_lease(DAG, run_id="r1", version=0, kind="reminder") is None
    assert store.save_state(DAG, OPEN, run_id="r1", version=0, carry=thread_posted) is None
    assert store._state_ref(DAG).get().to_dict()["version"] == 1
    # Another run deciding on the repaired state sees the real version.
    assert store.save_state(DAG, {"open": False}, run_id="r2", version=1, carry=thread_posted) is None
    assert store.read_state(DAG)[1] == 2
