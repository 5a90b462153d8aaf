"""Bounded Firestore reads for the history page (schema: docs/firestore-schema.md).

Totals are aggregation queries (no document is read). Everything else is bounded by the window
and a limit, and reads only the fields the page shows, whatever else the documents hold.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from batch_cleanup.hooks.firestore import INCIDENT_COLLECTION, STATE_COLLECTION, FirestoreHook
from batch_cleanup.names import EVENT_COLLECTION, RUN_COLLECTION
from batch_cleanup.ports import RunRecord, StoredEvent, stored_run
from batch_cleanup.ui.history import Event, Sums

log = logging.getLogger(__name__)

EVENT_FIELDS = ["timestamp", "stalled_count", "batches_checked", "batch_ids"]
# What the DAG's window reads of an event (`FirestoreHook.events_in`), for the backtest.
WINDOW_FIELDS = ["timestamp", "batch_ids", "dag_id"]
STATE_FIELDS = [
    *("open", "severity", "peak_severity", "opened_at", "last_count", "peak_count"),
    *("last_notified_at", "last_notified_kind", "muted", "updated_at"),
]
INCIDENT_FIELDS = [
    *("dag_id", "opened_at", "closed_at", "severity", "peak_severity", "peak_count"),
    *("total_cleanups", "batch_ids", "notifications", "label"),
]
# What the alert-quality figures read of an incident (`quality.figures`), labels included.
QUALITY_FIELDS = [
    *("dag_id", "opened_at", "closed_at", "severity", "peak_severity"),
    *("label", "first_reaction_at"),
]
# What the backtest's score reads of an incident: when it was open, and how people labelled it.
LABELLED_FIELDS = ["dag_id", "opened_at", "closed_at", "label"]
RUN_FIELDS = ["run_after", "batches_checked", "stalled_count", "kind", "severity", "dag_id"]
# 30 days at one cleanup per 15-minute run is 2,880 events; manual runs and cleared runs add a few.
MAX_EVENTS = 5_000
MAX_INCIDENTS = 500
# 90 days (the longest range of the patterns) at one run per 15 minutes is 8,640 run records; the
# backtest's 30 days and its rule's longest window before them, about 2,900.
MAX_RUNS = 10_000
# A UTC day's run records are settled once the day ended this long before the range's end: each of
# its runs has finished (a run times out after 14 minutes) and written its record.
SETTLED = timedelta(hours=2)
# This process forgets a settled day's run records when no read used them for this long.
KEEP_SECONDS = 3600.0
DAY = timedelta(days=1)
# The page's Firestore calls (transactions' too) stop retrying a Firestore that refuses or fails
# them after RETRY_SECONDS, and give up on one that does not answer after CALL_SECONDS, so that
# the page says "Firestore is down" within seconds (Google's defaults: 60 s to 300 s each). A
# read still streaming is not cut by the retry's limit; 90 days of run records take 2-4 s.
RETRY_SECONDS = 5.0
CALL_SECONDS = 30.0


@dataclass
class _Day:
    """A settled day's run records as read: this DAG's, and the totals of every DAG's, which
    Firestore's aggregation gives again (`HistoryStore._sums`) as long as nothing changed."""

    used_at: float
    runs: list[RunRecord]
    records: int = 0
    checked: int | float = 0
    stalled: int | float = 0


