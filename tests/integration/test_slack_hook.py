"""The Slack hook against the Slack stand-in over real HTTP: what is posted is masked, configuration
errors fail at once, outages are retried, and the async path (the deadline callback's) retries too;
in bot-token mode, the reactions on a message are read, and every way of failing names the
connection and the method."""

from __future__ import annotations

import asyncio
import json

import pytest

from batch_cleanup.compat import AirflowException, AirflowFailException
from batch_cleanup.hooks import slack
from batch_cleanup.masking import mask_secret
from batch_cleanup.messages import Message
from batch_cleanup.ports import ThreadGone
from dev.slack_sink import DEFAULT_CHANNEL, SlackSinkAdmin
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


# --- bot-token mode: the reactions on a message ----------------------------------------------------

BOT_CONN_ID = "slack_hook_bot_test"


@pytest.fixture
def bot(slack_sink, monkeypatch) -> tuple[slack.OnCallChannel, SlackSinkAdmin]:
    """A bot-token connection to the stand-in's Web API (client timeout 1 s), and the stand-in."""
    admin = SlackSinkAdmin(slack_sink.url)
    admin.reset()
    extra = {"base_url": admin.api_url, "channel": DEFAULT_CHANNEL, "timeout": 1}
    connection = {"conn_type": "slack", "password": "xoxb-test-token", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{BOT_CONN_ID.upper()}", json.dumps(connection))
    return slack.OnCallChannel(BOT_CONN_ID), admin


def test_reactions_are_read_by_emoji_with_the_users_in_slacks_order(bot):
    channel, sink = bot
    where = channel.post(Message(text="card"))
    bare = channel.post(Message(text="nobody reacts"))
    for name, user in [("no_bell", "U2"), ("white_check_mark", "U1"), ("no_bell", "U3")]:
        sink.react(where["ts"], name, user)

    assert channel.reactions(where) == {"no_bell": ["U2", "U3"], "white_check_mark": ["U1"]}
    assert channel.reactions(bare) == {}
    assert [call["args"]["timestamp"] for call in sink.api_calls("reactions.get")] == [
        where["ts"],
        bare["ts"],
    ]


def test_the_reactions_of_a_deleted_message_are_a_thread_gone(bot):
    channel, sink = bot
    where = channel.post(Message(text="card"))
    sink.delete_message(DEFAULT_CHANNEL, where["ts"])

    with pytest.raises(ThreadGone) as gone:
        channel.reactions(where)
    assert gone.value.error == "message_not_found"


def test_a_token_without_reactions_read_fails_at_once_naming_the_scope(bot):
    channel, sink = bot
    where = channel.post(Message(text="card"))
    sink.faults([{"method": "reactions.get", "error": "missing_scope"}])

    with pytest.raises(AirflowFailException) as failed:
        channel.reactions(where)
    assert f"Slack refused reactions.get on connection '{BOT_CONN_ID}' (missing_scope)" in str(failed.value)
    assert "needs the scope reactions:read" in str(failed.value)


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ({"answer_after_seconds": 2}, "Slack did not answer reactions.get on connection"),
        ({"body": "<html>502 Bad Gateway</html>"}, "non-JSON"),
        (
            {"body": '{"ok": true, "message": {"reactions": "white_check_mark"}}'},
            "something other than a message and its reactions",
        ),
        ({"error": "internal_error"}, "Slack did not accept reactions.get on connection"),
    ],
    ids=["hangs", "not-json", "wrong-shape", "refused"],
)
def test_an_answer_that_is_no_answer_raises_naming_the_connection_and_the_method(bot, fault, said):
    channel, sink = bot
    where = channel.post(Message(text="card"))
    sink.faults([{"method": "reactions.get", **fault, "count": 5}])

    with pytest.raises(AirflowException) as raised:
        channel.reactions(where)

    assert said in str(raised.value) and "reactions.get" in str(raised.value)
    assert f"'{BOT_CONN_ID}'" in str(raised.value)
    assert not isinstance(raised.value, AirflowFailException), "a later run may find Slack well again"
