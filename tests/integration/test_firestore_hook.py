"""FirestoreHook against Google's Firestore emulator: idempotent writes, the window's edges, the 1 MiB cap."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import firestore

from batch_cleanup.cleanup import stalled_fingerprint
from batch_cleanup.events import build_event, event_id, firestore_size
from batch_cleanup.hooks.firestore import FirestoreHook

PARAMS = {"stall_threshold_minutes": 10, "min_completion_pct": 90}
RUN_AFTER = datetime(2026, 3, 8, 6, 45, tzinfo=UTC)


@pytest.fixture
def hook(firestore, monkeypatch):
    connection = {
        "conn_type": "google_cloud_platform",
        "extra": {"project": "demo-batch-cleanup", "is_anonymous": True},
    }
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(connection))
    return FirestoreHook(gcp_conn_id="google_cloud_default")


def summary(batch_ids, results=None):
    results = results if results is not None else [{"batch_id": b, "was_stalled": True} for b in batch_ids]
    return {
        "batches_checked": len(batch_ids),
        "batches_completed": len(batch_ids),
        "stalled_count": len(batch_ids),
        "stalled_batch_ids": batch_ids,
        "stalled_results": results,
        "truncated": False,
        "fingerprint": stalled_fingerprint(batch_ids),
    }


def event(batch_ids, timestamp=firestore.SERVER_TIMESTAMP, **kw):
    return build_event(
        summary(batch_ids, **kw),
        dag_id="stalled_batch_cleanup",
        run_id="scheduled__2026-03-08T06:45:00+00:00",
        params=PARAMS,
        expire_at=RUN_AFTER + timedelta(days=30),
        timestamp=timestamp,
    )


def stored(hook):
    return [snapshot.to_dict() | {"id": snapshot.id} for snapshot in hook.events.stream()]


def test_emulator_needs_no_google_credentials(hook):
    assert hook.client.project == "demo-batch-cleanup"
    assert stored(hook) == []


def test_create_event_is_idempotent_and_keeps_the_first_timestamp(hook):
    doc_id = event_id("stalled_batch_cleanup", "run-1", stalled_fingerprint(["b1"]))
    assert hook.create_event(doc_id, event(["b1"])) is True
    first = stored(hook)
    assert hook.create_event(doc_id, event(["b1"])) is False, "a second create must not overwrite"
    again = stored(hook)
    assert len(again) == 1
    assert again[0]["timestamp"] == first[0]["timestamp"]
    assert again[0]["batch_ids"] == ["b1"]


def test_other_stalled_set_in_same_run_adds_its_own_document(hook):
    for ids in (["b1"], ["b2", "b3"]):
        hook.create_event(event_id("stalled_batch_cleanup", "run-1", stalled_fingerprint(ids)), event(ids))
    assert sorted(len(doc["batch_ids"]) for doc in stored(hook)) == [1, 2]


def test_event_fields(hook):
    hook.create_event("e1", event(["b1", "b2"]))
    [doc] = stored(hook)
    assert doc["stalled_count"] == 2
    assert doc["batch_ids"] == ["b1", "b2"]
    assert doc["results"] == [
        {"batch_id": "b1", "was_stalled": True},
        {"batch_id": "b2", "was_stalled": True},
    ]
    assert doc["expire_at"] == RUN_AFTER + timedelta(days=30)
    assert isinstance(doc["timestamp"], datetime)
    assert {"dag_id", "run_id", "batches_checked", "stall_threshold_minutes", "min_completion_pct"} <= set(
        doc
    )


@pytest.mark.parametrize(
    ("offset", "counted"),
    [
        (timedelta(minutes=-61), False),
        (timedelta(minutes=-60), False),
        (timedelta(minutes=-60, milliseconds=1), True),
        (timedelta(minutes=-59), True),
        (timedelta(0), True),
        (timedelta(milliseconds=1), False),
        (timedelta(minutes=5), False),
    ],
    ids=[
        "61-min-before",
        "at-start-excluded",
        "just-after-start",
        "59-min-before",
        "at-run-time-included",
        "just-after-run-time",
        "after-run-time",
    ],
)
def test_count_in_at_the_window_edges(hook, offset, counted):
    start = RUN_AFTER - timedelta(minutes=60)
    hook.create_event("edge", event(["b1"], timestamp=RUN_AFTER + offset))
    hook.create_event("inside", event(["b2"], timestamp=RUN_AFTER - timedelta(minutes=30)))
    assert hook.count_in(start, RUN_AFTER) == (2 if counted else 1)
    assert len(hook.events_in(start, RUN_AFTER)) == (2 if counted else 1)


def test_a_60_minute_window_of_a_15_minute_schedule_holds_four_runs(hook):
    """The run from exactly an hour ago is the fifth: its event carries its run time, the start."""
    for minutes in (60, 45, 30, 15, 0):
        hook.create_event(
            f"run-{minutes}", event([f"b{minutes}"], timestamp=RUN_AFTER - timedelta(minutes=minutes))
        )
    assert hook.count_in(RUN_AFTER - timedelta(minutes=60), RUN_AFTER) == 4


def test_count_uses_no_document_reads_beyond_the_aggregation(hook):
    for index in range(25):
        hook.create_event(f"e{index}", event([f"b{index}"], timestamp=RUN_AFTER - timedelta(minutes=index)))
    assert hook.count_in(RUN_AFTER - timedelta(minutes=60), RUN_AFTER) == 25
    assert hook.count_in(RUN_AFTER - timedelta(minutes=10), RUN_AFTER) == 10


def test_events_in_lists_newest_first_with_their_batch_ids(hook):
    hook.create_event("old", event(["old"], timestamp=RUN_AFTER - timedelta(minutes=90)))
    hook.create_event("a", event(["a1", "a2"], timestamp=RUN_AFTER - timedelta(minutes=40)))
    hook.create_event("b", event(["b1"], timestamp=RUN_AFTER - timedelta(minutes=10)))
    listed = hook.events_in(RUN_AFTER - timedelta(minutes=60), RUN_AFTER)
    assert [(event.id, event.batch_ids, event.dag_id) for event in listed] == [
        ("b", ["b1"], "stalled_batch_cleanup"),
        ("a", ["a1", "a2"], "stalled_batch_cleanup"),
    ]
    assert hook.events_in(RUN_AFTER - timedelta(minutes=60), RUN_AFTER, limit=1)[0].id == "b"


def test_an_event_the_coordinator_wrote_itself_reads_without_a_dag_id(hook):
    """The seed's schema: timestamp, stalled_count, batch_ids, results, and no dag_id."""
    at = RUN_AFTER - timedelta(minutes=10)
    hook.events.document("legacy").set(
        {"timestamp": at, "stalled_count": 1, "batch_ids": ["l1"], "results": []}
    )
    [event] = hook.events_in(RUN_AFTER - timedelta(minutes=60), RUN_AFTER)
    assert (event.id, event.timestamp, event.batch_ids, event.dag_id) == ("legacy", at, ["l1"], None)
    assert hook.count_in(RUN_AFTER - timedelta(minutes=60), RUN_AFTER) == 1


