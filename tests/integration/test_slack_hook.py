"""The Slack hook against the Slack stand-in over real HTTP: what is posted is masked, configuration
errors fail at once, outages are retried, and the async path (the deadline callback's) retries too."""

from __future__ import annotations

import asyncio
import json

import pytest

from batch_cleanup.compat import AirflowException, AirflowFailException
from batch_cleanup.hooks import slack
from batch_cleanup.masking import mask_secret
from batch_cleanup.messages import Message
from dev.slack_sink import SlackSinkAdmin
from tests.support.slack_webhook import webhook_connection

CONN_ID = "slack_hook_test"
SECRET = "sk-live-0c1d2e3f4a5b6c7d-NEVER-POST"


@pytest.fixture
def sink(slack_sink, monkeypatch) -> SlackSinkAdmin:
    return webhook_connection(monkeypatch, slack_sink.url, CONN_ID)


def nested(text: str) -> Message:
    """A secret in the fallback and seven levels deep in the blocks, past the masker's own depth limit."""
    button = {"type": "button", "text": {"type": "plain_text", "text": text}, "url": "https://a.example"}
    return Message(
        text=f"fallback {text}",
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": f"section {text}"}},
            {"type": "actions", "elements": [button]},
        ],
    )


def test_a_masked_secret_is_replaced_everywhere_in_the_payload(sink):
    mask_secret(SECRET)

    slack.post(CONN_ID, nested(f"key={SECRET}"))

    [message] = sink.messages()
    posted = json.dumps(message["payload"])
    assert SECRET not in posted
    assert posted.count("key=***") == 3, posted


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, "no_service"), (404, "channel_not_found"), (403, "invalid_token"), (410, "channel_is_archived")],
)
def test_a_configuration_error_fails_at_once_naming_the_connection(sink, status, body):
    sink.faults([{"status": status, "body": body, "count": 5}])

    with pytest.raises(AirflowFailException, match=rf"connection '{CONN_ID}' \(HTTP {status} '{body}'\)"):
        slack.post(CONN_ID, nested("x"))

    assert sink.attempts() == 1, "no retry for what a retry cannot heal"


def test_an_outage_that_outlasts_the_client_retries_is_left_to_airflow(sink):
    sink.faults([{"status": 503, "count": 5}])

    with pytest.raises(AirflowException) as raised:
        slack.post(CONN_ID, nested("x"))

    assert not isinstance(raised.value, AirflowFailException), "a 5xx may heal: Airflow retries the task"
    assert sink.attempts() == 1 + slack.MAX_RETRIES


@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 429, "retry_after": 1}], ids=["500", "429"])
def test_the_async_path_retries_like_the_sync_one(sink, fault):
    sink.faults([{**fault, "count": 1}])

    asyncio.run(slack.apost(CONN_ID, nested("overdue")))

    assert sink.attempts() == 2
    [message] = sink.messages()
    assert message["payload"]["text"] == "fallback overdue"


def test_the_async_path_masks_and_fails_at_once_too(sink):
    mask_secret(SECRET)
    sink.faults([{"status": 403, "body": "invalid_token", "count": 5}])

    with pytest.raises(AirflowFailException, match="invalid_token"):
        asyncio.run(slack.apost(CONN_ID, nested(SECRET)))
    sink.reset()
    asyncio.run(slack.apost(CONN_ID, nested(SECRET)))

    assert SECRET not in json.dumps(sink.messages()[0]["payload"])
