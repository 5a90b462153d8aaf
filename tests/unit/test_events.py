"""Cleanup events: their id, their Firestore size, the document, and the counting window; the run
record's id and document."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from batch_cleanup.cleanup import stalled_fingerprint
from batch_cleanup.events import (
    StoredEvent,
    build_event,
    double_recorded,
    event_id,
    firestore_size,
    run_document,
    window_start,
)
from batch_cleanup.names import EVALUATED_KINDS
from batch_cleanup.names import EVENT_COLLECTION as COLLECTION
from batch_cleanup.policy import Kind
from batch_cleanup.ports import RunRecord, stored_run
from tests.support.times import NoOffset

FIRESTORE_MAX_DOCUMENT_BYTES = 1_048_576
DAG_ID = "stalled_batch_cleanup"
RUN_ID = "scheduled__2020-03-01T10:05:00+00:00"
PARAMS = {"stall_threshold_minutes": 10, "min_completion_pct": 90}
EXPIRE_AT = datetime(2020, 3, 31, 10, 5, tzinfo=UTC)
SERVER_TIMESTAMP = object()  # stands in for firestore.SERVER_TIMESTAMP


def summary_of(results: list[dict], *, truncated: bool = False, checked: int | None = None) -> dict:
    ids, count = [r["batch_id"] for r in results], len(results)
    summary = {"batches_checked": count if checked is None else checked, "batches_completed": count}
    summary |= {"stalled_count": count, "stalled_batch_ids": ids, "stalled_results": results}
    return summary | {"truncated": truncated, "fingerprint": stalled_fingerprint(ids)}


def stalled(batch_id: str, **fields) -> dict:
    return {"batch_id": batch_id, "was_stalled": True, **fields}


def event(summary: dict, **overrides) -> dict:
    arguments = {"dag_id": DAG_ID, "run_id": RUN_ID, "params": PARAMS, "expire_at": EXPIRE_AT}
    return build_event(summary, **{**arguments, "timestamp": SERVER_TIMESTAMP, **overrides})


def stored_size(document: dict, document_id: str) -> int:
    """Firestore's document size: name (collection + id strings + 16) + fields + 32."""
    name = firestore_size(COLLECTION) + firestore_size(document_id) + 16
    return name + firestore_size(document) + 32


# --- event_id ---------------------------------------------------------------------------------

FP_A = stalled_fingerprint(["b1", "b2"])
FP_B = stalled_fingerprint(["b1", "b3"])


# fmt: off
OTHERS = {
    "other-run": (DAG_ID, "scheduled__2020-03-01T10:10:00+00:00", FP_A), "other-set": (DAG_ID, RUN_ID, FP_B),
    "other-dag": ("other_dag", RUN_ID, FP_A), "run-id-suffix": (DAG_ID, RUN_ID + "x", FP_A),
    "empty-set": (DAG_ID, RUN_ID, stalled_fingerprint([])),
}
# fmt: on


@pytest.mark.parametrize("other", OTHERS.values(), ids=list(OTHERS))
def test_the_same_run_and_stalled_set_give_the_same_id_and_another_run_or_set_another(other):
    same = event_id(DAG_ID, RUN_ID, FP_A)
    reordered = stalled_fingerprint(["b2", "b1"])
    assert event_id(DAG_ID, RUN_ID, FP_A) == event_id(DAG_ID, RUN_ID, reordered) == same
    assert event_id(*other) != same


@pytest.mark.parametrize(
    "run_id",
    [RUN_ID, "manual__2020-03-01T10:05:00.123456+00:00", "a/b", "__x__", ".", "r" * 250, "运行-1"],
)
def test_the_id_is_a_valid_firestore_document_id(run_id):
    document_id = event_id(DAG_ID, run_id, FP_A)
    assert document_id and "/" not in document_id and document_id not in {".", ".."}
    assert not (document_id.startswith("__") and document_id.endswith("__"))
    assert len(document_id.encode()) <= 1500


# --- firestore_size: Firestore's documented storage sizes ------------------------------------

