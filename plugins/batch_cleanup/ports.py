"""What crosses between the steps and the hooks: the values both hold, the error Slack's channel
raises, and what the steps need of each hook. A leaf: it imports nothing of the package, so the
hooks and the pure modules both import it and neither imports the other (tests/unit/test_imports.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

Doc = dict[str, Any]  # a document's fields (the state, an incident)
# `delivery.thread_posted`: the fields of the stored state (`Doc`) that the lease holder's save keeps.
Carry = Callable[[Doc, str], Doc]


@dataclass(frozen=True)
class Message:
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


class StoredEvent(NamedTuple):
    """What the window reads of an event. `dag_id` is None for one the coordinator wrote itself;
    `stalled_count` is None for an event without one (then its batch ids are counted)."""

    id: str
    timestamp: datetime
    batch_ids: list[str]
    dag_id: str | None = None
    stalled_count: int | None = None

    @property
    def auto_completed(self) -> int:
        """Batches this cleanup auto-completed: the true count, even when its id list was cut."""
        count = self.stalled_count
        if isinstance(count, int) and not isinstance(count, bool) and count >= len(self.batch_ids):
            return count
        return len(self.batch_ids)


class RunRecord(NamedTuple):
    """What a run's record in `batch_cleanup_runs` says (docs/firestore-schema.md): the batches it
    checked and auto-completed, and its decision's kind and severity."""

    run_after: datetime
    batches_checked: int
    stalled_count: int
    kind: str = "none"
    severity: str | None = None
    dag_id: str | None = None


def stored_run(fields: Mapping[str, Any]) -> RunRecord | None:
    """The record a stored document holds; None when a field is missing or of the wrong type, which
    its reader logs and leaves out (a count that is a string must not break the rate)."""
    count_fields = (fields.get("batches_checked"), fields.get("stalled_count"))
    ok = (
        isinstance(fields.get("run_after"), datetime)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in count_fields)
        and isinstance(fields.get("kind"), str)
        and all(isinstance(fields.get(name), str | None) for name in ("severity", "dag_id"))
    )
    return RunRecord(*(fields.get(name) for name in RunRecord._fields)) if ok else None


def older_than(last: RunRecord | None, run_after: datetime | None) -> str | None:
    """Why a run at `run_after` may not act (claim, save) after `last`, the newest run record that
    evaluated the incident; None when it may (no newer one, or the run's time is not given)."""
    if run_after is None or last is None or last.run_after <= run_after:
        return None
    mine, theirs = (f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" for at in (run_after, last.run_after))
    return f"this run ({mine}) is older than the last evaluation ({theirs})"


class ThreadGone(Exception):
    """The message a reply or an edit points at can no longer be found: `error` is Slack's code."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class Coordinator(Protocol):
    """What the steps need of `hooks.coordinator.CoordinatorHook`."""

    def check_stalled(
        self, *, stall_threshold_minutes: float, min_completion_pct: float, idempotency_key: str
    ) -> dict[str, Any]: ...
    def deep_health(self, timeout_seconds: float) -> dict[str, Any]: ...


class Store(Protocol):
    """What the steps need of `hooks.firestore.FirestoreHook`."""

    def create_event(self, document_id: str, document: dict[str, Any]) -> bool: ...
    def count_in(self, start: datetime, end: datetime) -> int: ...
    def events_in(self, start: datetime, end: datetime) -> list[StoredEvent]: ...
    def write_run(self, document_id: str, document: dict[str, Any]) -> None: ...
    def runs_in(
        self, start: datetime, end: datetime, *, dag_id: str | None = None, limit: int = 10_000
    ) -> list[RunRecord]: ...
    def last_evaluation(self, dag_id: str) -> RunRecord | None: ...
    def read_state(self, dag_id: str) -> tuple[dict[str, Any], int]: ...
    def claim_lease(
        self, dag_id: str, *, run_id: str, version: int, kind: str, run_after: datetime | None = None
    ) -> str | None: ...
    def release_lease(self, dag_id: str, *, run_id: str) -> None: ...
    def record_post(self, dag_id: str, *, run_id: str, kind: str, where: dict[str, str]) -> None: ...
    def save_state(
        self,
        dag_id: str,
        state: Doc,
        *,
        run_id: str,
        version: int,
        carry: Carry,
        incident: Doc | None = None,
        run_after: datetime | None = None,
    ) -> str | None: ...


class Channel(Protocol):
    """What delivery needs of `hooks.slack.OnCallChannel`; `post`, `update` and `find` raise
    ThreadGone when the thread's message is gone."""

    @property
    def threads(self) -> bool: ...
    def post(
        self,
        message: Message,
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, str]: ...
    def update(
        self, where: dict[str, str], message: Message, *, metadata: dict[str, Any] | None = None
    ) -> None: ...
    def find(
        self, event_type: str, key: dict[str, Any], *, oldest: float, thread_ts: str | None = None
    ) -> list[dict[str, Any]]: ...


class PostRecord(Protocol):
    """A second record of the last accepted post, outside Firestore (`hooks.posted.AirflowPostRecord`)."""

    def get(self, dag_id: str) -> dict[str, str] | None: ...
    def put(self, dag_id: str, posted: dict[str, str]) -> None: ...
