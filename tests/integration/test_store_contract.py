"""One contract for both stores: `FirestoreHook` on the Firestore emulator and the `MemoryStore` the
steps' unit tests and the backtest use. Each test runs against both and asserts what the hook's
rules say, so the fake cannot pass on a rule production does not have."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batch_cleanup.delivery import thread_posted
from batch_cleanup.events import StoredEvent, run_document
from batch_cleanup.hooks.firestore import INCIDENT_COLLECTION, STATE_COLLECTION
from batch_cleanup.names import RUN_COLLECTION
from batch_cleanup.ports import RunRecord
from tests.support.memory_store import MemoryStore

DAG = "stalled_batch_cleanup"
OPEN = {"open": True, "severity": "WARNING", "notifications": 1}
START = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
END = START + timedelta(hours=1)
TICK = timedelta(microseconds=1)  # Firestore keeps microseconds: the bounds are exact at this step


@pytest.fixture(params=["firestore", "memory"])
def store(request):
    return MemoryStore() if request.param == "memory" else request.getfixturevalue("firestore_hook")


def seed_state(store, document: dict[str, Any]) -> None:
    """Write the state document as is, through each store's own way in (no rule applies)."""
    if isinstance(store, MemoryStore):
        store.state = dict(document)
    else:
        store.client.collection(STATE_COLLECTION).document(DAG).set(document)


def seed(store, collection: str, document_id: str, document: dict[str, Any]) -> None:
    """A run record or an incident as is, through each store's own way in."""
    if isinstance(store, MemoryStore):
        kept = {RUN_COLLECTION: store.runs, INCIDENT_COLLECTION: store.incidents}[collection]
        kept[document_id] = dict(document)
    else:
        store.client.collection(collection).document(document_id).set(document)


def incidents(store) -> dict[str, dict[str, Any]]:
    if isinstance(store, MemoryStore):
        return store.incidents
    return {doc.id: doc.to_dict() for doc in store.client.collection(INCIDENT_COLLECTION).stream()}


def lease(run_id: str, *, expires_in: timedelta) -> dict[str, Any]:
    return {"run_id": run_id, "kind": "alert", "expires_at": datetime.now(UTC) + expires_in}


def state(store) -> dict[str, Any]:
    return store.read_state(DAG)[0]


# --- events ---------------------------------------------------------------------------------------


def test_an_event_is_created_once_and_kept_as_first_written(store):
    assert store.create_event("e1", {"timestamp": START, "batch_ids": ["a"]}) is True
    assert store.create_event("e1", {"timestamp": END, "batch_ids": ["b"]}) is False
    assert store.events_in(START - TICK, END) == [StoredEvent("e1", START, ["a"], None, None)]


def test_the_window_excludes_its_start_and_includes_its_end(store):
    edges = {"at-start": START, "after-start": START + TICK, "at-end": END, "after": END + TICK}
    for name, at in edges.items():
        store.create_event(name, {"timestamp": at, "batch_ids": [name]})

    assert [event.id for event in store.events_in(START, END)] == ["at-end", "after-start"]
    assert store.count_in(START, END) == 2


def test_events_come_newest_first_ties_by_id_descending_and_the_limit_keeps_the_newest(store):
    for name, minutes in [("b", 10), ("a", 30), ("c", 30), ("d", 20)]:
        store.create_event(name, {"timestamp": START + timedelta(minutes=minutes), "batch_ids": []})

    assert [event.id for event in store.events_in(START, END)] == ["c", "a", "d", "b"]
    assert [event.id for event in store.events_in(START, END, limit=3)] == ["c", "a", "d"]


def test_an_event_reads_its_dag_and_stalled_count_or_none(store):
    at = START + timedelta(minutes=5)
    store.create_event("dag", {"timestamp": at, "batch_ids": ["x"], "dag_id": DAG, "stalled_count": 3})
    store.create_event("legacy", {"timestamp": at - TICK, "batch_ids": ["y"]})

    assert store.events_in(START, END) == [
        StoredEvent("dag", at, ["x"], DAG, 3),
        StoredEvent("legacy", at - TICK, ["y"], None, None),
    ]


