"""Cleanup events and the alert state in Firestore; credentials and project from a Google Cloud connection."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, ParamSpec, TypeVar

from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
from google.api_core.exceptions import (
    AlreadyExists,
    DeadlineExceeded,
    GoogleAPIError,
    RetryError,
    ServiceUnavailable,
)
from google.api_core.retry import Retry, if_transient_error
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from batch_cleanup.compat import AirflowException
from batch_cleanup.labels import incident_thread, keep_page_label
from batch_cleanup.names import EVALUATED_KINDS, EVENT_COLLECTION, RUN_COLLECTION
from batch_cleanup.ports import INCIDENT_FIELDS, Carry, Doc, RunRecord, StoredEvent, older_than, stored_run

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

STATE_COLLECTION = "batch_cleanup_alert_state"
INCIDENT_COLLECTION = "batch_cleanup_incidents"
# A run holds the right to post for this long; a run that died holding it blocks no one for longer.
LEASE_SECONDS = 600
# How long a call retries a Firestore that refuses connections: Google's client default, for each call.
RETRY_SECONDS = 60.0
# Events whose `timestamp` is a string: no window query can see them, so a window read names a few.
LOGGED_BAD_TIMESTAMPS = 20
# Before any run record: a lower bound that keeps a query on `run_after` to timestamps (Firestore
# orders strings after them, so a string would come first in a newest-first order).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What labelling reads of an incident (`incidents_to_label`).
LABEL_FIELDS = [
    *("dag_id", "opened_at", "closed_at", "slack_channel", "slack_ts"),
    *("label", "reactions", "first_reaction_at"),
]


class FirestoreUnavailable(AirflowException):
    """Firestore could not be reached, or failed a call, on the hook's connection: the task retries."""


