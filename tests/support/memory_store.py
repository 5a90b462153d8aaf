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
            StoredEvent(i, e["timestamp"], e["batch_ids"], e.get("dag_id"))
            for i, e in self.events.items()
            if start < e["timestamp"] <= end
        ]
        return sorted(found, key=lambda event: event.timestamp, reverse=True)

    def read_state(self, dag_id):
        return dict(self.state), int(self.state.get("version", 0))

    def claim_lease(self, dag_id, *, run_id, version, kind):
        if self.lease not in (None, run_id):
            return f"run {self.lease} is delivering"
        self.lease = run_id
        return None

    def release_lease(self, dag_id, *, run_id):
        if self.lease == run_id:
            self.lease = None

    def save_state(self, dag_id, state, *, run_id, version, incident=None):
        if int(self.state.get("version", 0)) != version:
            return "the state changed"
        self.state = {**state, "version": version + 1}
        self.lease = None
        if incident is not None:
            entry = dict(incident)
            self.incidents[entry.pop("id")] = entry
        return None