@pytest.mark.parametrize(
    "document",
    [{}, {"batch_ids": "b1"}, {"batch_ids": ["b1", 2]}, {"batch_ids": None}],
    ids=["missing", "a-string", "not-all-strings", "null"],
)
def test_an_event_with_bad_batch_ids_counts_with_none(store, document):
    at = START + timedelta(minutes=5)
    store.create_event("bad", {"timestamp": at, **document})

    assert store.events_in(START, END) == [StoredEvent("bad", at, [], None, None)]
    assert store.count_in(START, END) == 1


def test_an_event_with_a_string_timestamp_is_in_no_window(store):
    store.create_event("text", {"timestamp": (START + timedelta(minutes=5)).isoformat(), "batch_ids": ["t"]})
    store.create_event("good", {"timestamp": START + timedelta(minutes=5), "batch_ids": ["g"]})

    assert [event.id for event in store.events_in(START, END)] == ["good"]
    assert store.count_in(START, END) == 1


# --- run records and incidents ------------------------------------------------------------------


def run(at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "run_after": at,
        "batches_checked": 10,
        "stalled_count": 0,
        "kind": "none",
        "dag_id": DAG,
        **fields,
    }


def test_run_records_come_oldest_first_in_the_window_limited_to_the_first(store):
    edges = {"at-start": START, "after-start": START + TICK, "at-end": END, "after": END + TICK}
    for name, at in edges.items():
        seed(store, RUN_COLLECTION, name, run(at, stalled_count=len(name)))
    seed(store, RUN_COLLECTION, "a-tie", run(END, kind="alert", severity="WARNING", stalled_count=3))

    assert store.runs_in(START, END) == [
        RunRecord(START + TICK, 10, 11, "none", None, DAG),
        RunRecord(END, 10, 3, "alert", "WARNING", DAG),
        RunRecord(END, 10, 6, "none", None, DAG),
    ]
    assert [r.stalled_count for r in store.runs_in(START, END, limit=2)] == [11, 3], "the oldest, ties by id"


def test_run_records_of_another_dag_are_left_out_and_so_is_a_garbage_one(store):
    seed(store, RUN_COLLECTION, "other", run(START + TICK, dag_id="another_dag"))
    seed(store, RUN_COLLECTION, "garbage", run(END, batches_checked="12", stalled_count=True))
    seed(store, RUN_COLLECTION, "good", run(END - TICK))

    assert store.runs_in(START, END, dag_id=DAG) == [RunRecord(END - TICK, 10, 0, "none", None, DAG)]
    assert len(store.runs_in(START, END)) == 2


def test_incidents_opened_in_the_window_come_oldest_first_with_their_label_and_without_batch_ids(store):
    label = {"value": "real", "source": "reactions", "by": ["U1"], "at": END, "note": None}
    opened = {"at-start": START, "in": START + TICK, "at-end": END, "after": END + TICK}
    for name, at in opened.items():
        seed(store, INCIDENT_COLLECTION, name, {"dag_id": DAG, "opened_at": at, "batch_ids": ["b"]})
    seed(store, INCIDENT_COLLECTION, "labelled", {"opened_at": END - TICK, "label": label, "closed_at": END})
    seed(store, INCIDENT_COLLECTION, "other", {"dag_id": "another_dag", "opened_at": END - TICK})

    assert store.incidents_in(START, END, dag_id=DAG) == [
        {"id": "in", "dag_id": DAG, "opened_at": START + TICK},
        {"id": "labelled", "opened_at": END - TICK, "label": label, "closed_at": END},
        {"id": "at-end", "dag_id": DAG, "opened_at": END},
    ]
    assert [i["id"] for i in store.incidents_in(START, END, limit=2)] == ["in", "labelled"]


# --- the state document ---------------------------------------------------------------------------


def test_no_state_reads_as_empty_version_zero_and_a_release_writes_none(store):
    assert store.read_state(DAG) == ({}, 0)
    store.release_lease(DAG, run_id="run-a")
    assert store.read_state(DAG) == ({}, 0)


@pytest.mark.parametrize("garbage", ["3", 2.5, True, None], ids=["string", "float", "bool", "null"])
def test_a_garbage_version_reads_as_zero_and_the_next_save_writes_one(store, garbage):
    seed_state(store, {"open": False, "version": garbage})

    assert store.read_state(DAG) == ({"open": False, "version": garbage}, 0)
    assert store.save_state(DAG, OPEN, run_id="run-a", version=0, carry=thread_posted) is None
    assert store.read_state(DAG)[1] == 1


