"""`FirestoreHook`'s contract in memory, for the pure task steps' tests (tests/unit) and the backtest's
agreement property: the real hook is tested against the emulator in tests/integration."""

from __future__ import annotations

from typing import Any

from batch_cleanup.events import StoredEvent


class MemoryStore:
    """The hook's contract in memory: events by id, one state document with a version and a lease."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.state: dict[str, Any] = {}
        self.incidents: dict[str, dict[str, Any]] = {}
        self.reads: list[str] = []
        self.lease: str | None = None

    def create_event(self, document_id, document):
        if document_id in self.events:
            return False
        self.events[document_id] = document
        return True

    def count_in(self, start, end):
        return sum(start < event["timestamp"] <= end for event in self.events.values())

    def events_in(self, start, end):
        self.reads.append("events_in")
        found = [
            StoredEvent(i, e["timestamp"], e["batch_ids"], e.get("dag_id"), e.get("stalled_count"))
            for i, e in self.events.items()
            if start < e["timestamp"] <= end
        ]
        return sorted(found, key=lambda event: event.timestamp, reverse=True)

    def read_state(self, dag_id):
        return dict(self.state), int(self.state.get("version", 0))

    def claim_lease(self, dag_id, *, run_id, version, kind):
        if int(self.state.get("version", 0)) != version:
            return "the state changed since this run decided"
        if self.lease not in (None, run_id):
            return f"run {self.lease} is delivering"
        self.lease = run_id
        return None

    def release_lease(self, dag_id, *, run_id):
        if self.lease == run_id:
            self.lease = None

    def record_post(self, dag_id, *, run_id, kind, where):
        self.state["posted"] = {"run_id": run_id, "kind": kind, **where}

    def save_state(self, dag_id, state, *, run_id, version, carry, incident=None):
        if int(self.state.get("version", 0)) != version:
            return "the state changed"
        thread = carry(self.state, run_id) if self.lease == run_id and state.get("open") else {}
        self.state = {**state, **thread, "version": version + 1}
        self.lease = None
        if incident is not None:
            entry = dict(incident)
            self.incidents[entry.pop("id")] = entry
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
        self.posts.append(
            {
                "message": message,
                "ts": ts,
                "thread_ts": thread_ts,
                "broadcast": broadcast,
                "metadata": metadata,
            }
        )
        if not self.threads:
            return {}
        return {"channel": self.channel, "ts": ts, **({"thread_ts": thread_ts} if thread_ts else {})}

    def update(self, where, message, *, metadata=None):
        from batch_cleanup.delivery import ThreadGone

        if where["ts"] in self.gone | self.tombstones:
            raise ThreadGone("message_not_found")
        self.edits.append({"where": where, "message": message})
        if metadata is not None:
            next(post for post in self.posts if post["ts"] == where["ts"])["metadata"] = metadata

    def find(self, event_type, key, *, oldest, thread_ts=None):
        from batch_cleanup.delivery import ThreadGone

        self.lookups.append({"key": key, "thread_ts": thread_ts})
        if thread_ts in self.gone:
            raise ThreadGone("thread_not_found")
        found = []
        for post in self.posts:
            where = (
                thread_ts in (post["ts"], post["thread_ts"])
                if thread_ts
                else (post["thread_ts"] is None or post["broadcast"])
            )
            metadata = post["metadata"] or {}
            payload = metadata.get("event_payload") or {}
            if (
                where
                and post["ts"] not in self.gone
                and metadata.get("event_type") == event_type
                and all(payload.get(k) == v for k, v in key.items())
            ):
                thread = {"thread_ts": post["thread_ts"]} if post["thread_ts"] else {}
                found.append({"channel": self.channel, "ts": post["ts"], **thread, "payload": payload})
        return found
