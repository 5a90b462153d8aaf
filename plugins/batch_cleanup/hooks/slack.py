"""Posting to the on-call channel through the Slack provider's hooks, in one of two modes.

- **Webhook** (`slackwebhook` connection, the default): `SlackWebhookHook`; messages stand alone.
- **Bot token** (`slack` connection: a token with `chat:write` and `channels:history`, or
  `groups:history` for a private channel, the channel id in the extra's `channel`): `SlackHook`'s
  Web API client. `chat.postMessage` answers with the message's `channel` and `ts`, so an
  incident's later messages go into its thread and its first message can be edited with
  `chat.update`. Each message carries `metadata` naming its decision, so that a retry can find
  with `conversations.history` / `conversations.replies` what an earlier try posted. With
  `reactions:read` too, `reactions.get` reads the responders' labels on an incident's first message.

Everything posted goes through Airflow's secrets masker first: an error text may echo a key.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.providers.slack.hooks.slack import SlackHook
from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

from batch_cleanup.compat import AirflowException, AirflowFailException
from batch_cleanup.masking import redact
from batch_cleanup.ports import Message, ThreadGone

TIMEOUT_SECONDS = 30
MAX_RETRIES = 2
# How many messages a look for an earlier try's post reads: it looks only since the run began.
LOOKUP_LIMIT = 20
# 4xx answers that a retry cannot heal: a revoked or mistyped webhook, an archived channel, a bad body.
# 408 and 429 are Slack asking to come back later, and stay retried like 5xx.
RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})
BOT_CONN_TYPE = "slack"
# Web API errors (https://api.slack.com/methods/chat.postMessage#errors) that only fixing the
# connection, the app's scopes or the channel can heal: failing at once, not retried.
FIXABLE_API_ERRORS = frozenset(
    {"not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired"}  # the token
    | {"no_permission", "missing_scope", "not_allowed_token_type"}  # its scopes
    | {"channel_not_found", "not_in_channel", "is_archived", "restricted_action"}  # the channel
    | {"invalid_blocks", "invalid_blocks_format", "no_text", "msg_too_long", "invalid_arguments"}  # the body
    | {"cant_update_message", "edit_window_closed"}  # the edit
)
# The scopes each Web API method needs, named when Slack answers `missing_scope`.
HISTORY_SCOPE = "channels:history (groups:history for a private channel)"
SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "conversations.history": HISTORY_SCOPE,
    "conversations.replies": HISTORY_SCOPE,
    "reactions.get": "reactions:read",
}
# What Slack says when the message a reply or an edit points at is gone (deleted, or its channel).
THREAD_GONE_ERRORS = frozenset({"message_not_found", "thread_not_found", "channel_not_found"})


def _retry_handlers() -> list[Any]:
    """The Slack client's retry handlers (it retries nothing without them): 429 waits out
    `Retry-After`; 5xx and connections that could not be made are tried again a few times.

    A connection dropped once the request was sent is not retried by the client: Slack may have
    taken the post, and a blind resend would page twice. The task's retry handles it (in bot-token
    mode it first looks for the post by its metadata, delivery.Thread)."""
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    class NotConnectedRetryHandler(ConnectionErrorRetryHandler):
        def _can_retry(self, *, state, request, response=None, error=None) -> bool:
            return response is None and _never_sent(error)

    return [
        RateLimitErrorRetryHandler(max_retry_count=MAX_RETRIES),
        ServerErrorRetryHandler(max_retry_count=MAX_RETRIES),
        NotConnectedRetryHandler(max_retry_count=MAX_RETRIES),
    ]


def _never_sent(error: BaseException | None) -> bool:
    """The connection could not be made (refused, no such host): the request never left."""
    import socket
    from urllib.error import URLError

    reason = error.reason if isinstance(error, URLError) else error
    return isinstance(reason, ConnectionRefusedError | socket.gaierror)


def _async_retry_handlers() -> list[Any]:
    """The same handlers for the triggerer's event loop (aiohttp's error for a connection that
    could not be made is ClientConnectorError)."""
    from aiohttp import ClientConnectorError
    from slack_sdk.http_retry.builtin_async_handlers import (
        AsyncConnectionErrorRetryHandler,
        AsyncRateLimitErrorRetryHandler,
        AsyncServerErrorRetryHandler,
    )

    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=MAX_RETRIES),
        AsyncServerErrorRetryHandler(max_retry_count=MAX_RETRIES),
        AsyncConnectionErrorRetryHandler(max_retry_count=MAX_RETRIES, error_types=[ClientConnectorError]),
    ]


def webhook_hook(conn_id: str, *, asynchronous: bool = False) -> SlackWebhookHook:
    """The provider's webhook hook with the Slack client's retry handlers."""
    handlers = _async_retry_handlers() if asynchronous else _retry_handlers()
    return SlackWebhookHook(slack_webhook_conn_id=conn_id, timeout=TIMEOUT_SECONDS, retry_handlers=handlers)


def bot_hook(conn_id: str, *, asynchronous: bool = False) -> SlackHook:
    """The provider's Web API hook with the same retry handlers (its extra may set `base_url`, and
    `timeout`: slack_sdk's 30 s, TIMEOUT_SECONDS, when it does not)."""
    handlers = _async_retry_handlers() if asynchronous else _retry_handlers()
    return SlackHook(slack_conn_id=conn_id, retry_handlers=handlers)


