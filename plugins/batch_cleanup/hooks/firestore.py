"""Cleanup events and the alert state in Firestore; credentials and project from a Google Cloud connection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from batch_cleanup.delivery import thread_posted
from batch_cleanup.events import COLLECTION, StoredEvent

STATE_COLLECTION = "batch_cleanup_alert_state"
INCIDENT_COLLECTION = "batch_cleanup_incidents"
# A run holds the right to post for this long; a run that died holding it blocks no one for longer.
LEASE_SECONDS = 600


class FirestoreHook(GoogleBaseHook):
    """Writes and counts `batch_cleanup_events`, and keeps the alert state.

    Credentials and project come from the connection, as for every Google hook; against the
    emulator, the connection's `is_anonymous` extra gives anonymous credentials and Google's client
    follows `FIRESTORE_EMULATOR_HOST` by itself.
    """

    def __init__(
        self,
        *,
        gcp_conn_id: str = "google_cloud_default",
        database: str = "(default)",
        collection: str = COLLECTION,
    ) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id)
        self.database = database
        self.collection = collection

    @cached_property
    def client(self) -> firestore.Client:
        credentials, project = self.get_credentials_and_project_id()
        return firestore.Client(project=project, credentials=credentials, database=self.database)

    def get_conn(self) -> firestore.Client:
        return self.client

    @property
    def events(self) -> firestore.CollectionReference:
        return self.client.collection(self.collection)

    def create_event(self, document_id: str, document: dict[str, Any]) -> bool:
        """Create the event unless it exists; False means an earlier try already wrote it (kept as is).

        `recorded_at` is Firestore's own clock, for the record; the window counts `timestamp`.
        """
        try:
            self.events.document(document_id).create({**document, "recorded_at": firestore.SERVER_TIMESTAMP})
        except AlreadyExists:
            return False
        return True

    def _in_window(self, start: datetime, end: datetime) -> firestore.Query:
        return self.events.where(filter=FieldFilter("timestamp", ">", start)).where(
            filter=FieldFilter("timestamp", "<=", end)
        )

    def count_in(self, start: datetime, end: datetime) -> int:
        """Events with `start` < `timestamp` ≤ `end`: one aggregation, no documents read."""
        [[result]] = self._in_window(start, end).count(alias="n").get()
        return int(result.value)

    def events_in(self, start: datetime, end: datetime, limit: int = 500) -> list[StoredEvent]:
        """The newest `limit` events with `start` < `timestamp` ≤ `end`, newest first.

        Bounded by time and count, and only four fields are read, whatever the collection holds.
        """
        query = (
            self._in_window(start, end)
            .order_by("timestamp", direction=firestore.Query.DESCENDING)
            .select(["timestamp", "batch_ids", "dag_id", "stalled_count"])
            .limit(limit)
        )
        return [
            StoredEvent(
                s.id,
                s.get("timestamp"),
                list(s.get("batch_ids") or []),
                _field(s, "dag_id"),
                _field(s, "stalled_count"),
            )
            for s in query.stream()
        ]

    # --- alert state: one document per DAG; see docs/firestore-schema.md --------------------------

    def _state_ref(self, dag_id: str) -> firestore.DocumentReference:
        return self.client.collection(STATE_COLLECTION).document(dag_id)

    def read_state(self, dag_id: str) -> tuple[dict[str, Any], int]:
        """The stored state (empty when there is none) and its version."""
        snapshot = self._state_ref(dag_id).get()
        data = snapshot.to_dict() or {}
        return data, int(data.get("version", 0))

    def claim_lease(self, dag_id: str, *, run_id: str, version: int, kind: str) -> str | None:
        """Take the right to post a decision made on state `version`; None when taken, else why not.

        In a transaction, so of two runs that decided at once only one posts.
        """
        ref = self._state_ref(dag_id)

        @firestore.transactional
        def claim(transaction: firestore.Transaction) -> str | None:
            conflict = _conflict(
                ref.get(transaction=transaction).to_dict() or {}, run_id=run_id, version=version
            )
            if conflict:
                return conflict
            expires_at = datetime.now(UTC) + timedelta(seconds=LEASE_SECONDS)
            transaction.set(
                ref, {"lease": {"run_id": run_id, "kind": kind, "expires_at": expires_at}}, merge=True
            )
            return None

        return claim(self.client.transaction())

    def release_lease(self, dag_id: str, *, run_id: str) -> None:
        """Give the lease back after a failed post, so the next run may try at once."""
        ref = self._state_ref(dag_id)

        @firestore.transactional
        def release(transaction: firestore.Transaction) -> None:
            lease = (ref.get(transaction=transaction).to_dict() or {}).get("lease")
            if lease and lease["run_id"] == run_id:
                transaction.update(ref, {"lease": None})

        release(self.client.transaction())

    def record_post(self, dag_id: str, *, run_id: str, kind: str, where: dict[str, str]) -> None:
        """Note that this run's message was accepted (and, in bot-token mode, the thread it belongs to),
        so that a retry of the run posts it no second time."""
        self._state_ref(dag_id).set({"posted": {"run_id": run_id, "kind": kind, **where}}, merge=True)

    def save_state(
        self,
        dag_id: str,
        state: dict[str, Any],
        *,
        run_id: str,
        version: int,
        incident: dict[str, Any] | None = None,
    ) -> str | None:
        """Store the state decided on `version` (and the incident's timeline entry); None when saved.

        The run holding the lease saves what it delivered; any other run saves only if no one
        changed the state or holds the lease since it decided.
        """
        ref = self._state_ref(dag_id)
        # Firestore runs the body again when writers collide: it must not change anything it reads.
        timeline = None
        if incident is not None:
            entry = dict(incident)
            timeline = (self.client.collection(INCIDENT_COLLECTION).document(entry.pop("id")), entry)

        @firestore.transactional
        def save(transaction: firestore.Transaction) -> str | None:
            data = ref.get(transaction=transaction).to_dict() or {}
            lease = data.get("lease")
            holder = bool(lease) and lease["run_id"] == run_id
            conflict = None if holder else _conflict(data, run_id=run_id, version=version)
            if conflict:
                return conflict
            stored = {
                **state,
                **(thread_posted(data, run_id) if holder and state.get("open") else {}),
                "version": int(data.get("version", 0)) + 1,
                "lease": None,
                "updated_at": firestore.SERVER_TIMESTAMP,
                "updated_by": run_id,
            }
            transaction.set(ref, stored)
            if timeline is not None:
                transaction.set(*timeline, merge=True)
            return None

        return save(self.client.transaction())


def _field(snapshot: firestore.DocumentSnapshot, name: str) -> Any:
    """A field that events written before the DAG (by the coordinator) do not have."""
    try:
        return snapshot.get(name)
    except KeyError:
        return None


def _conflict(stored: dict[str, Any], *, run_id: str, version: int) -> str | None:
    """Why a run that decided on state `version` may not act on it now; None when it may."""
    if int(stored.get("version", 0)) != version:
        return f"the state changed since this run decided (version {version} → {stored.get('version')})"
    lease = stored.get("lease")
    if lease and lease["run_id"] != run_id and lease["expires_at"] > datetime.now(UTC):
        return f"run {lease['run_id']} is delivering a {lease['kind']} message"
    return None
