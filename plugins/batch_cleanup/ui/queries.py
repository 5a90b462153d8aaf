"""Bounded Firestore reads for the history page (schema: docs/firestore-schema.md).

Totals are aggregation queries (no document is read). Everything else is bounded by the window
and a limit, and reads only the fields the page shows, whatever else the documents hold.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from batch_cleanup.hooks.firestore import INCIDENT_COLLECTION, STATE_COLLECTION, FirestoreHook
from batch_cleanup.names import EVENT_COLLECTION, RUN_COLLECTION
from batch_cleanup.ports import RunRecord, StoredEvent
from batch_cleanup.ui.history import Event, Incident, Labelled, Sums

EVENT_FIELDS = ["timestamp", "stalled_count", "batches_checked", "batch_ids"]
# What the DAG's window reads of an event (`FirestoreHook.events_in`), for the backtest.
WINDOW_FIELDS = ["timestamp", "batch_ids", "dag_id"]
STATE_FIELDS = [
    *("open", "severity", "peak_severity", "opened_at", "last_count", "peak_count"),
    *("last_notified_at", "last_notified_kind", "muted", "updated_at"),
]
INCIDENT_FIELDS = [
    *("dag_id", "opened_at", "closed_at", "severity", "peak_severity", "peak_count"),
    *("total_cleanups", "batch_ids", "notifications"),
]
# What the backtest's score reads of an incident: when it was open, and how people labelled it.
LABELLED_FIELDS = ["dag_id", "opened_at", "closed_at", "label"]
# What the backtest's volume-aware rule reads of a run record (`ports.RunRecord`).
RUN_FIELDS = list(RunRecord._fields)
# 30 days at one cleanup per 15-minute run is 2,880 events; manual runs and cleared runs add a few.
MAX_EVENTS = 5_000
MAX_INCIDENTS = 500
# 30 days of runs, and the rule's longest window before them, are about 2,900 run records.
MAX_RUN_RECORDS = 5_000


class HistoryStore:
    """Reads of the cleanup history of one DAG; the Firestore client is built on first use and kept."""

    def __init__(
        self, *, dag_id: str, gcp_conn_id: str = "google_cloud_default", max_events: int = MAX_EVENTS
    ) -> None:
        self.dag_id = dag_id
        self.gcp_conn_id = gcp_conn_id
        self.max_events = max_events

    @cached_property
    def client(self) -> firestore.Client:
        return FirestoreHook(gcp_conn_id=self.gcp_conn_id).client

    def _between(self, collection: str, field: str, start: datetime, end: datetime) -> firestore.Query:
        return (
            self.client.collection(collection)
            .where(filter=FieldFilter(field, ">", start))
            .where(filter=FieldFilter(field, "<=", end))
        )

    def totals(self, start: datetime, end: datetime) -> Sums:
        """Cleanups, batches auto-completed and batches checked in `(start, end]`: one aggregation query."""
        query = (
            self._between(EVENT_COLLECTION, "timestamp", start, end)
            .count(alias="cleanups")
            .sum("stalled_count", alias="stalled")
            .sum("batches_checked", alias="checked")
        )
        [results] = query.get()
        values = {result.alias: int(result.value or 0) for result in results}
        return Sums(values.get("cleanups", 0), values.get("stalled", 0), values.get("checked", 0))

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

    def incidents(self, start: datetime, end: datetime, limit: int = MAX_INCIDENTS) -> list[Incident]:
        """Incidents of this DAG that overlap `(start, end]`: opened in it, closed in it, or still open."""
        found = self._overlapping(start, end, INCIDENT_FIELDS, limit)
        return [Incident.from_document(doc_id, data) for doc_id, data in found.items()]

    def labelled_incidents(
        self, start: datetime, end: datetime, limit: int = MAX_INCIDENTS
    ) -> list[Labelled]:
        """Incidents of this DAG that overlap `(start, end]` and carry a label (real, noise or
        disputed), for the backtest's score."""
        found = self._overlapping(start, end, LABELLED_FIELDS, limit)
        return [
            labelled for doc_id, data in found.items() if (labelled := Labelled.from_document(doc_id, data))
        ]

    def _overlapping(
        self, start: datetime, end: datetime, fields: list[str], limit: int
    ) -> dict[str, dict[str, Any]]:
        """The `fields` of this DAG's incidents that overlap `(start, end]`, by id.

        Three single-field queries, so Firestore needs no composite index.
        """
        incidents = self.client.collection(INCIDENT_COLLECTION)
        queries = [
            self._between(INCIDENT_COLLECTION, "opened_at", start, end)
            .order_by("opened_at", direction=firestore.Query.DESCENDING)
            .limit(limit),
            incidents.where(filter=FieldFilter("closed_at", ">", start)).limit(limit),
            incidents.where(filter=FieldFilter("closed_at", "==", None)).limit(limit),
        ]
        found: dict[str, dict[str, Any]] = {}
        for query in queries:
            for snapshot in query.select(fields).stream():
                data = snapshot.to_dict()
                if data.get("dag_id", self.dag_id) == self.dag_id and data.get("opened_at"):
                    found[snapshot.id] = data
        return found

    def run_records(
        self, start: datetime, end: datetime, limit: int = MAX_RUN_RECORDS
    ) -> tuple[list[RunRecord], bool]:
        """This DAG's run records with `start` < `run_after` ≤ `end`, oldest first (the newest
        `limit`), for the backtest's volume-aware rule; and whether more were left out."""
        query = (
            self._between(RUN_COLLECTION, "run_after", start, end)
            .order_by("run_after", direction=firestore.Query.DESCENDING)
            .select(RUN_FIELDS)
            .limit(limit)
        )
        documents = [snapshot.to_dict() for snapshot in query.stream()]
        records = [
            RunRecord(**{name: d[name] for name in RUN_FIELDS if name in d})
            for d in reversed(documents)
            if d.get("dag_id", self.dag_id) == self.dag_id
        ]
        return records, len(documents) >= limit

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