# fmt: off
SIZES = [
    ("", 1), ("a", 2), ("task", 5), ("é", 3), ("数据", 7), ("🚀", 5), ("x" * 500, 501),
    (0, 8), (-(2**63), 8), (2**63 - 1, 8), (3.14, 8), (float("inf"), 8), (True, 1), (False, 1), (None, 1),
    (datetime(2020, 1, 1, tzinfo=UTC), 8), (b"\x00\x01\x02", 3), ([], 0), ({}, 0), (["red", "blue"], 4 + 5),
    ([1, 2.5, None, True], 8 + 8 + 1 + 1), ({"a": 1}, 2 + 8),
    ({"type": "Personal", "done": False, "priority": 1}, (5 + 9) + (5 + 1) + (9 + 8)),
    ({"ids": ["b1", "b2"], "n": {"x": None}}, (4 + 3 + 3) + (2 + (2 + 1))),
    ([{"batch_id": "b1", "was_stalled": True}], (9 + 3) + (12 + 1)),
]
# fmt: on


@pytest.mark.parametrize(("value", "size"), SIZES, ids=lambda v: repr(v)[:20])
def test_sizes_follow_firestore_arrays_sum_their_elements_and_maps_their_keys_and_values(value, size):
    assert firestore_size(value) == size


# --- build_event ------------------------------------------------------------------------------


def test_the_event_has_every_documented_field_with_its_value():
    results = [stalled("b1", completion_pct=95.0), stalled("b2", minutes_since_progress=31)]
    document = event(summary_of(results, checked=40))
    assert document["timestamp"] is SERVER_TIMESTAMP and document["truncated"] is False
    expected = {"expire_at": EXPIRE_AT, "stalled_count": 2, "batch_ids": ["b1", "b2"], "results": results}
    expected |= {"batches_checked": 40, "dag_id": DAG_ID, "run_id": RUN_ID}
    assert {key: document[key] for key in expected | PARAMS} == expected | PARAMS
    assert event(summary_of(results, truncated=True))["truncated"] is True, "a truncated summary stays so"


LONG = 500


@pytest.mark.parametrize(
    "results",
    [
        [stalled(f"{i:05d}" + "x" * (LONG - 5), completion_pct=91.0) for i in range(10_000)],
        [stalled(f"{i:05d}" + "🚀" * (LONG - 5)) for i in range(10_000)],
        [stalled(f"b{i}", log="数据" * 5_000) for i in range(2_000)],
        [stalled("huge", log="z" * 2_000_000)],
        [stalled("x" * 1_100_000)],
        # Tiny items fill the budget to the byte, so the margin for the document's name must hold.
        [stalled(f"{i:06d}") for i in range(200_000)],
    ],
    ids=["10k-long-ascii", "10k-long-emoji", "big-results", "one-giant-result", "one-giant-id", "200k-tiny"],
)
def test_any_summary_fits_firestores_document_limit_with_a_true_count(results):
    document = event(summary_of(results))
    assert stored_size(document, event_id(DAG_ID, RUN_ID, FP_A)) < FIRESTORE_MAX_DOCUMENT_BYTES
    assert document["stalled_count"] == len(results)
    assert document["truncated"] is True
    assert document["batch_ids"] == [r["batch_id"] for r in results][: len(document["batch_ids"])]
    assert document["results"] == results[: len(document["results"])]


def test_batch_ids_are_kept_before_full_results_and_when_room_is_short_full_results_are_dropped_first():
    results = [stalled(f"b{i:03d}", log="z" * 1_000) for i in range(100)]
    whole = event(summary_of(results), max_bytes=10**9)
    ids_only_size = firestore_size({**whole, "results": []})
    one_result = firestore_size(results[0])
    assert one_result > firestore_size(whole["batch_ids"])
    # Room for every id and one result, or (results first) for two results and not every id.
    document = event(summary_of(results), max_bytes=ids_only_size + 2 * one_result - 1)
    assert document["batch_ids"] == [r["batch_id"] for r in results]
    assert document["results"] == results[:1]
    assert document["truncated"] is True
    empty_size = firestore_size(event(summary_of([])))
    document = event(summary_of(results), max_bytes=empty_size + 5 * 5)
    assert document["results"] == []
    assert document["batch_ids"] == ["b000", "b001", "b002", "b003", "b004"]
    assert document["truncated"] is True
    assert document["stalled_count"] == 100