def payload(message: Message) -> dict[str, Any]:
    """The body posted for `message`, every string passed through the secrets masker."""
    return redact({"text": message.text, "blocks": message.blocks})


def channel_of(conn_id: str, connection: Any) -> str:
    """The channel id a bot-token connection posts to (its extra's `channel`)."""
    channel = str((connection.extra_dejson or {}).get("channel") or "").strip()
    if not channel:
        raise AirflowFailException(
            f"Slack connection {conn_id!r} is a bot-token connection (conn_type {BOT_CONN_TYPE!r}) but its "
            'extra has no `channel`: set it to the channel id, such as {"channel": "C0123456789"}.'
        )
    return channel


class OnCallChannel:
    """The channel behind a Slack connection, in webhook or bot-token mode (see the module docstring).

    `post` returns where the message landed (`{"channel", "ts"}`) in bot-token mode, `{}` for a webhook.
    """

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id

    @cached_property
    def connection(self) -> Any:
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(self.conn_id)

    @property
    def threads(self) -> bool:
        """Bot-token mode: messages can go into a thread and be edited."""
        return self.connection.conn_type == BOT_CONN_TYPE

    def post(
        self,
        message: Message,
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, str]:
        """Post one message (into the thread of `thread_ts` when given); raises unless Slack accepted it.

        Returns where it landed: `channel`, `ts` and, when Slack put it in a thread, `thread_ts`
        (a reply to a deleted parent is accepted, but lands un-threaded at the channel's root).
        ThreadGone when `thread_ts`'s message is gone; AirflowFailException when only fixing the
        connection helps; AirflowException (retried) otherwise.
        """
        if not self.threads:
            response = webhook_hook(self.conn_id).client.send_dict(payload(message))
            check_answer(self.conn_id, response.status_code, response.body)
            return {}
        channel = channel_of(self.conn_id, self.connection)
        extra: dict[str, Any] = {"thread_ts": thread_ts, "reply_broadcast": broadcast} if thread_ts else {}
        if metadata is not None:
            extra["metadata"] = metadata
        answer = self._call(
            "chat_postMessage", thread=thread_ts is not None, channel=channel, **payload(message), **extra
        )
        return _where(str(answer["channel"]), answer.get("message") or {"ts": answer["ts"]})

    def update(
        self, where: dict[str, str], message: Message, *, metadata: dict[str, Any] | None = None
    ) -> None:
        """Replace the message at `where` (`{"channel", "ts"}`, and its `metadata` when given);
        ThreadGone when it is gone."""
        extra = {"metadata": metadata} if metadata is not None else {}
        self._call(
            "chat_update", thread=True, channel=where["channel"], ts=where["ts"], **payload(message), **extra
        )

    def find(
        self, event_type: str, key: dict[str, Any], *, oldest: float, thread_ts: str | None = None
    ) -> list[dict[str, Any]]:
        """The messages whose `metadata` is of `event_type` with every item of `key` in its payload,
        among the first LOOKUP_LIMIT since `oldest` (Unix seconds): in the thread of `thread_ts`
        (its parent included), else in the channel. Each as `post` says where it is, with its
        `payload`; ThreadGone when `thread_ts`'s message is gone."""
        channel = channel_of(self.conn_id, self.connection)
        arguments = {
            "channel": channel,
            "oldest": f"{oldest:.6f}",
            "limit": LOOKUP_LIMIT,
            "include_all_metadata": True,
        }
        if thread_ts is None:
            answer = self._call("conversations_history", thread=False, **arguments)
        else:
            answer = self._call("conversations_replies", thread=True, ts=thread_ts, **arguments)
        found = []
        for message in answer.get("messages") or []:
            metadata = message.get("metadata") or {}
            carried = metadata.get("event_payload") or {}
            if metadata.get("event_type") == event_type and all(carried.get(k) == v for k, v in key.items()):
                found.append({**_where(channel, message), "payload": carried})
        return found

    def reactions(self, where: dict[str, str]) -> dict[str, list[str]]:
        """The reactions on the message at `where` (`{"channel", "ts"}`): emoji name → the ids of the
        users who reacted with it, in Slack's order; ThreadGone when the message is gone.

        An answer of another shape raises: read as "no reactions", it would erase the labels."""
        answer = self._call(
            "reactions_get", thread=True, channel=where["channel"], timestamp=where["ts"], full=True
        )
        message = answer.get("message")
        found = message.get("reactions", []) if isinstance(message, dict) else None
        if isinstance(found, list) and all(_is_reaction(reaction) for reaction in found):
            return {reaction["name"]: list(reaction["users"]) for reaction in found}
        raise AirflowException(
            f"Slack answered reactions.get on connection {self.conn_id!r} with something other than a "
            f"message and its reactions (each a name and a list of user ids): {str(answer.data)[:200]!r}"
        )

    def _call(self, method: str, *, thread: bool, **arguments: Any) -> Any:
        from slack_sdk.errors import SlackApiError, SlackClientError

        name = method.replace("_", ".")
        try:
            return getattr(bot_hook(self.conn_id).client, method)(**arguments)
        except SlackApiError as err:
            raise api_error(self.conn_id, name, err.response, thread=thread) from None
        except (OSError, SlackClientError) as err:  # no answer: a timeout, a refused or dropped connection
            raise AirflowException(
                f"Slack did not answer {name} on connection {self.conn_id!r}: {type(err).__name__}: {err}"
            ) from err


