"""How the Slack hook sorts the Web API's answers: what only fixing the connection heals fails at
once, a lost thread asks for a new message, everything else is retried."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from batch_cleanup.compat import AirflowException, AirflowFailException
from batch_cleanup.hooks.slack import api_error
from batch_cleanup.ports import ThreadGone


def answer(error: str | None, status: int = 200) -> SimpleNamespace:
    return SimpleNamespace(data={"ok": False, "error": error} if error else "<html>", status_code=status)


@pytest.mark.parametrize("error", ["message_not_found", "thread_not_found", "channel_not_found"])
def test_a_reply_or_edit_whose_message_is_gone_asks_for_a_new_message(error):
    gone = api_error("conn", "chat.postMessage", answer(error), thread=True)
    assert isinstance(gone, ThreadGone) and gone.error == error


@pytest.mark.parametrize(
    "error", ["invalid_auth", "not_authed", "token_revoked", "missing_scope", "not_in_channel", "is_archived"]
)
def test_what_only_the_connection_can_heal_fails_at_once_naming_it(error):
    failure = api_error("slack_x", "chat.postMessage", answer(error), thread=False)
    assert type(failure) is AirflowFailException
    assert f"Slack refused chat.postMessage on connection 'slack_x' ({error})" in str(failure)
    assert "fix connection 'slack_x'" in str(failure)


@pytest.mark.parametrize(
    ("method", "scope"),
    [
        ("chat.postMessage", "chat:write"),
        ("conversations.history", "channels:history"),
        ("conversations.replies", "channels:history"),
    ],
)
def test_a_missing_scope_names_the_scope_the_method_needs(method, scope):
    failure = api_error("slack_x", method, answer("missing_scope"), thread=method == "conversations.replies")
    assert type(failure) is AirflowFailException
    assert f"the bot token needs the scope {scope}" in str(failure)


def test_a_channel_that_is_gone_for_a_new_message_is_the_connections_fault():
    failure = api_error("c", "chat.postMessage", answer("channel_not_found"), thread=False)
    assert type(failure) is AirflowFailException


@pytest.mark.parametrize(
    ("error", "status"), [("internal_error", 200), ("ratelimited", 429), (None, 503)], ids=str
)
def test_the_rest_is_retried(error, status):
    retried = api_error("c", "chat.update", answer(error, status), thread=True)
    assert type(retried) is AirflowException
    assert (error or f"HTTP {status}") in str(retried)
