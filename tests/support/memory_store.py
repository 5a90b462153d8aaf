"""`FirestoreHook`'s rules in memory, for the pure task steps' tests (tests/unit) and the backtest's
agreement property. tests/integration/test_store_contract.py runs one contract against this store and
the real hook on the emulator, so the two cannot disagree."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from batch_cleanup.events import StoredEvent
from batch_cleanup.names import EVALUATED_KINDS
from batch_cleanup.ports import ThreadGone, older_than, stored_run

# The hook's LEASE_SECONDS (not imported: the unit tests stay free of Google's client).
LEASE = timedelta(seconds=600)


class MemoryStore:
    """Events and run records by id, and one state document kept as the hook keeps it: its version,
    the lease (run, kind, expiry) and the `posted` marker all in `state`; `incidents` the timeline
    entries by id. `writes` counts the documents written, as Firestore bills them."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.writes = 0
        self.state: dict[str, Any] = {}
        self.incidents: dict[str, dict[str, Any]] = {}
        self.reads: list[str] = []

    @property
    def lease(self) -> str | None:
        """The run holding the lease (expired or not); None when no run does."""
        return (self.state.get("lease") or {}).get("run_id")

    @lease.setter
    def lease(self, run_id: str | None) -> None:
        """A test's shortcut: `run_id` holds a live lease (None: no one does)."""
        live = {"run_id": run_id, "kind": "alert", "expires_at": datetime.now(UTC) + LEASE}
        self.state["lease"] = live if run_id else None

    def create_event(self, document_id, document):
        created = document_id not in self.events
        self.writes += created
        self.events.setdefault(document_id, document)
        return created

    def _in_window(self, start, end):
        # Firestore's range filter on timestamps holds only timestamps: a string one is in no window.
        stamped = [(i, e) for i, e in self.events.items() if isinstance(e.get("timestamp"), datetime)]
        return [(i, e) for i, e in stamped if start < e["timestamp"] <= end]

    def count_in(self, start, end):
        return len(self._in_window(start, end))

    def events_in(self, start, end, limit=500):
        self.reads.append("events_in")
        # Firestore breaks a tie of a descending order by the document id, descending too.
        newest = sorted(self._in_window(start, end), key=lambda ie: (ie[1]["timestamp"], ie[0]), reverse=True)
        return [
            StoredEvent(i, e["timestamp"], _batch_ids(e), e.get("dag_id"), e.get("stalled_count"))
            for i, e in newest[:limit]
        ]

    def write_run(self, document_id, document):
        self.writes += 1
        self.runs[document_id] = {**copy.deepcopy(document), "recorded_at": datetime.now(UTC)}

    def runs_in(self, start, end, *, dag_id=None, limit=10_000):
        """The hook's query: only timestamps are in a range of `run_after`; a bad record is left out
        (after the limit, which the query applies)."""
        chosen = [
            (r["run_after"], i, r)
            for i, r in self.runs.items()
            if (dag_id is None or r.get("dag_id") == dag_id)
            and isinstance(r.get("run_after"), datetime)
            and start < r["run_after"] <= end
        ]
        # Firestore breaks a tie of an ascending order by the document id, ascending too.
        read = [stored_run(r) for _, _, r in sorted(chosen)[:limit]]
        return [record for record in read if record is not None]

    def last_evaluation(self, dag_id):
        """The hook's query: the newest timestamped record of the DAG and kinds, read, maybe bad (None)."""
        chosen = [
            (r["run_after"], i, r)
            for i, r in self.runs.items()
            if r.get("dag_id") == dag_id
            and r.get("kind") in EVALUATED_KINDS
            and isinstance(r.get("run_after"), datetime)
        ]
        return stored_run(max(chosen)[2]) if chosen else None

    def read_state(self, dag_id):
        return copy.deepcopy(self.state), _version(self.state)

    def _why_not(self, dag_id, run_id, version, run_after):
        if conflict := _conflict(self.state, run_id=run_id, version=version):
            return conflict
        return older_than(self.last_evaluation(dag_id), run_after)

    def claim_lease(self, dag_id, *, run_id, version, kind, run_after=None):
        if conflict := self._why_not(dag_id, run_id, version, run_after):
            return conflict
        self.writes += 1
        self.state["lease"] = {"run_id": run_id, "kind": kind, "expires_at": datetime.now(UTC) + LEASE}
        return None

    def release_lease(self, dag_id, *, run_id):
        if self.lease == run_id:
            self.writes += 1
            self.state["lease"] = None

    def record_post(self, dag_id, *, run_id, kind, where):
        self.writes += 1
        self.state["posted"] = {"run_id": run_id, "kind": kind, **where}

    def save_state(self, dag_id, state, *, run_id, version, carry, incident=None, run_after=None):
        holder = self.lease == run_id  # the holder saves what it delivered, even on a lapsed lease
        if not holder and (conflict := self._why_not(dag_id, run_id, version, run_after)):
            return conflict
        self.writes += 1 + (incident is not None)
        self.state = {
            **state,
            **(carry(self.state, run_id) if holder and state.get("open") else {}),
            "version": _version(self.state) + 1,
            "lease": None,
            "updated_at": datetime.now(UTC),
            "updated_by": run_id,
        }
        if incident is not None:
            entry = dict(incident)
            self.incidents.setdefault(entry.pop("id"), {}).update(entry)  # Firestore's merge
        return None