def _is_reaction(reaction: Any) -> bool:
    return (
        isinstance(reaction, dict)
        and isinstance(reaction.get("name"), str)
        and isinstance(reaction.get("users"), list)
        and all(isinstance(user, str) for user in reaction["users"])
    )


def _where(channel: str, message: dict[str, Any]) -> dict[str, str]:
    """`{"channel", "ts"}` of a message Slack answered with, and its `thread_ts` when it is a reply."""
    where = {"channel": channel, "ts": str(message["ts"])}
    if message.get("thread_ts") and message["thread_ts"] != message["ts"]:
        where["thread_ts"] = str(message["thread_ts"])
    return where


def api_error(conn_id: str, method: str, response: Any, *, thread: bool) -> Exception:
    """The exception for a Web API answer that is not `ok`; `thread`: it pointed at an existing message."""
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    error = str(data.get("error") or f"HTTP {getattr(response, 'status_code', '?')}")
    if thread and error in THREAD_GONE_ERRORS:
        return ThreadGone(error)
    if error == "missing_scope":
        return AirflowFailException(
            f"Slack refused {method} on connection {conn_id!r} (missing_scope): the bot token needs the "
            f"scope {SCOPES.get(method, data.get('needed') or '?')}; add it to the Slack app, reinstall it "
            f"and fix connection {conn_id!r} if its token changed. Not retried."
        )
    if error in FIXABLE_API_ERRORS:
        return AirflowFailException(
            f"Slack refused {method} on connection {conn_id!r} ({error}): the token, its scopes "
            f"({SCOPES.get(method, 'chat:write')}) or the channel id in the extra is wrong; fix connection "
            f"{conn_id!r}. Not retried."
        )
    return AirflowException(f"Slack did not accept {method} on connection {conn_id!r}: {error}")


def post(conn_id: str, message: Message) -> None:
    """Post one stand-alone message (failures, run failures): to the webhook, or the bot's channel."""
    OnCallChannel(conn_id).post(message)


async def apost(conn_id: str, message: Message) -> None:
    """`post` for async callbacks (the triggerer)."""
    from airflow.providers.common.compat.connection import get_async_connection

    connection = await get_async_connection(conn_id)
    if connection.conn_type != BOT_CONN_TYPE:
        client = await webhook_hook(conn_id, asynchronous=True).get_async_client()
        response = await client.send_dict(payload(message))
        check_answer(conn_id, response.status_code, response.body)
        return
    from slack_sdk.errors import SlackApiError

    client = await bot_hook(conn_id, asynchronous=True).get_async_client()
    try:
        await client.chat_postMessage(channel=channel_of(conn_id, connection), **payload(message))
    except SlackApiError as err:
        raise api_error(conn_id, "chat.postMessage", err.response, thread=False) from None


def check_answer(conn_id: str, status: int, body: Any) -> None:
    """Nothing for 200; AirflowFailException when only fixing the connection helps; else AirflowException."""
    if status == 200:
        return
    answer = f"HTTP {status} {str(body)[:200]!r}"
    if 400 <= status < 500 and status not in RETRYABLE_CLIENT_ERRORS:
        raise AirflowFailException(
            f"Slack refused the message on connection {conn_id!r} ({answer}): the webhook URL is wrong, "
            f"revoked or its channel is gone; fix connection {conn_id!r}. Not retried."
        )
    raise AirflowException(f"Slack did not accept the message on connection {conn_id!r}: {answer}")