def test_huge_response_is_capped_under_one_mebibyte_and_accepted(hook):
    ids = [f"batch-{index:05d}-" + "é" * 200 for index in range(10_000)]
    results = [{"batch_id": b, "was_stalled": True, "detail": "x" * 100} for b in ids]
    document = event(ids, results=results)
    assert firestore_size(document) < 1_048_576
    assert document["truncated"] is True
    assert document["stalled_count"] == 10_000
    hook.create_event("huge", document)
    [doc] = stored(hook)
    assert doc["stalled_count"] == 10_000
    assert doc["truncated"] is True
    assert 0 < len(doc["batch_ids"]) < 10_000
    assert doc["batch_ids"] == ids[: len(doc["batch_ids"])]


def test_uncapped_document_is_refused_by_firestore(hook):
    """Guards the cap's premise: the emulator enforces the 1 MiB limit, so capping is not optional."""
    too_big = {"blob": "x" * 1_100_000}
    with pytest.raises(Exception, match=r"(?i)size|exceed|too large|bytes"):
        hook.events.document("too-big").create(too_big)


def test_the_write_time_is_kept_apart_from_the_run_time(hook):
    hook.create_event("e1", event(["b1"], timestamp=RUN_AFTER))
    [doc] = stored(hook)
    assert doc["timestamp"] == RUN_AFTER
    assert isinstance(doc["recorded_at"], datetime) and doc["recorded_at"] > RUN_AFTER


