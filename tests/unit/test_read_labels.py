"""steps.read_labels without Airflow: which incidents it reads (the open one and those closed in the
last 24 hours, each once), what it writes (only what changed) and what it does when Slack fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batch_cleanup import steps
from batch_cleanup.compat import AirflowException
from tests.support.memory_store import MemorySlack, MemoryStore

DAG = "stalled_batch_cleanup"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CHANNEL = "C0TEST"


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, dict]] = []

    def update_labels(self, incident_id, fields):
        self.writes.append((incident_id, fields))
        super().update_labels(incident_id, fields)


def incident(store: MemoryStore, ts: str | None, closed_hours_ago: float | None, dag_id: str = DAG) -> str:
    """An incident whose first message is `ts` (None: webhook mode), closed that many hours before NOW."""
    incident_id = f"{dag_id}-{ts or 'webhook'}"
    closed = None if closed_hours_ago is None else NOW - timedelta(hours=closed_hours_ago)
    store.incidents[incident_id] = {"dag_id": dag_id, "closed_at": closed, "notifications": 2}
    if ts:
        store.incidents[incident_id] |= {"slack_channel": CHANNEL, "slack_ts": ts}
    return incident_id


def read(store, slack, now=NOW) -> str:
    return steps.read_labels(store, slack, dag_id=DAG, now=now)


def test_webhook_mode_reads_nothing_and_says_so():
    store, slack = CountingStore(), MemorySlack(threads=False)
    incident(store, "1.1", None)

    said = read(store, slack)

    assert said.startswith("Webhook mode: no reactions to read")
    assert slack.reads == [] and store.reads == [] and store.writes == []


def test_bot_mode_reads_the_open_incident_and_those_closed_in_the_last_24_hours_once_each():
    store, slack = CountingStore(), MemorySlack(threads=True)
    incident(store, "1.1", None)  # open
    incident(store, "2.2", 23.9)
    incident(store, "3.3", 24)  # closed exactly 24 h ago: out
    incident(store, "4.4", 30)
    incident(store, None, 1)  # webhook mode at the time: no message to read
    incident(store, "5.5", 1, dag_id="other_dag")

    said = read(store, slack)

    assert sorted(slack.reads) == ["1.1", "2.2"]
    assert said == "Read the reactions of 2 incident(s); changed: none."
    assert store.writes == [], "nobody reacted: nothing to write"


def test_labels_are_written_when_they_change_and_only_then():
    store, slack = CountingStore(), MemorySlack(threads=True)
    open_id, closed_id = incident(store, "1.1", None), incident(store, "2.2", 3)
    slack.reacted = {
        "1.1": {"white_check_mark": ["U1"]},
        "2.2": {"no_bell": ["U2"], "white_check_mark": ["U3"]},
    }

    said = read(store, slack)
    read(store, slack, now=NOW + timedelta(minutes=15))

    assert [write[0] for write in store.writes] == [open_id, closed_id], "the second read changed nothing"
    assert store.incidents[open_id]["label"] == {
        "value": "real",
        "source": "reactions",
        "by": ["U1"],
        "at": NOW,
        "note": None,
    }
    assert store.incidents[closed_id]["label"]["value"] == "disputed"
    assert store.incidents[closed_id]["reactions"] == {"real": ["U3"], "noise": ["U2"]}
    assert store.incidents[closed_id]["first_reaction_at"] == NOW
    assert store.incidents[closed_id]["notifications"] == 2, "the rest of the incident is kept"
    assert f"{closed_id} (disputed; " in said


def test_a_page_label_stays_whatever_the_reactions_say():
    store, slack = CountingStore(), MemorySlack(threads=True)
    labelled = incident(store, "1.1", 2)
    page = {"value": "noise", "source": "page", "by": ["ana"], "at": NOW, "note": None}
    store.incidents[labelled]["label"] = page
    slack.reacted = {"1.1": {"white_check_mark": ["U1"]}}

    read(store, slack)

    assert store.incidents[labelled]["label"] == page
    assert store.incidents[labelled]["reactions"] == {"real": ["U1"], "noise": []}


def test_a_deleted_first_message_is_skipped_and_the_others_are_read(caplog):
    store, slack = CountingStore(), MemorySlack(threads=True)
    gone, kept = incident(store, "1.1", 5), incident(store, "2.2", None)
    slack.gone = {"1.1"}
    slack.reacted = {"2.2": {"no_bell": ["U1"]}}

    read(store, slack)

    assert [write[0] for write in store.writes] == [kept]
    assert f"Incident {gone}: its first Slack message is gone (message_not_found)." in caplog.text


def test_a_call_slack_does_not_answer_ends_the_reading_and_fails_the_task():
    store, slack = CountingStore(), MemorySlack(threads=True)
    incident(store, "1.1", 2)
    incident(store, "2.2", None)
    slack.refuse_reactions = AirflowException("Slack did not answer reactions.get on connection 'c'")

    with pytest.raises(AirflowException, match=r"reactions\.get on connection 'c'"):
        read(store, slack)

    assert len(slack.reads) == 1 and store.writes == [], "one hung call, not one per incident"


def test_the_same_emoji_for_real_and_noise_is_refused_naming_both_settings(monkeypatch):
    store, slack = CountingStore(), MemorySlack(threads=True)
    incident(store, "1.1", None)
    monkeypatch.setattr(steps, "NOISE_REACTION", steps.REAL_REACTION)

    with pytest.raises(ValueError, match=r"real_reaction and noise_reaction are both :white_check_mark:"):
        read(store, slack)
    assert slack.reads == [] and store.writes == [], "nothing read, nothing written"
