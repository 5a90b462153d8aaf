"""The Deadline Alert callback where the run's current state cannot be read (here: outside a triggerer,
no supervisor to ask): a hung run is still posted, saying so; a run the scheduler saw ended is not."""

from __future__ import annotations

import asyncio

import pytest

from batch_cleanup.notify import deadline_missed
from dev.slack_sink import SlackSinkAdmin
from tests.support.slack_webhook import webhook_connection

CONN_ID = "slack_deadline_test"


@pytest.fixture
def sink(slack_sink, monkeypatch) -> SlackSinkAdmin:
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    return webhook_connection(monkeypatch, slack_sink.url, CONN_ID)


def missed(state: str) -> None:
    """The callback as the triggerer calls it, with the context the scheduler gives it."""
    run = {"dag_id": "stalled_batch_cleanup", "dag_run_id": "hung-1", "state": state, "queued_at": "09:00"}
    asyncio.run(deadline_missed(slack_conn_id=CONN_ID, minutes=10, context={"dag_run": run}))


def test_unreadable_state_still_posts_a_hung_run_and_says_the_state_was_unknown(sink, caplog):
    missed("running")

    [message] = sink.messages()
    text = message["payload"]["text"]
    assert "overdue" in text and "hung-1" in text
    assert "current state could not be read" in text and "when the deadline passed it was running" in text
    assert "could not be read" in caplog.text


@pytest.mark.parametrize("state", ["failed", "success"])
def test_a_run_the_scheduler_saw_ended_posts_nothing(sink, state, caplog):
    missed(state)

    assert sink.messages() == []
    assert f"hung-1 of stalled_batch_cleanup has ended ({state})" in caplog.text
