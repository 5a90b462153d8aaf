"""Bot-token mode when Slack took a message but the task never heard it, or the thread's card is
gone: whole DAG runs against the Slack stand-in's Web API.

- Slack accepts a post, then answers after the client's timeout: the try fails though the message
  is in Slack. The retry finds it by its metadata and posts nothing twice.
- An edit of the card answers `message_not_found` (it was deleted): the next message starts a new
  thread and says why, once.
"""

from __future__ import annotations

import json

import pytest

from dev.slack_sink import DEFAULT_CHANNEL
from tests.dags.test_slack_threads_e2e import TOKEN, header, run, seed, state, steps

pytestmark = pytest.mark.e2e

CLIENT_TIMEOUT = 2  # the connection's `timeout` extra: slack_sdk gives up on an answer after it


@pytest.fixture
def impatient_bot(fresh):
    """The bot-token connection, with a client timeout short enough for a late answer to beat it."""
    _, sink = fresh
    extra = {"base_url": sink.api_url, "channel": DEFAULT_CHANNEL, "timeout": CLIENT_TIMEOUT}
    connection = {"conn_type": "slack", "password": TOKEN, "extra": extra}
    return {"AIRFLOW_CONN_SLACK_DAILY_ORCHESTRATION": json.dumps(connection)}


def test_a_reply_slack_took_but_answered_too_late_is_not_posted_again(airflow, fresh, db, impatient_bot):
    _, sink = fresh
    seed(db, 0, 3, "late")
    run(airflow, impatient_bot, 0, "late-warning")
    sink.faults([{"method": "chat.postMessage", "answer_after_seconds": CLIENT_TIMEOUT + 2}])
    seed(db, 15, 3, "late")

    escalated = run(airflow, impatient_bot, 15, "late-critical")

    assert escalated.tries["send_alert"] == 2, "the first try timed out waiting for Slack's answer"
    [card] = sink.channel_messages()[:1]
    assert steps(sink, card["ts"])[1:] == ["WARNING", "Escalated to CRITICAL"], "posted once"
    assert len(sink.api_calls("chat.postMessage")) == 3, "card, WARNING, the escalation once"
    [lookup] = sink.api_calls("conversations.replies")
    assert lookup["args"]["ts"] == card["ts"] and int(lookup["args"]["limit"]) <= 20
    assert header(sink.thread(DEFAULT_CHANNEL, card["ts"])[0]).startswith(":rotating_light: CRITICAL")
    assert (state(db)["severity"], state(db)["slack_ts"]) == ("CRITICAL", card["ts"])


def test_a_card_slack_took_but_answered_too_late_is_found_and_only_the_step_follows(
    airflow, fresh, db, impatient_bot
):
    _, sink = fresh
    sink.faults([{"method": "chat.postMessage", "answer_after_seconds": CLIENT_TIMEOUT + 2}])
    seed(db, 0, 3, "lost-card")

    opened = run(airflow, impatient_bot, 0, "lost-card-warning")

    assert opened.tries["send_alert"] == 2
    [card] = sink.channel_messages()
    assert steps(sink, card["ts"])[1:] == ["WARNING"]
    assert sink.api_calls("conversations.history"), "the retry looked in the channel"
    assert state(db)["slack_ts"] == card["ts"]


def test_an_edit_that_finds_the_card_gone_ends_the_thread_for_the_next_message(
    airflow, fresh, db, impatient_bot
):
    _, sink = fresh
    seed(db, 0, 3, "edit-gone")
    run(airflow, impatient_bot, 0, "edit-gone-warning")
    [old] = sink.channel_messages()
    sink.faults([{"method": "chat.update", "error": "message_not_found"}])  # as Slack answers once deleted
    seed(db, 60, 3, "edit-gone")
    run(airflow, impatient_bot, 60, "edit-gone-reminder")
    assert steps(sink, old["ts"])[1:] == ["WARNING", "Still ongoing (WARNING)"]
    assert state(db)["slack_thread_gone"] == "message_not_found"

    seed(db, 75, 3, "edit-gone")
    run(airflow, impatient_bot, 75, "edit-gone-critical")

    new = sink.channel_messages()[1]
    assert new["ts"] != old["ts"] and new["thread_ts"] is None
    [_, step] = sink.thread(DEFAULT_CHANNEL, new["ts"])
    assert "Slack answered `message_not_found`" in step["payload"]["text"]
    assert "Escalated to CRITICAL" in step["payload"]["text"]
    assert (state(db)["slack_ts"], state(db).get("slack_thread_gone")) == (new["ts"], None)