class HistoryStore:
    """Reads of the cleanup history of one DAG; the Firestore client is built on first use and kept."""

    def __init__(
        self,
        *,
        dag_id: str,
        gcp_conn_id: str = "google_cloud_default",
        max_events: int = MAX_EVENTS,
        max_runs: int = MAX_RUNS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dag_id = dag_id
        self.gcp_conn_id = gcp_conn_id
        self.max_events = max_events
        self.max_runs = max_runs
        self.clock = clock
        # Settled days' run records, by the day's midnight (UTC).
        self._days: dict[datetime, _Day] = {}
        self._days_lock = threading.Lock()

    @cached_property
    def client(self) -> firestore.Client:
        return _bounded(FirestoreHook(gcp_conn_id=self.gcp_conn_id).client)

    def _between(self, collection: str, field: str, start: datetime, end: datetime) -> firestore.Query:
        return (
            self.client.collection(collection)
            .where(filter=FieldFilter(field, ">", start))
            .where(filter=FieldFilter(field, "<=", end))
        )

    def totals(self, start: datetime, end: datetime) -> Sums:
        """Cleanups, batches auto-completed and batches checked in `(start, end]`: one aggregation query."""
        return Sums(*map(int, self._sums(EVENT_COLLECTION, "timestamp", start, end)))

    def _sums(
        self, collection: str, field: str, start: datetime, end: datetime
    ) -> tuple[int, int | float, int | float]:
        """How many documents of `collection` (every DAG's) have `field` in `(start, end]`, their
        Σ stalled_count and Σ batches_checked: one aggregation query, no document read."""
        query = (
            self._between(collection, field, start, end)
            .count(alias="count")
            .sum("stalled_count", alias="stalled")
            .sum("batches_checked", alias="checked")
        )
        [results] = query.get()
        values = {result.alias: result.value or 0 for result in results}
        return values.get("count", 0), values.get("stalled", 0), values.get("checked", 0)

    def events(self, start: datetime, end: datetime, limit: int | None = None) -> tuple[list[Event], bool]:
        """The newest `limit` events in `(start, end]` (four fields each), and whether more were left out."""
        limit = limit or self.max_events
        query = self._newest(start, end, EVENT_FIELDS, limit)
        events = [_event(snapshot.to_dict()) for snapshot in query.stream()]
        return events, len(events) >= limit

    def window_events(
        self, start: datetime, end: datetime, limit: int | None = None
    ) -> tuple[list[StoredEvent], bool]:
        """The newest `limit` events in `(start, end]` as the DAG's window reads them (id, time,
        batches, who wrote it), for the backtest; and whether more were left out."""
        limit = limit or self.max_events
        found = ((s.id, s.to_dict()) for s in self._newest(start, end, WINDOW_FIELDS, limit).stream())
        events = [
            StoredEvent(i, d["timestamp"], list(d.get("batch_ids") or []), d.get("dag_id")) for i, d in found
        ]
        return events, len(events) >= limit

    def _newest(self, start: datetime, end: datetime, fields: list[str], limit: int) -> firestore.Query:
        """Events in `(start, end]`, newest first, `fields` only, at most `limit`."""
        return (
            self._between(EVENT_COLLECTION, "timestamp", start, end)
            .order_by("timestamp", direction=firestore.Query.DESCENDING)
            .select(fields)
            .limit(limit)
        )

    def run_event(self, run_id: str) -> Event | None:
        """What one DAG run cleaned up (a cleared run may have written more than one event)."""
        query = (
            self.client.collection(EVENT_COLLECTION)
            .where(filter=FieldFilter("run_id", "==", run_id))
            .select(EVENT_FIELDS)
            .limit(10)
        )
        events = [_event(snapshot.to_dict()) for snapshot in query.stream()]
        if not events:
            return None
        return Event(
            timestamp=max(event.timestamp for event in events),
            stalled_count=sum(event.stalled_count for event in events),
            batches_checked=max(event.batches_checked for event in events),
            batch_ids=tuple(dict.fromkeys(b for event in events for b in event.batch_ids)),
        )

    def incidents(
        self,
        start: datetime,
        end: datetime,
        fields: Sequence[str] = INCIDENT_FIELDS,
        *,
        opened_only: bool = False,
        limit: int = MAX_INCIDENTS,
    ) -> tuple[list[dict[str, Any]], bool]:
        """The `fields` (and `id`) of this DAG's incidents opened in `(start, end]`, newest first,
        then, unless `opened_only`, of those that overlap it otherwise (closed in it, or still open);
        and whether a query's `limit` left some out.

        One single-field query for each, so Firestore needs no composite index.
        """
        queries = [
            self._between(INCIDENT_COLLECTION, "opened_at", start, end)
            .order_by("opened_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        ]
        if not opened_only:
            incidents = self.client.collection(INCIDENT_COLLECTION)
            queries += [
                incidents.where(filter=FieldFilter("closed_at", ">", start)).limit(limit),
                incidents.where(filter=FieldFilter("closed_at", "==", None)).limit(limit),
            ]
        found: dict[str, dict[str, Any]] = {}
        truncated = False
        for query in queries:
            snapshots = list(query.select(fields).stream())
            truncated |= len(snapshots) >= limit
            for snapshot in snapshots:
                data = snapshot.to_dict()
                if data.get("dag_id", self.dag_id) == self.dag_id and data.get("opened_at"):
                    found[snapshot.id] = {**data, "id": snapshot.id}
        return list(found.values()), truncated

    def set_label(self, incident_id: str, label: dict[str, Any]) -> bool:
        """Store a label set on the page on this DAG's incident `incident_id` (whatever its reactions
        say: a page label wins); False when there is no such incident."""
        ref = self.client.collection(INCIDENT_COLLECTION).document(incident_id)

        @firestore.transactional
        def store(transaction: firestore.Transaction) -> bool:
            snapshot = ref.get(["dag_id"], transaction=transaction)
            if not snapshot.exists or (snapshot.to_dict() or {}).get("dag_id", self.dag_id) != self.dag_id:
                return False
            transaction.update(ref, {"label": label})
            return True

        return store(self.client.transaction())

    def runs(self, start: datetime, end: datetime) -> tuple[list[RunRecord], bool]:
        """This DAG's run records with `run_after` in `(start, end]`, oldest first (the rate's, the
        patterns' and the backtest's): the newest `max_runs` of them, and whether more were left out.

        Reading 8,640 records (90 days) takes seconds, most of it the client building snapshots, so
        this process keeps the records of whole UTC days that are settled (SETTLED) and reads them
        again only when Firestore's totals for those days (one aggregation query) are no longer
        what was read; the newest hours are read every time.
        """
        settled, first = _midnight(end - SETTLED), _midnight(start)
        days = [first + i * DAY for i in range(max((settled - first) // DAY, 0))]
        found, truncated = self._settled_runs(days) if days else ([], False)
        newest, cut = self._read_runs(max(start, first + len(days) * DAY), end)
        runs = sorted((r for r in found + newest if start < r.run_after <= end), key=lambda r: r.run_after)
        return runs[-self.max_runs :], truncated or cut or len(runs) > self.max_runs

    def _settled_runs(self, days: list[datetime]) -> tuple[list[RunRecord], bool]:
        """The run records of the settled `days`: those kept while the days' totals stand, else all
        read in one query (and kept, unless cut by the limit)."""
        start, end = days[0], days[-1] + DAY
        now = self.clock()
        with self._days_lock:
            self._days = {day: kept for day, kept in self._days.items() if now - kept.used_at <= KEEP_SECONDS}
            kept = [self._days[day] for day in days if day in self._days]
        sums = (sum(k.records for k in kept), sum(k.stalled for k in kept), sum(k.checked for k in kept))
        if len(kept) == len(days) and self._sums(RUN_COLLECTION, "run_after", start, end) == sums:
            for day in kept:
                day.used_at = now
            return [run for day in kept for run in day.runs], False
        found, truncated = self._query_runs(start, end)
        runs = self._mine(found)
        if not truncated:
            by_day = {day: _Day(now, []) for day in days}
            for data in found:  # day D holds (D, D + 1 day]
                day = by_day[_midnight(data["run_after"] - timedelta(microseconds=1))]
                day.records += 1
                day.checked += _number(data.get("batches_checked"))
                day.stalled += _number(data.get("stalled_count"))
            for run in runs:
                by_day[_midnight(run.run_after - timedelta(microseconds=1))].runs.append(run)
            with self._days_lock:
                self._days |= by_day
        return runs, truncated

    def _read_runs(self, start: datetime, end: datetime) -> tuple[list[RunRecord], bool]:
        found, truncated = self._query_runs(start, end)
        return self._mine(found), truncated

    def _query_runs(self, start: datetime, end: datetime) -> tuple[list[dict[str, Any]], bool]:
        """The records of `(start, end]` (every DAG's), newest first, and whether the limit cut them."""
        query = (
            self._between(RUN_COLLECTION, "run_after", start, end)
            .order_by("run_after", direction=firestore.Query.DESCENDING)
            .select(RUN_FIELDS)
            .limit(self.max_runs)
        )
        found = [snapshot.to_dict() for snapshot in query.stream()]
        return found, len(found) >= self.max_runs

    def _mine(self, found: list[dict[str, Any]]) -> list[RunRecord]:
        """This DAG's records; other DAGs' are left out here rather than by a second filter, which
        would need a composite index. One that `ports.stored_run` cannot read (its time, counts,
        kind) is left out and logged."""
        mine = [data for data in found if data.get("dag_id", self.dag_id) == self.dag_id]
        runs = [run for run in map(stored_run, mine) if run is not None]
        if len(runs) < len(mine):
            log.warning(
                "Batch cleanup history: %d of %d %s records have no time, counts or kind that can be read; "
                "the rate, the patterns and the backtest leave them out",
                len(mine) - len(runs), len(mine), RUN_COLLECTION,
            )  # fmt: skip
        return runs

    def state(self) -> dict[str, Any]:
        """The alert state of the DAG; empty when no run has written one yet."""
        ref = self.client.collection(STATE_COLLECTION).document(self.dag_id)
        return ref.get(field_paths=STATE_FIELDS).to_dict() or {}


def _event(data: dict[str, Any]) -> Event:
    return Event(
        timestamp=data["timestamp"],
        stalled_count=int(data.get("stalled_count") or 0),
        batches_checked=int(data.get("batches_checked") or 0),
        batch_ids=tuple(data.get("batch_ids") or ()),
    )


def _number(value: Any) -> int | float:
    """What Firestore's `sum()` adds of a field: numbers, not text or booleans."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _bounded(client: firestore.Client) -> firestore.Client:
    """`client` with each call's default retry and timeout held to RETRY_SECONDS and CALL_SECONDS.

    The client has no public setting for them, and a transaction's begin, commit and rollback take
    no argument for them, so the GAPIC transport's defaults are changed (each call keeps its own
    retry predicate).
    """
    try:
        for call in client._firestore_api._transport._wrapped_methods.values():
            if call._retry is not None:
                call._retry = call._retry.with_timeout(RETRY_SECONDS)
            call._timeout = CALL_SECONDS
    except AttributeError as err:  # another google-cloud-firestore: the page works, answering slower
        log.warning(
            "The history page's Firestore calls keep Google's own limits (60 s to 300 s) in this "
            "google-cloud-firestore: %s. A Firestore outage is then said after those.",
            err,
        )
    return client


def _midnight(moment: datetime) -> datetime:
    """The start of `moment`'s UTC day."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