def test_a_claim_holds_the_lease_and_a_retry_of_the_holder_keeps_it(store):
    assert store.claim_lease(DAG, run_id="run-a", version=0, kind="alert") is None
    refused = store.claim_lease(DAG, run_id="run-b", version=0, kind="alert")
    assert refused == "run run-a is delivering a alert message"
    assert store.claim_lease(DAG, run_id="run-a", version=0, kind="alert") is None

    stored, version = store.read_state(DAG)
    assert version == 0 and stored["lease"]["run_id"] == "run-a" and stored["lease"]["kind"] == "alert"
    assert stored["lease"]["expires_at"] > datetime.now(UTC) + timedelta(minutes=9), "ten minutes"


def test_a_claim_on_an_old_version_is_refused(store):
    seed_state(store, {"open": True, "version": 1})

    refused = store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    assert refused == "the state changed since this run decided (version 0 → 1)"
    assert "lease" not in state(store)


def test_an_expired_lease_blocks_no_claim(store):
    seed_state(store, {"version": 2, "lease": lease("dead", expires_in=-timedelta(seconds=1))})

    assert store.claim_lease(DAG, run_id="run-b", version=2, kind="resolved") is None
    assert state(store)["lease"]["run_id"] == "run-b" and state(store)["lease"]["kind"] == "resolved"


def test_only_the_holder_releases_the_lease(store):
    store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    store.release_lease(DAG, run_id="run-b")
    assert state(store)["lease"]["run_id"] == "run-a"

    store.release_lease(DAG, run_id="run-a")
    assert state(store)["lease"] is None
    assert store.claim_lease(DAG, run_id="run-b", version=0, kind="alert") is None


def test_a_post_is_recorded_beside_the_state_and_a_later_one_replaces_it(store):
    seed_state(store, {"open": True, "version": 3})
    where = {"channel": "C0TEST", "ts": "1.1", "gone": "message_not_found"}
    store.record_post(DAG, run_id="run-a", kind="alert", where=where)
    posted = {"run_id": "run-a", "kind": "alert", **where}
    assert store.read_state(DAG) == ({"open": True, "version": 3, "posted": posted}, 3)

    store.record_post(DAG, run_id="run-b", kind="reminder", where={"channel": "C0TEST", "ts": "2.2"})
    # Replaced whole: run-a's `gone` must not end run-b's thread.
    assert state(store)["posted"] == {"run_id": "run-b", "kind": "reminder", "channel": "C0TEST", "ts": "2.2"}


def test_the_holders_save_bumps_the_version_drops_lease_and_marker_and_keeps_its_thread(store):
    store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    where = {"channel": "C0TEST", "ts": "1.1", "gone": "x"}
    store.record_post(DAG, run_id="run-a", kind="alert", where=where)

    assert store.save_state(DAG, OPEN, run_id="run-a", version=0, carry=thread_posted) is None

    stored, version = store.read_state(DAG)
    assert version == 1 and stored["lease"] is None and "posted" not in stored
    assert stored["updated_by"] == "run-a" and isinstance(stored["updated_at"], datetime)
    saved = {key: stored[key] for key in stored if key not in ("updated_at",)}
    thread = {"slack_channel": "C0TEST", "slack_ts": "1.1", "slack_thread_gone": "x"}
    assert saved == {**OPEN, **thread, "version": 1, "lease": None, "updated_by": "run-a"}


def test_a_closed_incident_and_another_runs_post_keep_no_thread(store):
    store.claim_lease(DAG, run_id="run-a", version=0, kind="resolved")
    store.record_post(DAG, run_id="run-a", kind="resolved", where={"channel": "C0TEST", "ts": "1.1"})
    store.save_state(DAG, {"open": False}, run_id="run-a", version=0, carry=thread_posted)
    assert "slack_ts" not in state(store)

    store.claim_lease(DAG, run_id="run-b", version=1, kind="alert")
    store.record_post(DAG, run_id="run-other", kind="alert", where={"channel": "C0TEST", "ts": "2.2"})
    store.save_state(DAG, OPEN, run_id="run-b", version=1, carry=thread_posted)
    assert "slack_ts" not in state(store)


