"""Bot-token mode without Airflow: one incident is one Slack thread, its first message edited after
each step; webhook mode is unchanged. The in-memory store and Slack stand in for the hooks (the
real ones are tested end to end in tests/dags/test_slack_threads_e2e.py)."""

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
        self.store, self.slack, self.events = MemoryStore(), slack, 0

    def cleanups(self, at: datetime, n: int) -> None:
        for _ in range(n):
            self.store.events[f"e{self.events}"] = {"timestamp": at, "batch_ids": [f"batch-{self.events}"]}
            self.events += 1

    def run(self, at: datetime, *, send_tries: int = 1) -> dict[str, Any]:
        run_id = f"scheduled__{at.isoformat()}"
        evaluation = steps.evaluate(self.store, PARAMS, dag_id=DAG, run_after=at, mute_value=None)
        outcome = None
        if steps.choose_alert(evaluation) != steps.NO_ALERT:
            for _ in range(send_tries):
                outcome = steps.send(
                    self.store,
                    {"stalled_count": 1},
                    evaluation,
                    PARAMS,
                    dag_id=DAG,
                    run_id=run_id,
                    base_url="https://airflow.example.com",
                    slack=self.slack,
                    now=at,
                )
        steps.record_state(self.store, evaluation, outcome, PARAMS, dag_id=DAG, run_id=run_id, run_after=at)
        return evaluation["decision"]


def minutes(n: float) -> datetime:
    return START + timedelta(minutes=n)


def incident(runs: Runs) -> list[str]:
    """WARNING, a reminder an hour later, CRITICAL, RESOLVED: the decisions' kinds."""
    kinds = []
    runs.cleanups(minutes(0), 3)
    kinds.append(runs.run(minutes(0))["kind"])  # WARNING opens
    runs.cleanups(minutes(45), 1)
    runs.cleanups(minutes(60), 2)
    kinds.append(runs.run(minutes(60))["kind"])  # 3 in the window, an hour on: a WARNING reminder
    runs.cleanups(minutes(75), 2)
    kinds.append(runs.run(minutes(75))["kind"])  # 5: CRITICAL
    kinds.append(runs.run(minutes(200))["kind"])  # the window is empty: RESOLVED
    return kinds


def test_an_incident_is_one_thread_with_its_first_message_edited_at_each_step():
    runs = Runs(MemorySlack(threads=True))

    assert incident(runs) == ["alert", "reminder", "escalation", "resolved"]

    first, *replies = runs.slack.posts
    assert first["thread_ts"] is None and first["message"].text.startswith("WARNING")
    assert [reply["thread_ts"] for reply in replies] == [first["ts"]] * 3
    assert [reply["broadcast"] for reply in replies] == [False, True, False], "only CRITICAL is broadcast"
    assert [edit["where"] for edit in runs.slack.edits] == [{"channel": "C0TEST", "ts": first["ts"]}] * 3
    headers = [edit["message"].blocks[0]["text"]["text"] for edit in runs.slack.edits]
    assert headers == [
        ":rotating_light: WARNING, ongoing: systemic batch stalls",
        ":rotating_light: CRITICAL, ongoing: systemic batch stalls",
        ":white_check_mark: RESOLVED: systemic batch stalls are over",
    ]
    assert "Lasted:* 3 h 20 min" in runs.slack.edits[-1]["message"].blocks[1]["text"]["text"]
    assert "slack_ts" not in runs.store.state or runs.store.state["slack_ts"] is None, (
        "RESOLVED ends the thread"
    )


def test_webhook_mode_posts_every_message_on_its_own_and_edits_nothing():
    runs = Runs(MemorySlack(threads=False))

    assert incident(runs) == ["alert", "reminder", "escalation", "resolved"]

    assert [post["thread_ts"] for post in runs.slack.posts] == [None] * 4
    assert runs.slack.edits == []


