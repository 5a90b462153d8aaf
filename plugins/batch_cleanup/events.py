"""What the DAG writes to Firestore: cleanup events (their id, fields, size, and the window) and the
record of each run."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from batch_cleanup.cleanup import take_within
from batch_cleanup.names import RUN_RETENTION_DAYS
from batch_cleanup.ports import RunRecord, StoredEvent
from batch_cleanup.text import as_utc

# Firestore refuses documents over 1 MiB; keep a margin for the fields the server adds.
MAX_DOCUMENT_BYTES = 1_048_576 - 16_384


def event_id(dag_id: str, run_id: str, fingerprint: str) -> str:
    """The document id of one cleanup: the same run and the same stalled set give the same id.

    A retry that sees the coordinator's replayed answer maps onto the first document; a cleared
    run that cleaned up other batches gets an id of its own.
    """
    return hashlib.sha256(f"{dag_id}\n{run_id}\n{fingerprint}".encode()).hexdigest()[:40]


def firestore_size(value: Any) -> int:
    """Storage size of a value by Firestore's rules (strings are UTF-8 bytes + 1, numbers 8, ...)."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float | datetime):
        return 8
    if isinstance(value, str):
        return len(value.encode()) + 1
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, list | tuple):
        return sum(firestore_size(item) for item in value)
    if isinstance(value, dict):
        return sum(firestore_size(str(key)) + firestore_size(item) for key, item in value.items())
    # Server-timestamp sentinels and other client objects are stored as timestamps.
    return 8


def build_event(
    summary: dict[str, Any],
    *,
    dag_id: str,
    run_id: str,
    params: dict[str, Any],
    expire_at: datetime,
    timestamp: Any,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> dict[str, Any]:
    """The event document; lists are cut to fit `max_bytes`, and `truncated` says so.

    `stalled_count` always keeps the true count. `timestamp` is the run's time (`run_after`):
    the window counts runs, not write times, so the event of the run exactly one window ago,
    written seconds after that run started, falls outside it.
    """
    document = {
        "timestamp": timestamp,
        "expire_at": expire_at,
        "stalled_count": summary["stalled_count"],
        "batches_checked": summary["batches_checked"],
        "batches_completed": summary["batches_completed"],
        "batch_ids": [],
        "results": [],
        "truncated": summary["truncated"],
        "dag_id": dag_id,
        "run_id": run_id,
        "stall_threshold_minutes": params["stall_threshold_minutes"],
        "min_completion_pct": params["min_completion_pct"],
    }
    budget = max_bytes - firestore_size(document)
    # Ids come before full results: the ids are what the alert and the history need.
    for field, items in (
        ("batch_ids", summary["stalled_batch_ids"]),
        ("results", summary["stalled_results"]),
    ):
        kept, used = take_within(items, budget, firestore_size)
        document[field] = kept
        budget -= used
        if len(kept) < len(items):
            document["truncated"] = True
    return document


def double_recorded(events: Iterable[StoredEvent], within: timedelta) -> set[str]:
    """Ids of events the coordinator wrote for a cleanup the DAG recorded too.

    The coordinator's own tracking (before the cutover, see docs/cutover.md) writes the same
    batches when the DAG's call auto-completes them, stamped with its write time: after the DAG's
    event (stamped with the run's time) and before that run's timeout.
    """
    events = list(events)
    recorded = [(e.timestamp, frozenset(e.batch_ids)) for e in events if e.dag_id]
    return {
        e.id
        for e in events
        if not e.dag_id
        and any(
            at <= e.timestamp < at + within and batches == frozenset(e.batch_ids) for at, batches in recorded
        )
    }


def window_start(run_after: datetime, window_minutes: int) -> datetime:
    """Start of the counting window, exclusive: events after it, up to the run's time, count.

    Taken from the run's time, never now().
    """
    # In UTC: arithmetic within a zone is wall-clock time, which a DST change shifts.
    return as_utc(run_after, "run_after") - timedelta(minutes=window_minutes)


def run_document(record: RunRecord, *, run_id: str) -> tuple[str, dict[str, Any]]:
    """The id and fields of the run's record in `batch_cleanup_runs` (the hook adds `recorded_at`).

    The id is the DAG, the run's time and a hash of the run id: a retry or a re-run of the run
    writes the same document, and one DAG's ids sort as its runs. It expires `RUN_RETENTION_DAYS`
    after the run.
    """
    if not record.dag_id:
        raise ValueError(f"a run record needs its dag_id, got {record.dag_id!r}")
    at = as_utc(record.run_after, "run_after")
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    document = {
        **record._asdict(),
        "run_after": at,
        "run_id": run_id,
        "expire_at": at + timedelta(days=RUN_RETENTION_DAYS),
    }
    return f"{record.dag_id}-{at:%Y%m%dT%H%M%SZ}-{digest}", document
