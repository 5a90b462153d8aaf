"""FirestoreHook against Google's Firestore emulator: what only the hook does. The rules it shares with
the in-memory store (idempotent writes, the window's edges, the lease, the version) are
tests/integration/test_store_contract.py's; here the 1 MiB cap, Firestore's own clock and
transactions, the errors and logs that name the document, connection and project."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import firestore

from batch_cleanup.cleanup import stalled_fingerprint
from batch_cleanup.delivery import thread_posted
from batch_cleanup.events import build_event, firestore_size
from batch_cleanup.hooks.firestore import INCIDENT_COLLECTION, STATE_COLLECTION, FirestoreHook

DAG = "stalled_batch_cleanup"
OPEN = {"open": True, "severity": "WARNING", "notifications": 1}
PARAMS = {"stall_threshold_minutes": 10, "min_completion_pct": 90}
RUN_AFTER = datetime(2026, 3, 8, 6, 45, tzinfo=UTC)
START = RUN_AFTER - timedelta(minutes=60)


@pytest.fixture
def hook(firestore_hook):
    return firestore_hook


def summary(batch_ids, results=None):
    results = results if results is not None else [{"batch_id": b, "was_stalled": True} for b in batch_ids]
    counts = dict.fromkeys(("batches_checked", "batches_completed", "stalled_count"), len(batch_ids))
    return {**counts, "stalled_batch_ids": batch_ids, "stalled_results": results, "truncated": False,
            "fingerprint": stalled_fingerprint(batch_ids)}  # fmt: skip


def event(batch_ids, timestamp=RUN_AFTER, **kw):
    run = {"dag_id": DAG, "run_id": "scheduled__2026-03-08T06:45:00+00:00", "params": PARAMS}
    return build_event(
        summary(batch_ids, **kw), **run, expire_at=RUN_AFTER + timedelta(days=30), timestamp=timestamp
    )


def stored(hook):
    return [snapshot.to_dict() | {"id": snapshot.id} for snapshot in hook.events.stream()]


def test_an_event_is_stored_whole_with_firestores_write_time_apart_from_the_run_time(hook):
    assert (hook.client.project, stored(hook)) == ("demo-batch-cleanup", []), "no Google credentials needed"
    hook.create_event("e1", event(["b1", "b2"]))
    [doc] = stored(hook)
    assert (doc["stalled_count"], doc["batch_ids"], doc["timestamp"]) == (2, ["b1", "b2"], RUN_AFTER)
    assert doc["results"] == [{"batch_id": b, "was_stalled": True} for b in ("b1", "b2")]
    assert doc["expire_at"] == RUN_AFTER + timedelta(days=30)
    expected = {"dag_id", "run_id", "batches_checked", "stall_threshold_minutes", "min_completion_pct"}
    assert expected <= doc.keys()
    assert isinstance(doc["recorded_at"], datetime) and doc["recorded_at"] > RUN_AFTER


def test_huge_response_is_capped_under_one_mebibyte_and_accepted(hook):
    ids = [f"batch-{index:05d}-" + "é" * 200 for index in range(10_000)]
    results = [{"batch_id": b, "was_stalled": True, "detail": "x" * 100} for b in ids]
    document = event(ids, results=results)
    assert firestore_size(document) < 1_048_576
    assert (document["truncated"], document["stalled_count"]) == (True, 10_000)
    hook.create_event("huge", document)
    [doc] = stored(hook)
    assert (doc["truncated"], doc["stalled_count"]) == (True, 10_000)
    assert 0 < len(doc["batch_ids"]) < 10_000
    assert doc["batch_ids"] == ids[: len(doc["batch_ids"])]


def test_uncapped_document_is_refused_by_firestore(hook):
    """Guards the cap's premise: the emulator enforces the 1 MiB limit, so capping is not optional."""
    with pytest.raises(Exception, match=r"(?i)size|exceed|too large|bytes"):
        hook.events.document("too-big").create({"blob": "x" * 1_100_000})


@pytest.mark.parametrize(
    ("document", "logged"),
    [
        ({}, "batch_cleanup_events/bad has no `batch_ids`"),
        ({"batch_ids": "b-1"}, "batch_cleanup_events/bad has `batch_ids` of type str"),
        ({"batch_ids": [1, 2]}, "batch_cleanup_events/bad has `batch_ids` of type list"),
        ({"batch_ids": {"b-1": True}}, "batch_cleanup_events/bad has `batch_ids` of type dict"),
        ({"timestamp": "2026-03-08T06:35:00", "batch_ids": ["t1"]}, "string `timestamp`"),
    ],
    ids=["missing", "string", "numbers", "map", "string-timestamp"],
)
def test_a_bad_event_is_named_in_the_log_when_the_window_is_read(hook, caplog, document, logged):
    at = RUN_AFTER - timedelta(minutes=10)
    hook.create_event("good", event(["g1"], timestamp=at - timedelta(minutes=1)))
    hook.events_in(START, RUN_AFTER)
    assert not [record for record in caplog.records if record.levelname == "ERROR"], "only good events"
    hook.events.document("bad").set({"timestamp": at, "stalled_count": 1, **document})
    hook.events_in(START, RUN_AFTER)
    assert logged in caplog.text and "bad" in caplog.text
    assert "good" not in caplog.text