def test_an_event_that_fits_is_whole_and_not_truncated():
    results = [stalled(f"b{i}", completion_pct=92.5) for i in range(500)]
    document = event(summary_of(results))
    assert document["batch_ids"] == [r["batch_id"] for r in results]
    assert document["results"] == results
    assert document["truncated"] is False


# --- window_start -----------------------------------------------------------------------------

IST, NEW_YORK = timezone(timedelta(hours=5, minutes=30)), ZoneInfo("America/New_York")


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


@pytest.mark.parametrize(
    ("run_after", "minutes", "expected"),
    [
        (utc(2020, 3, 1, 10, 5), 5, utc(2020, 3, 1, 10, 0)),
        (utc(2020, 3, 1, 10, 5), 60, utc(2020, 3, 1, 9, 5)),
        (utc(2020, 1, 1, 0, 10), 30, utc(2019, 12, 31, 23, 40)),
        (utc(2020, 3, 1, 10, 5), 0, utc(2020, 3, 1, 10, 5)),
        (datetime(2020, 3, 1, 15, 35, tzinfo=IST), 5, utc(2020, 3, 1, 10, 0)),
        # 03:10 CEST is 01:10 UTC, right after the spring-forward gap: an hour back is 00:10 UTC.
        (datetime(2020, 3, 29, 3, 10, tzinfo=ZoneInfo("Europe/Berlin")), 60, utc(2020, 3, 29, 0, 10)),
        # 01:30 EST on the fall-back night (second occurrence) is 06:30 UTC.
        (datetime(2020, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK), 45, utc(2020, 11, 1, 5, 45)),
    ],
    ids=["5-min", "1-hour", "over-new-year", "zero", "ist-offset", "dst-spring-forward", "dst-fall-back"],
)
def test_the_window_starts_the_given_minutes_before_the_run(run_after, minutes, expected):
    start = window_start(run_after, minutes)
    assert start.utcoffset() is not None
    assert start == expected
    assert run_after.astimezone(UTC) - start.astimezone(UTC) == timedelta(minutes=minutes)


@pytest.mark.parametrize(
    "run_after",
    [datetime(2020, 3, 1, 10, 5), datetime(2020, 3, 1, 10, 5, tzinfo=NoOffset())],
    ids=["no-tzinfo", "tzinfo-without-offset"],
)
def test_a_naive_run_time_is_refused(run_after):
    with pytest.raises(ValueError, match="timezone-aware"):
        window_start(run_after, 5)


# --- double_recorded --------------------------------------------------------------------------

RUN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=14)


def dag_event(batch_ids, at=RUN):
    return StoredEvent("dag", at, list(batch_ids), "stalled_batch_cleanup")


# fmt: off
COPIES = {  # a coordinator event: seconds after the DAG's run, its batches, and whether it is a copy
    "seconds-after": (5, ["b2", "b1"], True), "just-inside-timeout": (13 * 60 + 59, ["b1", "b2"], True),
    "same-instant": (0, ["b1", "b2"], True), "at-timeout": (TIMEOUT.total_seconds(), ["b1", "b2"], False),
    "before": (-1, ["b1", "b2"], False), "fewer": (5, ["b1"], False), "more": (5, ["b1", "b2", "b3"], False),
}
# fmt: on


@pytest.mark.parametrize(("seconds", "batch_ids", "twice"), COPIES.values(), ids=list(COPIES))
def test_a_coordinator_copy_is_the_same_batches_written_within_the_runs_lifetime(seconds, batch_ids, twice):
    legacy = StoredEvent("copy", RUN + timedelta(seconds=seconds), batch_ids)
    assert double_recorded([dag_event(["b1", "b2"]), legacy], TIMEOUT) == ({"copy"} if twice else set())