@pytest.mark.parametrize(
    "batch_ids", [None, "b-1", [1, 2], {"b-1": True}], ids=["missing", "string", "numbers", "map"]
)
def test_an_event_with_garbage_batch_ids_counts_with_none_and_is_logged_by_id(hook, caplog, batch_ids):
    at = RUN_AFTER - timedelta(minutes=10)
    bad = {"timestamp": at, "stalled_count": 1} | ({} if batch_ids is None else {"batch_ids": batch_ids})
    hook.events.document("bad-ids").set(bad)
    hook.create_event("good", event(["g1"], timestamp=at - timedelta(minutes=1)))
    listed = hook.events_in(RUN_AFTER - timedelta(minutes=60), RUN_AFTER)
    assert [(e.id, e.batch_ids) for e in listed] == [("bad-ids", []), ("good", ["g1"])]
    assert hook.count_in(RUN_AFTER - timedelta(minutes=60), RUN_AFTER) == 2
    assert "batch_cleanup_events/bad-ids" in caplog.text
    assert "good" not in caplog.text


def test_events_with_a_string_timestamp_are_named_in_the_log_when_the_window_is_read(hook, caplog):
    at = RUN_AFTER - timedelta(minutes=10)
    hook.events.document("text-time").set({"timestamp": at.isoformat(), "batch_ids": ["t1"]})
    hook.create_event("good", event(["g1"], timestamp=at))
    assert [e.id for e in hook.events_in(RUN_AFTER - timedelta(minutes=60), RUN_AFTER)] == ["good"]
    assert "string `timestamp`" in caplog.text
    assert "text-time" in caplog.text


def test_a_window_read_with_only_good_events_logs_no_error(hook, caplog):
    hook.create_event("good", event(["g1"], timestamp=RUN_AFTER - timedelta(minutes=10)))
    hook.events_in(RUN_AFTER - timedelta(minutes=60), RUN_AFTER)
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


def test_an_unreachable_firestore_is_named_with_its_connection_and_project(firestore, monkeypatch):
    """A port nothing listens on: the error says Firestore, the connection id and the project, and is
    an AirflowException (retried by Airflow), not a bare RetryError."""
    from batch_cleanup.compat import AirflowException, AirflowFailException
    from dev import services

    connection = {
        "conn_type": "google_cloud_platform",
        "extra": {"project": "demo-batch-cleanup", "is_anonymous": True},
    }
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(connection))
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{services.free_port()}")
    hook = FirestoreHook(gcp_conn_id="google_cloud_default", retry_seconds=1)
    for call in (
        lambda: hook.create_event("e", event(["b1"])),
        lambda: hook.count_in(RUN_AFTER - timedelta(minutes=60), RUN_AFTER),
        lambda: hook.read_state("stalled_batch_cleanup"),
    ):
        with pytest.raises(AirflowException) as failed:
            call()
        assert not isinstance(failed.value, AirflowFailException)
        text = str(failed.value)
        assert "Firestore" in text and "unreachable" in text, text
        assert "'google_cloud_default'" in text and "'demo-batch-cleanup'" in text, text