@pytest.mark.parametrize(
    ("stored", "expires_in", "decided"),
    [(5, timedelta(minutes=5), 4), (0, -timedelta(seconds=1), 0)],
    ids=["after-the-version-moved", "after-its-lease-expired"],
)
def test_the_holder_saves_even(store, stored, expires_in, decided):
    seed_state(store, {"open": False, "version": stored, "lease": lease("run-a", expires_in=expires_in)})

    assert store.save_state(DAG, OPEN, run_id="run-a", version=decided, carry=thread_posted) is None
    assert store.read_state(DAG)[1] == stored + 1, "the stored version plus one"


def test_another_run_saves_nothing_while_a_lease_is_held(store):
    store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")

    refused = store.save_state(
        DAG, {"open": False}, run_id="run-b", version=0, carry=thread_posted, incident={"id": "i1", "n": 1}
    )

    assert refused == "run run-a is delivering a alert message"
    stored, version = store.read_state(DAG)
    assert version == 0 and "open" not in stored and incidents(store) == {}


def test_another_run_saves_over_an_expired_lease(store):
    seed_state(store, {"version": 0, "lease": lease("dead", expires_in=-timedelta(seconds=1))})

    assert store.save_state(DAG, {"open": False}, run_id="run-b", version=0, carry=thread_posted) is None
    assert store.read_state(DAG)[0]["lease"] is None


def test_a_save_on_an_old_version_changes_nothing(store):
    seed_state(store, {"open": True, "version": 4})

    refused = store.save_state(
        DAG, {"open": False}, run_id="run-b", version=3, carry=thread_posted, incident={"id": "i1", "n": 1}
    )

    assert refused == "the state changed since this run decided (version 3 → 4)"
    assert store.read_state(DAG) == ({"open": True, "version": 4}, 4) and incidents(store) == {}


def test_the_incident_entry_is_written_with_the_save_and_merged_by_a_later_one(store):
    opening, closing = {"id": "i1", "opened_at": START, "n": 1}, {"id": "i1", "closed_at": END, "n": 2}
    store.save_state(DAG, OPEN, run_id="run-a", version=0, carry=thread_posted, incident=opening)
    store.save_state(DAG, {"open": False}, run_id="run-b", version=1, carry=thread_posted, incident=closing)

    assert incidents(store) == {"i1": {"opened_at": START, "closed_at": END, "n": 2}}


# --- run records ----------------------------------------------------------------------------------


def run_documents(store) -> dict[str, dict[str, Any]]:
    if isinstance(store, MemoryStore):
        return store.runs
    return {doc.id: doc.to_dict() for doc in store.client.collection(RUN_COLLECTION).stream()}


def write(store, at: datetime, run_id: str | None = None, dag_id: str = DAG, **fields) -> RunRecord:
    """The run record of a run at `at`, as `record_state` writes it; what reading it gives back."""
    record = RunRecord(at, **{"batches_checked": 10, "stalled_count": 0, **fields}, dag_id=dag_id)
    store.write_run(*run_document(record, run_id=run_id or f"scheduled__{at.isoformat()}"))
    return record


def test_a_run_record_is_written_whole_with_the_stores_clock_and_read_back(store):
    record = write(store, START + timedelta(minutes=15), batches_checked=40, stalled_count=2, kind="alert",
                   severity="WARNING")  # fmt: skip

    assert store.runs_in(START, END) == [record]
    [document] = run_documents(store).values()
    assert document["run_id"] == "scheduled__2026-11-28T14:15:00+00:00"
    assert document["expire_at"] == START + timedelta(minutes=15, days=90)
    assert isinstance(document["recorded_at"], datetime)


def test_a_retry_writes_the_same_run_record_over_the_first(store):
    at = START + timedelta(minutes=15)
    write(store, at, stalled_count=1)
    again = write(store, at, stalled_count=3, kind="alert", severity="WARNING")

    assert len(run_documents(store)) == 1
    assert store.runs_in(START, END) == [again], "a set: the retry's figures, in the one document"


def test_run_records_in_a_range_exclude_its_start_and_include_its_end_oldest_first(store):
    for at in (END, START, START + TICK, END + TICK, START + timedelta(minutes=30)):
        write(store, at)

    got = [record.run_after for record in store.runs_in(START, END)]
    assert got == [START + TICK, START + timedelta(minutes=30), END]
    assert [record.run_after for record in store.runs_in(START, END, limit=2)] == got[:2], "the oldest"