def _names_firestore(method: Callable[P, R]) -> Callable[P, R]:
    """Google's errors ("RetryError: Timeout of 60.0s exceeded") said as what failed: Firestore, on
    which connection and project."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        hook, name = args[0], method.__name__
        try:
            return method(*args, **kwargs)
        # Google's errors, and the ValueError its transactions end with (raised from or while
        # handling one); another error of ours stays what it is, even inside a Google error's handler.
        except (GoogleAPIError, ValueError) as err:
            google = google_error(err)
            if google is None:
                raise
            raise FirestoreUnavailable(f"{hook.where()} {_what_failed(name, err, google)}") from err

    return call


def google_error(err: BaseException | None) -> GoogleAPIError | None:
    """The Google API error `err` is, or was raised from or while handling. A transaction aborted by
    other writers at each attempt is a ValueError raised from the last abort; one that could not
    even begin fails its rollback too, a ValueError raised while handling the begin's RetryError."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, GoogleAPIError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _what_failed(name: str, err: BaseException, google: GoogleAPIError) -> str:
    if isinstance(google, (RetryError, ServiceUnavailable, DeadlineExceeded)):
        # A RetryError's cause says why ("Timeout of 60.0s exceeded" does not).
        return f"is unreachable ({name}): {getattr(google, 'cause', None) or google}"
    if isinstance(err, ValueError):
        return f"gave up {name}: {err} Last: {google}"
    return f"failed {name}: {google}"


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
        collection: str = EVENT_COLLECTION,
        retry_seconds: float = RETRY_SECONDS,
        record_seconds: float = RETRY_SECONDS,
    ) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id)
        self.database = database
        self.collection = collection
        self.retry_seconds = retry_seconds
        self.record_seconds = record_seconds

    def where(self) -> str:
        """Firestore, its connection id and project, for an error message."""
        try:
            project = self.project_id
        except Exception:  # the connection itself may be what is wrong; the id still names it
            project = None
        return f"Firestore (connection {self.gcp_conn_id!r}, project {project!r})"

    def _retry(self, seconds: float | None = None) -> Retry:
        """Retry what a later attempt may not meet (refused connection, 503, 500, 429) for `seconds`."""
        return Retry(
            predicate=if_transient_error, initial=0.25, maximum=4.0, timeout=seconds or self.retry_seconds
        )

    @cached_property
    def client(self) -> firestore.Client:
        credentials, project = self.get_credentials_and_project_id()
        return firestore.Client(project=project, credentials=credentials, database=self.database)

    def get_conn(self) -> firestore.Client:
        return self.client

    @property
    def events(self) -> firestore.CollectionReference:
        return self.client.collection(self.collection)

    @_names_firestore
    def create_event(self, document_id: str, document: dict[str, Any]) -> bool:
        """Create the event unless it exists; False means an earlier try already wrote it (kept as is).

        `recorded_at` is Firestore's own clock, for the record; the window counts `timestamp`.
        """
        try:
            self.events.document(document_id).create(
                {**document, "recorded_at": firestore.SERVER_TIMESTAMP}, retry=self._retry()
            )
        except AlreadyExists:
            return False
        return True

    def _in_window(self, start: datetime, end: datetime) -> firestore.Query:
        return self.events.where(filter=FieldFilter("timestamp", ">", start)).where(
            filter=FieldFilter("timestamp", "<=", end)
        )

    @_names_firestore
    def count_in(self, start: datetime, end: datetime) -> int:
        """Events with `start` < `timestamp` ≤ `end`: one aggregation, no documents read."""
        [[result]] = self._in_window(start, end).count(alias="n").get(retry=self._retry())
        return int(result.value)

    @_names_firestore
    def events_in(self, start: datetime, end: datetime, limit: int = 500) -> list[StoredEvent]:
        """The newest `limit` events with `start` < `timestamp` ≤ `end`, newest first.

        Bounded by time and count, and only four fields are read, whatever the collection holds. An
        event whose `batch_ids` is missing or not a list of ids still counts, with no ids (logged);
        events whose `timestamp` is a string, which no window can hold, are logged by id.
        """
        query = (
            self._in_window(start, end)
            .order_by("timestamp", direction=firestore.Query.DESCENDING)
            .select(["timestamp", "batch_ids", "dag_id", "stalled_count"])
            .limit(limit)
        )
        found = [
            StoredEvent(
                s.id, s.get("timestamp"), _batch_ids(s), _field(s, "dag_id"), _field(s, "stalled_count")
            )
            for s in query.stream(retry=self._retry())
        ]
        self._log_string_timestamps()
        return found

    def _log_string_timestamps(self) -> None:
        """Firestore orders strings after every timestamp: `>= ""` finds them, ids only, a few at most."""
        query = (
            self.events.where(filter=FieldFilter("timestamp", ">=", ""))
            .select([])
            .limit(LOGGED_BAD_TIMESTAMPS)
        )
        ids = [snapshot.id for snapshot in query.stream(retry=self._retry())]
        if ids:
            log.error(
                "%d event(s) in %s have a string `timestamp`, not a timestamp: no window counts them. "
                "Fix or delete: %s%s",
                len(ids),
                self.collection,
                ", ".join(ids),
                " …" if len(ids) == LOGGED_BAD_TIMESTAMPS else "",
            )

    # --- run records: one document per run; see docs/firestore-schema.md --------------------------

    @property
    def runs(self) -> firestore.CollectionReference:
        return self.client.collection(RUN_COLLECTION)

    @_names_firestore
    def write_run(self, document_id: str, document: dict[str, Any]) -> None:
        """Write the run's record, whole: a retry, or a re-run of the run, writes the same document."""
        self.runs.document(document_id).set(
            {**document, "recorded_at": firestore.SERVER_TIMESTAMP}, retry=self._retry()
        )

    @_names_firestore
    def runs_in(
        self, start: datetime, end: datetime, *, dag_id: str | None = None, limit: int = 10_000
    ) -> list[RunRecord]:
        """The oldest `limit` records with `start` < `run_after` ≤ `end` (of `dag_id`, if given),
        oldest first; one with a missing or wrong-typed field is logged and left out."""
        return self._records(self.runs_query(start, end, dag_id, limit).stream(retry=self._retry()))

    def runs_query(self, start: datetime, end: datetime, dag_id: str | None, limit: int) -> firestore.Query:
        """`runs_in`'s query (with a `dag_id`, it needs a composite index: deploy/firestore.indexes.json)."""
        query = self.runs.where(filter=FieldFilter("run_after", ">", start)).where(
            filter=FieldFilter("run_after", "<=", end)
        )
        if dag_id is not None:
            query = query.where(filter=FieldFilter("dag_id", "==", dag_id))
        return query.order_by("run_after").select(list(RunRecord._fields)).limit(limit)

    @_names_firestore
    def last_evaluation(self, dag_id: str) -> RunRecord | None:
        """The newest record of a run of `dag_id` that evaluated the incident (any kind but "test")."""
        return self._last_evaluation(dag_id)

    def last_evaluation_query(self, dag_id: str) -> firestore.Query:
        """`last_evaluation`'s query (it needs a composite index: deploy/firestore.indexes.json)."""
        return (
            self.runs.where(filter=FieldFilter("dag_id", "==", dag_id))
            .where(filter=FieldFilter("kind", "in", list(EVALUATED_KINDS)))
            .where(filter=FieldFilter("run_after", ">", EPOCH))
            .order_by("run_after", direction=firestore.Query.DESCENDING)
            .select(list(RunRecord._fields))
            .limit(1)
        )

    def _last_evaluation(
        self, dag_id: str, transaction: firestore.Transaction | None = None
    ) -> RunRecord | None:
        query = self.last_evaluation_query(dag_id)
        if transaction is None:
            found = query.stream(retry=self._retry())
        else:
            found = transaction.get(query, retry=self._retry())
        return next(iter(self._records(found)), None)

    def _records(self, snapshots: Iterable[firestore.DocumentSnapshot]) -> list[RunRecord]:
        records = []
        for snapshot in snapshots:
            record = stored_run(snapshot.to_dict() or {})
            if record is None:
                path = snapshot.reference.path
                log.error("Run record %s has a missing or wrong-typed field: left out.", path)
            else:
                records.append(record)
        return records

    @_names_firestore
    def incidents_in(
        self, start: datetime, end: datetime, *, dag_id: str | None = None, limit: int = 500
    ) -> list[Doc]:
        """The first `limit` incidents opened in (`start`, `end`], oldest first, each its `id` and
        INCIDENT_FIELDS (those it has); with `dag_id`, those of that DAG (or of none) among them."""
        query = (
            self.client.collection(INCIDENT_COLLECTION)
            .where(filter=FieldFilter("opened_at", ">", start))
            .where(filter=FieldFilter("opened_at", "<=", end))
            .order_by("opened_at")
            .select(INCIDENT_FIELDS)
            .limit(limit)
        )
        found = [{"id": s.id, **s.to_dict()} for s in query.stream(retry=self._retry())]
        return [i for i in found if dag_id is None or i.get("dag_id", dag_id) == dag_id]

    # --- alert state: one document per DAG; see docs/firestore-schema.md --------------------------

    def _state_ref(self, dag_id: str) -> firestore.DocumentReference:
        return self.client.collection(STATE_COLLECTION).document(dag_id)

    @_names_firestore
    def read_state(self, dag_id: str) -> tuple[dict[str, Any], int]:
        """The stored state (empty when there is none) and its version (0 for a garbage one, logged:
        the next save overwrites it)."""
        snapshot = self._state_ref(dag_id).get(retry=self._retry())
        data = snapshot.to_dict() or {}
        return data, _version(data, snapshot.reference.path)

    @_names_firestore
    def claim_lease(
        self, dag_id: str, *, run_id: str, version: int, kind: str, run_after: datetime | None = None
    ) -> str | None:
        """Take the right to post a decision made on state `version`; None when taken, else why not.

        In a transaction, so of two runs that decided at once only one posts; a run at `run_after`
        older than the last evaluation (`last_evaluation`) posts nothing.
        """
        ref = self._state_ref(dag_id)

        @firestore.transactional
        def claim(transaction: firestore.Transaction) -> str | None:
            stored = ref.get(transaction=transaction, retry=self._retry()).to_dict() or {}
            if conflict := self._why_not(transaction, stored, dag_id, run_id, version, run_after):
                return conflict
            expires_at = datetime.now(UTC) + timedelta(seconds=LEASE_SECONDS)
            transaction.set(
                ref, {"lease": {"run_id": run_id, "kind": kind, "expires_at": expires_at}}, merge=True
            )
            return None

        return claim(self.client.transaction())

    def _why_not(
        self,
        transaction: firestore.Transaction,
        stored: dict[str, Any],
        dag_id: str,
        run_id: str,
        version: int,
        run_after: datetime | None,
    ) -> str | None:
        """Why a run that decided on `version` at `run_after` may not act now (`_conflict`, or a
        newer run's evaluation, read in the same transaction); None when it may."""
        path = self._state_ref(dag_id).path
        if conflict := _conflict(stored, run_id=run_id, version=version, path=path):
            return conflict
        return older_than(self._last_evaluation(dag_id, transaction), run_after) if run_after else None

    @_names_firestore
    def release_lease(self, dag_id: str, *, run_id: str) -> None:
        """Give the lease back after a failed post, so the next run may try at once."""
        ref = self._state_ref(dag_id)

        @firestore.transactional
        def release(transaction: firestore.Transaction) -> None:
            lease = (ref.get(transaction=transaction, retry=self._retry()).to_dict() or {}).get("lease")
            if lease and lease["run_id"] == run_id:
                transaction.update(ref, {"lease": None})

        release(self.client.transaction())

    @_names_firestore
    def record_post(self, dag_id: str, *, run_id: str, kind: str, where: dict[str, str]) -> None:
        """Note that this run's message was accepted (and, in bot-token mode, the thread it belongs to),
        so that a retry of the run posts it no second time.

        Slack has the message already: through an outage this write is retried for `record_seconds`
        (a little less than the task's timeout), not for the usual minute.
        """
        self._state_ref(dag_id).set(
            {"posted": {"run_id": run_id, "kind": kind, **where}},
            # The whole marker replaced (merge=True would keep an earlier run's `gone`), the rest kept.
            merge=["posted"],
            retry=self._retry(self.record_seconds),
        )

    @_names_firestore
    def save_state(
        self,
        dag_id: str,
        state: dict[str, Any],
        *,
        run_id: str,
        version: int,
        carry: Carry,
        incident: dict[str, Any] | None = None,
        run_after: datetime | None = None,
    ) -> str | None:
        """Store the state decided on `version` (and the incident's timeline entry); None when saved.

        The run holding the lease saves what it delivered, with `carry(stored, run_id)` of the stored
        state when the incident is open (`delivery.thread_posted`: the thread its post started);
        any other run saves only if no one changed the state or holds the lease since it decided,
        and no run newer than `run_after` evaluated since.
        The incident's entry gets its thread's first message (`slack_channel`, `slack_ts`), when it
        has one: the saved state's, or for a closing save the state's it replaces.
        """
        ref = self._state_ref(dag_id)
        # Firestore runs the body again when writers collide: it must not change anything it reads.
        timeline = None
        if incident is not None:
            entry = dict(incident)
            timeline = (self.client.collection(INCIDENT_COLLECTION).document(entry.pop("id")), entry)

        @firestore.transactional
        def save(transaction: firestore.Transaction) -> str | None:
            data = ref.get(transaction=transaction, retry=self._retry()).to_dict() or {}
            lease = data.get("lease")
            holder = bool(lease) and lease["run_id"] == run_id
            why_not = None if holder else self._why_not(transaction, data, dag_id, run_id, version, run_after)
            if why_not:
                return why_not
            stored = {
                **state,
                **(carry(data, run_id) if holder and state.get("open") else {}),
                "version": _version(data, ref.path) + 1,
                "lease": None,
                "updated_at": firestore.SERVER_TIMESTAMP,
                "updated_by": run_id,
            }
            transaction.set(ref, stored)
            if timeline is not None:
                incident, entry = timeline
                transaction.set(incident, {**entry, **incident_thread(stored, data)}, merge=True)
            return None

        return save(self.client.transaction())

    # --- labels on incidents: see labels.py --------------------------------------------------------

    @_names_firestore
    def incidents_to_label(
        self, dag_id: str, start: datetime, end: datetime, *, limit: int = 100
    ) -> list[dict[str, Any]]:
        """This DAG's incidents with a first Slack message (`slack_ts`) that are open or were closed in
        (`start`, `end`], oldest first, each its `id` and LABEL_FIELDS. Two single-field queries (no
        composite index), at most `limit` documents each."""
        incidents = self.client.collection(INCIDENT_COLLECTION)
        queries = [
            incidents.where(filter=FieldFilter("closed_at", "==", None)),
            incidents.where(filter=FieldFilter("closed_at", ">", start)).where(
                filter=FieldFilter("closed_at", "<=", end)
            ),
        ]
        found = {}
        for query in queries:
            for snapshot in query.select(LABEL_FIELDS).limit(limit).stream(retry=self._retry()):
                data = snapshot.to_dict()
                if data.get("dag_id") == dag_id and data.get("slack_ts"):
                    found[snapshot.id] = {"id": snapshot.id, **data}
        return [found[incident_id] for incident_id in sorted(found)]  # the id starts with the opening time

    @_names_firestore
    def update_labels(self, incident_id: str, fields: dict[str, Any]) -> None:
        """Write `fields` (`label`, `reactions`, `first_reaction_at`) on the incident. In a transaction:
        a label set on the page since it was read is kept (it wins over reactions), and an incident
        deleted since is not made again."""
        ref = self.client.collection(INCIDENT_COLLECTION).document(incident_id)

        @firestore.transactional
        def update(transaction: firestore.Transaction) -> None:
            snapshot = ref.get(["label"], transaction=transaction, retry=self._retry())
            if not snapshot.exists:
                return
            changes = keep_page_label(_field(snapshot, "label"), fields)
            if changes:
                transaction.update(ref, changes)

        update(self.client.transaction())