def test_only_coordinator_events_are_copies_and_the_dags_own_never_are():
    again = StoredEvent("dag-2", RUN + timedelta(seconds=5), ["b1"], "stalled_batch_cleanup")
    alone = StoredEvent("legacy", RUN + timedelta(seconds=5), ["b9"])
    assert double_recorded([dag_event(["b1"]), again, alone], TIMEOUT) == set()


# --- run records ------------------------------------------------------------------------------

RUN_AFTER = datetime(2020, 3, 1, 10, 5, 30, 250_000, tzinfo=UTC)


def test_the_run_record_has_every_documented_field_and_expires_90_days_after_its_run():
    record = RunRecord(RUN_AFTER, 40, 2, kind="alert", severity="WARNING", dag_id=DAG_ID)
    document_id, document = run_document(record, run_id=RUN_ID)
    assert (
        document_id
        == "stalled_batch_cleanup-20200301T100530Z-" + hashlib.sha256(RUN_ID.encode()).hexdigest()[:8]
    )
    assert document == {
        "dag_id": DAG_ID,
        "run_id": RUN_ID,
        "run_after": RUN_AFTER,
        "batches_checked": 40,
        "stalled_count": 2,
        "kind": "alert",
        "severity": "WARNING",
        "expire_at": datetime(2020, 5, 30, 10, 5, 30, 250_000, tzinfo=UTC),
    }
    assert stored_run(document) == record, "what is written reads back as the same record"


@pytest.mark.parametrize(
    ("dag_id", "run_id", "run_after"),
    [
        (DAG_ID, "manual__2020-03-01T10:05:30+00:00", RUN_AFTER),
        (DAG_ID, RUN_ID, RUN_AFTER + timedelta(seconds=1)),
        ("other_dag", RUN_ID, RUN_AFTER),
    ],
    ids=["another-run-at-the-same-second", "another-time", "another-dag"],
)
def test_the_same_run_gives_the_same_record_id_and_another_run_time_or_dag_another(dag_id, run_id, run_after):
    first, _ = run_document(RunRecord(RUN_AFTER, 1, 0, dag_id=DAG_ID), run_id=RUN_ID)
    again, _ = run_document(RunRecord(RUN_AFTER, 9, 3, kind="alert", dag_id=DAG_ID), run_id=RUN_ID)
    other, _ = run_document(RunRecord(run_after, 1, 0, dag_id=dag_id), run_id=run_id)
    assert first == again != other


def test_the_record_id_is_the_runs_time_in_utc_whatever_its_zone():
    new_york = RUN_AFTER.astimezone(ZoneInfo("America/New_York"))
    document_id, document = run_document(RunRecord(new_york, 1, 0, dag_id=DAG_ID), run_id=RUN_ID)
    assert "-20200301T100530Z-" in document_id and document["run_after"].utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="run_after must be timezone-aware"):
        run_document(RunRecord(RUN_AFTER.replace(tzinfo=None), 1, 0, dag_id=DAG_ID), run_id=RUN_ID)
    with pytest.raises(ValueError, match="needs its dag_id"):
        run_document(RunRecord(RUN_AFTER, 1, 0), run_id=RUN_ID)


@pytest.mark.parametrize(
    "bad",
    [
        {"run_after": RUN_AFTER.isoformat()},
        {"batches_checked": "40"},
        {"stalled_count": -1},
        {"stalled_count": True},
        {"kind": None},
        {"severity": 2},
        {"run_after": None},
    ],
    ids=["string-time", "string-count", "negative", "bool", "no-kind", "number-severity", "no-time"],
)
def test_a_stored_record_with_a_wrong_field_reads_as_none(bad):
    good = {"run_after": RUN_AFTER, "batches_checked": 40, "stalled_count": 2, "kind": "none"}
    assert stored_run(good) == RunRecord(RUN_AFTER, 40, 2)
    assert stored_run({**good, **bad}) is None


def test_every_kind_but_test_is_an_evaluation():
    assert sorted(EVALUATED_KINDS) == sorted(kind.value for kind in Kind if kind is not Kind.TEST)
