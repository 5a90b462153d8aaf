"""Bot-token mode without Airflow: one incident is one Slack thread, a card above every step in full,
edited after each step; a thread whose first message is gone ends and the next message says why;
a retry finds what an earlier try posted. Webhook mode is unchanged. The in-memory store and
Slack stand in for the hooks (the real ones are tested end to end in tests/dags/test_slack_threads_e2e.py
and tests/faults/)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batch_cleanup import steps
from batch_cleanup.compat import AirflowException
from batch_cleanup.params import dag_params
from tests.support.memory_store import MemorySlack, MemoryStore

DAG = "stalled_batch_cleanup"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PARAMS = {name: param.value for name, param in dag_params().items()}


class Runs:
    """Scheduled runs one after another on one store and one Slack, as the DAG would make them."""

    def __init__(self, slack: MemorySlack) -> None:
        self.store, self.slack, self.events = CrashesBeforeRecording(), slack, 0

    def cleanups(self, at: datetime, n: int) -> None:
        for _ in range(n):
            self.store.events[f"e{self.events}"] = {"timestamp": at, "batch_ids": [f"batch-{self.events}"]}
            self.events += 1

    def evaluate(self, at: datetime, params: dict[str, Any] = PARAMS) -> dict[str, Any]:
        return steps.evaluate(self.store, params, dag_id=DAG, run_after=at, mute_value=None)

    def run(self, minute: float, cleanups: int = 0, *, send_tries: int = 1) -> str:
        """`cleanups` more at `minute`, then the scheduled run of that minute: its decision's kind."""
        at = minutes(minute)
        self.cleanups(at, cleanups)
        run_id = f"scheduled__{at.isoformat()}"
        evaluation = self.evaluate(at)
        outcome = None
        if steps.choose_alert(evaluation) != steps.NO_ALERT:
            for attempt in range(send_tries):
                try:
                    outcome = self.send(evaluation, run_id, at, retry=attempt > 0)
                except Crash:
                    continue
        summary = {"batches_checked": 10, "stalled_count": int(cleanups > 0)}
        steps.record_state(
            self.store, summary, evaluation, outcome, PARAMS, dag_id=DAG, run_id=run_id, run_after=at
        )
        return evaluation["decision"]["kind"]

    def send(self, evaluation, run_id: str, at: datetime, *, retry: bool = False, params=PARAMS) -> str:
        when = {"now": at, "run_after": at, "retry": retry}
        where = dict(dag_id=DAG, run_id=run_id, base_url="https://airflow.example.com", slack=self.slack)
        return steps.send(self.store, {"stalled_count": 1}, evaluation, params, **when, **where)


class Crash(Exception):
    """The task's process dies."""


class CrashesBeforeRecording(MemoryStore):
    """The store; with `crashes` set, the task dies that many times after Slack accepted a post,
    before it was recorded."""

    crashes = 0

    def record_post(self, dag_id, *, run_id, kind, where):
        if self.crashes:
            self.crashes -= 1
            raise Crash
        super().record_post(dag_id, run_id=run_id, kind=kind, where=where)


def minutes(n: float) -> datetime:
    return START + timedelta(minutes=n)


def incident(runs: Runs) -> list[str]:
    """WARNING, a reminder an hour later, CRITICAL, RESOLVED: the decisions' kinds."""
    kinds = [runs.run(0, 3)]  # WARNING opens
    runs.cleanups(minutes(45), 1)
    kinds.append(runs.run(60, 2))  # 3 in the window, an hour on: a WARNING reminder
    kinds.append(runs.run(75, 2))  # 5: CRITICAL
    return [*kinds, runs.run(200)]  # the window is empty: RESOLVED


def texts(message) -> str:
    """Everything a message shows: its fallback text and every block."""
    return message.text + repr(message.blocks)


def assert_said_once(runs: Runs, minute: float, kind: str, thread_ts: str) -> None:
    """The next message goes into the new thread and no longer says the old one is gone."""
    assert runs.run(minute, 3) == kind
    last = runs.slack.posts[-1]
    assert last["thread_ts"] == thread_ts and "thread is gone" not in last["message"].text, "said once"