def test_the_next_incident_starts_a_thread_of_its_own():
    runs = Runs(MemorySlack(threads=True))
    incident(runs)

    runs.cleanups(minutes(300), 3)
    assert runs.run(minutes(300))["kind"] == "alert"

    assert runs.slack.posts[-1]["thread_ts"] is None
    assert runs.store.state["slack_ts"] == runs.slack.posts[-1]["ts"]


def test_a_first_message_that_is_gone_gets_a_new_one_which_says_why_and_holds_the_rest():
    runs = Runs(MemorySlack(threads=True))
    runs.cleanups(minutes(0), 3)
    runs.run(minutes(0))
    runs.slack.gone.add(runs.slack.posts[0]["ts"])  # someone deleted it

    runs.cleanups(minutes(60), 3)
    assert runs.run(minutes(60))["kind"] == "reminder"

    replacement = runs.slack.posts[-1]
    assert replacement["thread_ts"] is None, "a new message, not a reply to the lost one"
    assert "could not be found (Slack answered `thread_not_found`)" in replacement["message"].text
    assert "starts a new one" in replacement["message"].blocks[1]["elements"][0]["text"]
    assert runs.store.state["slack_ts"] == replacement["ts"], "later messages go into the new thread"

    runs.cleanups(minutes(75), 3)
    assert runs.run(minutes(75))["kind"] == "escalation"
    assert runs.slack.posts[-1]["thread_ts"] == replacement["ts"]


def test_a_retry_after_slack_accepted_posts_nothing_again_and_keeps_the_thread():
    runs = Runs(MemorySlack(threads=True))
    runs.cleanups(minutes(0), 3)

    runs.run(minutes(0), send_tries=2)  # the second try: the task failed after the post

    assert len(runs.slack.posts) == 1
    assert runs.store.state["slack_ts"] == runs.slack.posts[0]["ts"]


def test_a_concurrent_run_that_decided_the_same_posts_nothing():
    slack = MemorySlack(threads=True)
    runs = Runs(slack)
    runs.cleanups(minutes(0), 3)
    evaluation = steps.evaluate(runs.store, PARAMS, dag_id=DAG, run_after=minutes(0), mute_value=None)

    said = [
        steps.send(
            runs.store,
            {"stalled_count": 1},
            evaluation,
            PARAMS,
            dag_id=DAG,
            run_id=run_id,
            base_url="",
            slack=slack,
            now=minutes(0),
        )
        for run_id in ("manual__a", "manual__b")
    ]

    assert said == ["sent", "skipped"]
    assert len(slack.posts) == 1


def test_a_failed_edit_of_the_first_message_is_logged_and_never_fails_the_delivered_step(caplog):
    class EditsFail(MemorySlack):
        def update(self, where, message):
            raise AirflowException("Slack did not accept chat_update: internal_error")

    runs = Runs(EditsFail(threads=True))
    runs.cleanups(minutes(0), 3)
    runs.run(minutes(0))
    runs.cleanups(minutes(15), 5)

    assert runs.run(minutes(15))["kind"] == "escalation"

    assert len(runs.slack.posts) == 2
    assert "Could not edit the incident's first message" in caplog.text
    assert "internal_error" in caplog.text


@pytest.mark.parametrize("threads", [True, False], ids=["bot-token", "webhook"])
def test_a_test_message_stands_alone_and_touches_no_thread(threads):
    runs = Runs(MemorySlack(threads=threads))
    runs.cleanups(minutes(0), 3)
    runs.run(minutes(0))
    evaluation = steps.evaluate(
        runs.store, {**PARAMS, "force_alert": True}, dag_id=DAG, run_after=minutes(5), mute_value=None
    )

    steps.send(
        runs.store,
        {"stalled_count": 0},
        evaluation,
        {**PARAMS, "force_alert": True},
        dag_id=DAG,
        run_id="manual__test",
        base_url="",
        slack=runs.slack,
        now=minutes(5),
    )

    assert runs.slack.posts[-1]["thread_ts"] is None
    assert runs.slack.edits == []