def _field(snapshot: firestore.DocumentSnapshot, name: str) -> Any:
    """A field that events written before the DAG (by the coordinator) do not have."""
    try:
        return snapshot.get(name)
    except KeyError:
        return None


def _batch_ids(snapshot: firestore.DocumentSnapshot) -> list[str]:
    """The event's batch ids; none (logged by document id) when the field is missing or not a list of
    strings: the event still counts, and one bad document blocks no alert."""
    ids = _field(snapshot, "batch_ids")
    if isinstance(ids, list) and all(isinstance(batch_id, str) for batch_id in ids):
        return ids
    log.error(
        "Event %s has %s, not a list of batch ids: counted, with no batch ids.",
        snapshot.reference.path,
        "no `batch_ids`" if ids is None else f"`batch_ids` of type {type(ids).__name__}",
    )
    return []


def _version(stored: dict[str, Any], path: str) -> int:
    """The state's version; 0 (logged) when it is not a whole number, so the next save writes 1."""
    version = stored.get("version", 0)
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    log.error(
        "State document %s has `version` %s, not a whole number: read as 0; the next save writes 1.",
        path,
        type(version).__name__,
    )
    return 0


def _conflict(stored: dict[str, Any], *, run_id: str, version: int, path: str) -> str | None:
    """Why a run that decided on state `version` may not act on it now; None when it may."""
    if _version(stored, path) != version:
        return f"the state changed since this run decided (version {version} → {stored.get('version')})"
    lease = stored.get("lease")
    if lease and lease["run_id"] != run_id and lease["expires_at"] > datetime.now(UTC):
        return f"run {lease['run_id']} is delivering a {lease['kind']} message"
    return None