def test_an_incident_is_one_thread_a_card_above_every_step_in_full():
    runs = Runs(MemorySlack(threads=True))
    assert incident(runs) == ["alert", "reminder", "escalation", "resolved"]
    card, *replies = runs.slack.posts
    assert card["thread_ts"] is None and card["message"].text.startswith("WARNING, ongoing")
    assert [reply["thread_ts"] for reply in replies] == [card["ts"]] * 4
    steps_posted = ["WARNING", "Still ongoing (WARNING)", "Escalated to CRITICAL", "RESOLVED"]
    assert [reply["message"].text.split(":")[0] for reply in replies] == steps_posted
    assert "batch-0" in texts(replies[0]["message"]), "the opening WARNING is kept in full in the thread"
    assert [reply["broadcast"] for reply in replies] == [False, False, True, False], "only CRITICAL is"
    assert [edit["where"] for edit in runs.slack.edits] == [{"channel": "C0TEST", "ts": card["ts"]}] * 3
    cards = [card["message"], *(edit["message"] for edit in runs.slack.edits)]
    headers = [":rotating_light: WARNING, ongoing", ":rotating_light: WARNING, ongoing"]
    headers += [":rotating_light: CRITICAL, ongoing", ":white_check_mark: RESOLVED after 3 h 20 min"]
    assert [c.blocks[0]["text"]["text"] for c in cards] == [f"{h}: systemic batch stalls" for h in headers]
    assert not any("batch-" in texts(c) for c in cards), "the card counts the batches, never lists them"
    assert "*Since* 12:00 UTC, 1 h 15 min ago" in cards[2].blocks[1]["text"]["text"]
    resolved_card, resolved = cards[-1], replies[-1]["message"]
    assert "From* 12:00 UTC *to* 15:20 UTC" in resolved_card.blocks[1]["text"]["text"]
    assert resolved_card.blocks[0] != resolved.blocks[0] and resolved_card.text != resolved.text
    assert "Batches involved" in texts(resolved) and "Batches involved" not in texts(resolved_card), (
        "the card is the summary; the RESOLVED reply carries the closing facts"
    )
    assert runs.store.state.get("slack_ts") is None, "RESOLVED ends the thread"
    assert runs.slack.lookups == [], "a first try looks for nothing"


def test_webhook_mode_posts_every_message_on_its_own_and_edits_nothing():
    runs = Runs(MemorySlack(threads=False))
    assert incident(runs) == ["alert", "reminder", "escalation", "resolved"]
    assert [post["thread_ts"] for post in runs.slack.posts] == [None] * 4
    assert runs.slack.posts[0]["message"].text.startswith("WARNING: systemic batch stalls")
    assert runs.slack.edits == [] and runs.slack.lookups == []


def test_the_next_incident_starts_a_thread_of_its_own():
    runs = Runs(MemorySlack(threads=True))
    incident(runs)
    assert runs.run(300, 3) == "alert"
    card, alert = runs.slack.posts[-2:]
    assert card["thread_ts"] is None and alert["thread_ts"] == card["ts"]
    assert runs.store.state["slack_ts"] == card["ts"]


def test_a_reply_that_lands_outside_a_deleted_first_message_becomes_the_new_card():
    runs = Runs(MemorySlack(threads=True))
    runs.run(0, 3)
    runs.slack.gone.add(runs.slack.posts[0]["ts"])  # someone deleted the card
    assert runs.run(60, 3) == "reminder"
    stray, reminder = runs.slack.posts[-2:]
    assert stray["thread_ts"] is None, "Slack posted the reply at the channel's root"
    assert runs.slack.edits[-1]["where"]["ts"] == stray["ts"], "edited into the card"
    assert runs.slack.edits[-1]["message"].text.startswith("WARNING, ongoing")
    assert stray["metadata"]["event_payload"]["part"] == "card"
    assert reminder["thread_ts"] == stray["ts"] and reminder["message"].text.count("thread is gone") == 1
    assert "its first message was deleted" in reminder["message"].blocks[1]["elements"][0]["text"]
    assert runs.store.state["slack_ts"] == stray["ts"], "later messages go into the new thread"
    assert_said_once(runs, 75, "escalation", stray["ts"])


def test_an_edit_that_finds_the_first_message_gone_ends_the_thread_and_the_next_message_says_why():
    runs = Runs(MemorySlack(threads=True))
    runs.run(0, 3)
    card = runs.slack.posts[0]
    runs.slack.tombstones.add(card["ts"])  # deleted, its replies kept: replies still thread under it
    runs.run(60, 3)  # the reminder goes into the old thread; the edit finds the card gone
    assert runs.slack.posts[-1]["thread_ts"] == card["ts"]
    assert runs.store.state["slack_thread_gone"] == "message_not_found"
    assert runs.run(75, 3) == "escalation"
    new_card, escalation = runs.slack.posts[-2:]
    assert new_card["thread_ts"] is None and escalation["thread_ts"] == new_card["ts"]
    assert "Slack answered `message_not_found`" in escalation["message"].text
    assert runs.store.state["slack_ts"] == new_card["ts"] and not runs.store.state["slack_thread_gone"]
    assert_said_once(runs, 140, "reminder", new_card["ts"])