def test_run_records_at_the_same_time_come_by_document_id_and_a_dag_id_chooses_one_dags(store):
    at, ids = START + timedelta(minutes=15), {}
    for run_id, dag_id, checked in [("b", DAG, 2), ("a", DAG, 1), ("c", "other_dag", 3)]:
        write(store, at, run_id=run_id, dag_id=dag_id, batches_checked=checked)
        ids[checked] = run_document(RunRecord(at, checked, 0, dag_id=dag_id), run_id=run_id)[0]

    by_id = sorted((1, 2), key=ids.__getitem__)
    assert [record.batches_checked for record in store.runs_in(START, END, dag_id=DAG)] == by_id
    assert [record.batches_checked for record in store.runs_in(START, END, dag_id="other_dag")] == [3]
    assert sorted(record.dag_id for record in store.runs_in(START, END)) == sorted([DAG, DAG, "other_dag"])


@pytest.mark.parametrize(
    ("bad", "last"),
    [({"batches_checked": "40"}, None), ({"run_after": START.isoformat()}, "good"), ({"kind": None}, "good")],
    ids=["string-count", "string-time", "no-kind"],
)
def test_a_run_record_with_a_wrong_field_is_left_out(store, bad, last):
    """As the newest evaluation, a bad record hides the one before (the state's own `evaluated_at`
    still stands); a string time or another kind is not even found."""
    good = write(store, START + timedelta(minutes=15))
    store.write_run("bad", {"run_after": START + timedelta(minutes=20), "batches_checked": 1,
                            "stalled_count": 0, "kind": "none", "dag_id": DAG, **bad})  # fmt: skip

    assert store.runs_in(START, END) == [good]
    assert store.last_evaluation(DAG) == (good if last else None)


def test_the_last_evaluation_is_the_newest_record_of_the_dag_but_a_test(store):
    assert store.last_evaluation(DAG) is None
    write(store, START)
    newest = write(store, START + timedelta(minutes=30), kind="reminder", severity="WARNING")
    write(store, START + timedelta(minutes=15), kind="alert", severity="WARNING")
    write(store, START + timedelta(minutes=40), kind="test")
    write(store, START + timedelta(minutes=45), dag_id="other_dag")

    assert store.last_evaluation(DAG) == newest


@pytest.mark.parametrize(
    ("minutes", "refused"), [(-15, True), (0, False), (15, False)], ids=["older", "the-same-run", "newer"]
)
def test_a_claim_by_a_run_older_than_the_last_evaluation_is_refused(store, minutes, refused):
    write(store, START + timedelta(minutes=30))
    write(store, START + timedelta(minutes=45), kind="test")  # a test run is no evaluation
    run_after = START + timedelta(minutes=30 + minutes)

    said = store.claim_lease(DAG, run_id="run-a", version=0, kind="alert", run_after=run_after)

    if refused:
        assert said == "this run (2026-11-28 14:15:00 UTC) is older than the last evaluation " + (
            "(2026-11-28 14:30:00 UTC)"
        )
        assert "lease" not in state(store)
    else:
        assert said is None and state(store)["lease"]["run_id"] == "run-a"


def test_a_save_by_a_run_older_than_the_last_evaluation_changes_nothing_but_the_holders_lands(store):
    write(store, START + timedelta(minutes=30))
    older = START + timedelta(minutes=15)

    refused = store.save_state(DAG, OPEN, run_id="run-b", version=0, carry=thread_posted,
                               incident={"id": "i1", "n": 1}, run_after=older)  # fmt: skip
    assert refused.startswith("this run (2026-11-28 14:15:00 UTC) is older than the last evaluation")
    assert store.read_state(DAG) == ({}, 0) and incidents(store) == {}

    seed_state(store, {"version": 0, "lease": lease("run-a", expires_in=timedelta(minutes=5))})
    assert (
        store.save_state(DAG, OPEN, run_id="run-a", version=0, carry=thread_posted, run_after=older) is None
    )
    assert store.read_state(DAG)[1] == 1, "the holder saves what it already posted"
# --- labels on incidents --------------------------------------------------------------------------