def _batch_ids(event: dict[str, Any]) -> list[str]:
    """The hook's reading: no ids when `batch_ids` is missing or not a list of strings."""
    ids = event.get("batch_ids")
    return ids if isinstance(ids, list) and all(isinstance(i, str) for i in ids) else []


def _version(stored: dict[str, Any]) -> int:
    """The hook's reading: 0 for a version that is not a whole number."""
    version = stored.get("version", 0)
    return version if isinstance(version, int) and not isinstance(version, bool) else 0


def _conflict(stored: dict[str, Any], *, run_id: str, version: int) -> str | None:
    """The hook's rule: a run acts on the version it decided on, unless another run's live lease."""
    if _version(stored) != version:
        return f"the state changed since this run decided (version {version} → {stored.get('version')})"
    lease = stored.get("lease")
    if lease and lease["run_id"] != run_id and lease["expires_at"] > datetime.now(UTC):
        return f"run {lease['run_id']} is delivering a {lease['kind']} message"
    return None


class MemorySlack:
    """`OnCallChannel`'s contract in memory: what was posted (and where, with which metadata) and edited.

    `threads`: bot-token mode (posts get a `ts`, replies, edits and lookups work); else a webhook.
    `gone`: ts of messages deleted in Slack, as Slack then answers: a reply to one is accepted but
    lands at the root, an edit raises ThreadGone (message_not_found), a lookup in its thread too
    (thread_not_found). `tombstones`: deleted messages that had replies: replies still go into
    their thread, only an edit finds them gone.
    `refuse`: an exception the next post raises.
    """

    def __init__(self, *, threads: bool = False, channel: str = "C0TEST") -> None:
        self.threads, self.channel = threads, channel
        self.posts: list[dict[str, Any]] = []
        self.edits: list[dict[str, Any]] = []
        self.lookups: list[dict[str, Any]] = []
        self.gone: set[str] = set()
        self.tombstones: set[str] = set()
        self.refuse: Exception | None = None

    @property
    def messages(self) -> list[Any]:
        return [post["message"] for post in self.posts]

    def post(self, message, *, thread_ts=None, broadcast=False, metadata=None):
        if self.refuse is not None:
            raise self.refuse
        if thread_ts in self.gone:
            thread_ts, broadcast = None, False
        ts = f"{1764650000 + len(self.posts)}.000100" if self.threads else None
        post = {"message": message, "ts": ts, "thread_ts": thread_ts, "broadcast": broadcast}
        self.posts.append({**post, "metadata": metadata})
        if not self.threads:
            return {}
        return {"channel": self.channel, "ts": ts, **({"thread_ts": thread_ts} if thread_ts else {})}

    def update(self, where, message, *, metadata=None):
        if where["ts"] in self.gone | self.tombstones:
            raise ThreadGone("message_not_found")
        self.edits.append({"where": where, "message": message})
        if metadata is not None:
            next(post for post in self.posts if post["ts"] == where["ts"])["metadata"] = metadata

    def find(self, event_type, key, *, oldest, thread_ts=None):
        self.lookups.append({"key": key, "thread_ts": thread_ts})
        if thread_ts in self.gone:
            raise ThreadGone("thread_not_found")
        found = []
        for post in self.posts:
            in_thread = thread_ts in (post["ts"], post["thread_ts"])
            where = in_thread if thread_ts else post["thread_ts"] is None or post["broadcast"]
            metadata = post["metadata"] or {}
            payload = metadata.get("event_payload") or {}
            matches = all(payload.get(k) == v for k, v in key.items())  # the hook's rule
            if where and matches and post["ts"] not in self.gone and metadata.get("event_type") == event_type:
                thread = {"thread_ts": post["thread_ts"]} if post["thread_ts"] else {}
                found.append({"channel": self.channel, "ts": post["ts"], **thread, "payload": payload})
        return found