def test_a_retry_after_slack_accepted_posts_nothing_again_and_keeps_the_thread():
    runs = Runs(MemorySlack(threads=True))
    runs.run(0, 3, send_tries=2)  # the second try: the task failed after the post
    assert len(runs.slack.posts) == 2, "the card and the WARNING, once"
    assert runs.store.state["slack_ts"] == runs.slack.posts[0]["ts"]


@pytest.mark.parametrize("crash_at", [0, 15], ids=["alert", "escalation"])
def test_a_retry_finds_in_slack_what_a_try_that_died_before_recording_it_posted(crash_at):
    runs = Runs(MemorySlack(threads=True))
    for at in (0, 15):
        runs.store.crashes = int(at == crash_at)
        runs.run(at, 3, send_tries=2)
    card, *steps_posted = runs.slack.posts
    assert [p["message"].text.split(":")[0] for p in steps_posted] == ["WARNING", "Escalated to CRITICAL"]
    assert all(post["thread_ts"] == card["ts"] for post in steps_posted)
    assert runs.slack.lookups, "the retry looked"
    assert runs.store.state["slack_ts"] == card["ts"] and runs.store.state["severity"] == "CRITICAL"
    payloads = [post["metadata"]["event_payload"] for post in runs.slack.posts]
    parts = [(p["kind"], p["part"]) for p in payloads]
    assert parts == [("alert", "card"), ("alert", "step"), ("escalation", "step")]
    assert {p["dag_id"] for p in payloads} == {DAG}


def test_a_retry_after_only_the_card_was_posted_posts_only_the_step():
    class RefusesTheFirstReply(MemorySlack):
        refused = False

        def post(self, message, **kwargs):
            if kwargs.get("thread_ts") and not self.refused:
                self.refused = True
                raise AirflowException("Slack did not accept chat.postMessage: internal_error")
            return super().post(message, **kwargs)

    runs = Runs(RefusesTheFirstReply(threads=True))
    runs.cleanups(minutes(0), 3)
    evaluation = runs.evaluate(minutes(0))
    with pytest.raises(AirflowException):
        runs.send(evaluation, "scheduled__first", minutes(0), retry=False)
    assert runs.send(evaluation, "scheduled__first", minutes(0), retry=True) == "sent"
    card, alert = runs.slack.posts
    assert card["thread_ts"] is None and alert["thread_ts"] == card["ts"]


def test_a_concurrent_run_that_decided_the_same_posts_nothing():
    runs = Runs(MemorySlack(threads=True))
    runs.cleanups(minutes(0), 3)
    evaluation = runs.evaluate(minutes(0))
    sent = [runs.send(evaluation, run_id, minutes(0)) for run_id in ("manual__a", "manual__b")]
    assert sent == ["sent", "skipped"]
    assert len(runs.slack.posts) == 2, "one card and one WARNING"


def test_a_failed_edit_of_the_first_message_is_logged_and_never_fails_the_delivered_step(caplog):
    class EditsFail(MemorySlack):
        def update(self, where, message, *, metadata=None):
            raise AirflowException("Slack did not accept chat_update: internal_error")

    runs = Runs(EditsFail(threads=True))
    runs.run(0, 3)
    assert runs.run(15, 5) == "escalation"
    assert len(runs.slack.posts) == 3
    assert "Could not edit the incident's first message" in caplog.text
    assert "internal_error" in caplog.text
    assert not runs.store.state.get("slack_thread_gone"), "an edit that failed is not a thread that ended"


@pytest.mark.parametrize("threads", [True, False], ids=["bot-token", "webhook"])
def test_a_test_message_stands_alone_and_touches_no_thread(threads):
    runs = Runs(MemorySlack(threads=threads))
    runs.run(0, 3)
    forced = {**PARAMS, "force_alert": True}
    runs.send(runs.evaluate(minutes(5), forced), "manual__test", minutes(5), params=forced)
    assert runs.slack.posts[-1]["thread_ts"] is None and runs.slack.edits == []
