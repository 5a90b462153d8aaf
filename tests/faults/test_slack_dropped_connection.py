"""A connection to Slack dropped after Slack took the post: the Slack client must not resend it
blind (it would page twice). Real HTTP against the Slack stand-in, which does the call and then
closes the connection without an answer; webhook and bot-token mode."""

from __future__ import annotations

import json

import pytest

from batch_cleanup.hooks import slack
from batch_cleanup.messages import Message
from dev.slack_sink import DEFAULT_CHANNEL, SlackSinkAdmin
from tests.support.slack_webhook import webhook_connection

CONN_ID = "slack_dropped_test"


@pytest.fixture
def webhook(slack_sink, monkeypatch) -> SlackSinkAdmin:
    return webhook_connection(monkeypatch, slack_sink.url, CONN_ID)


@pytest.fixture
def bot(slack_sink, monkeypatch) -> SlackSinkAdmin:
    """The same stand-in through a bot-token connection (its Web API)."""
    admin = SlackSinkAdmin(slack_sink.url)
    admin.reset()
    extra = {"base_url": admin.api_url, "channel": DEFAULT_CHANNEL}
    connection = {"conn_type": "slack", "password": "xoxb-test-token", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    return admin


@pytest.mark.parametrize("mode", ["webhook", "bot"])
def test_a_connection_dropped_after_slack_took_the_post_is_not_resent_by_the_client(mode, request):
    """Slack has the message; only its answer is lost. A blind resend by the client would page twice:
    the task's retry decides instead (in bot-token mode it looks for the post first)."""
    admin = request.getfixturevalue(mode)
    fault = {"drop_after_call": True, "count": 1}
    admin.faults([{**fault, "method": "chat.postMessage"} if mode == "bot" else fault])

    with pytest.raises(Exception):  # noqa: B017  (the client's own error: the task fails and is retried)
        slack.post(CONN_ID, Message(text="once"))

    assert [m["payload"]["text"] for m in admin.messages()] == ["once"]