THREAD = {"slack_channel": "C0TEST", "slack_ts": "1.1"}
PAGE_LABEL = {"value": "noise", "source": "page", "by": ["ana"], "at": START, "note": "load test"}


def seed_incident(store, incident_id: str, document: dict[str, Any]) -> None:
    if isinstance(store, MemoryStore):
        store.incidents[incident_id] = dict(document)
    else:
        store.client.collection(INCIDENT_COLLECTION).document(incident_id).set(document)


def test_the_incident_entry_carries_its_threads_first_message_also_when_it_closes(store):
    store.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    store.record_post(DAG, run_id="run-a", kind="alert", where={"channel": "C0TEST", "ts": "1.1"})
    store.save_state(DAG, OPEN, run_id="run-a", version=0, carry=thread_posted, incident={"id": "i1", "n": 1})
    assert incidents(store)["i1"] == {"n": 1, **THREAD}

    closed = {"open": False, "slack_channel": None, "slack_ts": None}  # a closed state forgets the thread
    store.save_state(
        DAG, closed, run_id="run-b", version=1, carry=thread_posted, incident={"id": "i1", "n": 2}
    )
    assert incidents(store)["i1"] == {"n": 2, **THREAD}, "the closing save names the thread it closes"


def test_without_a_thread_the_incident_entry_gets_none(store):
    store.save_state(DAG, OPEN, run_id="run-a", version=0, carry=thread_posted, incident={"id": "i1", "n": 1})
    assert incidents(store) == {"i1": {"n": 1}}


def test_the_incidents_to_label_are_this_dags_with_a_thread_open_or_closed_in_the_window(store):
    cases = {
        "i1-open": {"closed_at": None, **THREAD},
        "i2-at-start": {"closed_at": START, **THREAD},
        "i3-after-start": {"closed_at": START + TICK, **THREAD, "label": PAGE_LABEL},
        "i4-at-end": {"closed_at": END, **THREAD},
        "i5-after-end": {"closed_at": END + TICK, **THREAD},
        "i6-no-thread": {"closed_at": None},
        "i7-other-dag": {"closed_at": None, **THREAD, "dag_id": "other"},
    }
    for incident_id, document in cases.items():
        seed_incident(
            store, incident_id, {"dag_id": DAG, "opened_at": START - timedelta(hours=1), **document}
        )

    found = store.incidents_to_label(DAG, START, END)

    assert [incident["id"] for incident in found] == ["i1-open", "i3-after-start", "i4-at-end"]
    assert found[1] == {
        "id": "i3-after-start",
        "dag_id": DAG,
        "opened_at": START - timedelta(hours=1),
        "closed_at": START + TICK,
        **THREAD,
        "label": PAGE_LABEL,
    }


def test_labels_are_merged_into_the_incident_and_a_missing_incident_stays_missing(store):
    seed_incident(store, "i1", {"dag_id": DAG, "notifications": 3})
    reactions = {"real": ["U1"], "noise": []}
    label = {"value": "real", "source": "reactions", "by": ["U1"], "at": END, "note": None}

    store.update_labels("i1", {"reactions": reactions, "first_reaction_at": END, "label": label})
    store.update_labels("gone", {"label": label})

    assert incidents(store) == {
        "i1": {
            "dag_id": DAG,
            "notifications": 3,
            "reactions": reactions,
            "first_reaction_at": END,
            "label": label,
        }
    }


def test_a_label_from_reactions_never_replaces_one_from_the_page(store):
    seed_incident(store, "i1", {"dag_id": DAG, "label": PAGE_LABEL})
    from_reactions = {"value": "real", "source": "reactions", "by": ["U1"], "at": END, "note": None}

    store.update_labels("i1", {"label": from_reactions, "reactions": {"real": ["U1"], "noise": []}})
    assert incidents(store)["i1"]["label"] == PAGE_LABEL
    assert incidents(store)["i1"]["reactions"] == {"real": ["U1"], "noise": []}

    store.update_labels("i1", {"label": None})
    assert incidents(store)["i1"]["label"] == PAGE_LABEL
    relabelled = {**PAGE_LABEL, "value": "real", "by": ["bo"]}
    store.update_labels("i1", {"label": relabelled})
    assert incidents(store)["i1"]["label"] == relabelled