@pytest.mark.parametrize("garbage", ["seven", 7.5, None, True], ids=["text", "fraction", "null", "bool"])
def test_a_garbage_version_is_logged_naming_the_state_document(hook, caplog, garbage):
    hook._state_ref(DAG).set({**OPEN, "version": garbage})
    assert hook.read_state(DAG)[1] == 0
    assert f"{STATE_COLLECTION}/{DAG}" in caplog.text


def test_an_unreachable_firestore_is_named_with_its_connection_and_project(hook, monkeypatch):
    """A port nothing listens on: the error says Firestore, the connection id and the project, and is
    an AirflowException (retried by Airflow), not a bare RetryError."""
    from batch_cleanup.compat import AirflowException, AirflowFailException
    from dev import services

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{services.free_port()}")
    hook = FirestoreHook(gcp_conn_id="google_cloud_default", retry_seconds=1)
    for call in (
        lambda: hook.create_event("e", event(["b1"])),
        lambda: hook.count_in(START, RUN_AFTER),
        lambda: hook.read_state(DAG),
    ):
        with pytest.raises(AirflowException) as failed:
            call()
        assert not isinstance(failed.value, AirflowFailException)
        text = str(failed.value)
        assert "Firestore" in text and "unreachable" in text, text
        assert "'google_cloud_default'" in text and "'demo-batch-cleanup'" in text, text


def test_a_transaction_aborted_at_every_attempt_or_never_begun_fails_as_firestore_named(hook):
    """Google's client ends a transaction aborted at each of its attempts with a bare ValueError
    (chained to the last Aborted), and one that could not begin with the ValueError of its failed
    rollback (raised while handling the begin's RetryError): the task must see Firestore named."""
    from google.api_core.exceptions import Aborted, RetryError, ServiceUnavailable

    from batch_cleanup.hooks.firestore import FirestoreUnavailable, _names_firestore

    @_names_firestore
    def save_state(hook):
        raise ValueError("Failed to commit transaction in 5 attempts.") from Aborted("contention")

    @_names_firestore
    def misuse(hook):
        raise ValueError("not Firestore's: a bug of ours stays a bug")

    @_names_firestore
    def bug_in_a_handler(hook):
        try:
            raise ServiceUnavailable("Connection refused")
        except ServiceUnavailable:
            raise KeyError("a bug of ours while handling Firestore's error")  # noqa: B904

    @_names_firestore
    def update_labels(hook):  # the begin's RetryError, then Google's rollback of a transaction never begun
        try:
            raise RetryError("Timeout of 60.0s exceeded", ServiceUnavailable("Connection refused"))
        except RetryError:
            raise ValueError("The transaction has no transaction ID, so it cannot be rolled back.")  # noqa: B904

    with pytest.raises(FirestoreUnavailable, match=r"'google_cloud_default'.*gave up save_state.*contention"):
        save_state(hook)
    never_begun = r"is unreachable \(update_labels\): 503 Connection refused"
    with pytest.raises(FirestoreUnavailable, match=never_begun):
        update_labels(hook)
    with pytest.raises(ValueError, match="a bug of ours"):
        misuse(hook)
    with pytest.raises(KeyError, match="a bug of ours"):
        bug_in_a_handler(hook)


# --- transactions ---------------------------------------------------------------------------------


def test_concurrent_claims_in_threads_grant_exactly_one(hook):
    results = {}

    def claim(run_id):
        try:
            results[run_id] = FirestoreHook().claim_lease(DAG, run_id=run_id, version=0, kind="alert")
        except Exception as error:  # a claim that raised must fail the test, not vanish in its thread
            results[run_id] = error

    threads = [threading.Thread(target=claim, args=(f"run-{index}",)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(outcome is None or isinstance(outcome, str) for outcome in results.values()), results
    assert sum(outcome is None for outcome in results.values()) == 1, results


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


def test_a_save_that_collides_with_another_writer_is_rerun_by_firestore_and_completes(hook):
    """Two writers really collide on the emulator: the save's transaction is aborted and run again,
    and the second run of its body must do exactly what the first would have."""
    hook.claim_lease(DAG, run_id="run-a", version=0, kind="alert")
    ref = hook._state_ref(DAG)
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
    stored, version = hook.read_state(DAG)
    assert version == 1 and stored["severity"] == "WARNING" and stored["lease"] is None
    [entry] = [doc.to_dict() for doc in hook.client.collection(INCIDENT_COLLECTION).stream()]
    assert entry == {"severity": "WARNING"}
    assert incident["id"] == "stalled_batch_cleanup-20261128T150000Z", "the caller's incident is untouched"
