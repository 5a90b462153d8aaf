"""A stand-in for Slack, for local runs and tests: an incoming webhook and a few Web API methods.

- `POST /services/...` with a JSON body answers like an incoming webhook of #daily-orchestration
  (`200 ok`, or Slack's plain-text error strings).
- `POST /api/chat.postMessage`, `/api/chat.update`, `/api/conversations.history`,
  `/api/conversations.replies` and `/api/auth.test` answer like Slack's Web API: HTTP 200 with
  `{"ok": true, ...}` or `{"ok": false, "error": "<code>"}`, a bot token in
  `Authorization: Bearer xoxb-...`, JSON, form-encoded or query arguments. Threads, broadcasts,
  edits and message `metadata` are kept as Slack keeps them; a reply to a deleted parent is
  accepted but lands on its own at the channel's root, as on Slack.
- `GET /` shows a channel as Slack would (blocks, mrkdwn, threads; dev/slack_render.py draws it).
- An unauthenticated `/admin/` API lets tests queue faults, read the messages and the Web API
  calls, create or delete channels, delete messages and pin the bot token. A Web API fault (its
  `method`, or `*`) answers `status`/`error`/`body` instead of doing the call, waits `delay_seconds`
  before it, or does the call and answers only `answer_after_seconds` later (a client that timed
  out then never hears that Slack accepted), or with `drop_after_call` does it and closes the
  connection without an answer (a connection reset after Slack accepted).

    [SLACK_SINK_BOT_TOKEN=xoxb-...] python -m dev.slack_sink --port 0

Any `xoxb-` token is accepted unless one is pinned: by that variable (not an option, since `ps`
shows a command line) or by `POST /admin/bot-token`. Standard library and `slack_sdk`'s Block Kit
models (which check the blocks) only, so it starts in well under a second.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, HeaderBlock

from dev import slack_render
from dev._stand_in import AdminClient, FaultQueue, StandInHandler, StandInServer, argument_parser, serve

# Any path under /services/ is accepted; this one reads as a fake in logs and connection URLs.
WEBHOOK_PATH = "/services/T000LOCAL/B000LOCAL/local-sink"
API_PREFIX = "/api/"
BOT_TOKEN_VARIABLE = "SLACK_SINK_BOT_TOKEN"
BOT_TOKEN_PREFIX = "xoxb-"

# The workspace, as auth.test and the messages name it. Webhooks post to the default channel.
DEFAULT_CHANNEL = "C000LOCAL"
DEFAULT_CHANNEL_NAME = "daily-orchestration"
TEAM_ID, TEAM_NAME = "T000LOCAL", "Local"
BOT_USER_ID, BOT_USER_NAME, BOT_ID, APP_ID = "U000LOCAL", "batch-cleanup", "B000LOCAL", "A000LOCAL"

# Slack answers errors with a short plain-text reason; a fault without `body` gets the usual one.
SLACK_ERROR_BODIES = {
    400: "invalid_payload",
    403: "invalid_token",
    404: "channel_not_found",
    410: "channel_is_archived",
    429: "rate_limited",
}
# The Web API's codes for a fault that sets an HTTP status but no `error`.
API_STATUS_ERRORS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}

# Slack refuses a message of more blocks; `slack_sdk`'s block models check each block, not the list.
MAX_BLOCKS = 50


class ApiError(Exception):
    """A Web API error: answered as HTTP 200 `{"ok": false, "error": code}`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Channel:
    id: str
    name: str
    is_archived: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "is_archived": self.is_archived}


@dataclass
class Posted:
    """A message in a channel: posted through the webhook or the Web API; `payload` is its current version."""

    via: str
    path: str
    channel: str
    ts: str
    payload: dict[str, Any]
    received_at: str
    thread_ts: str | None = None
    reply_broadcast: bool = False
    edited: dict[str, str] | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def top_level(self) -> bool:
        return self.thread_ts in (None, self.ts)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "payload": self.payload,
            "received_at": self.received_at,
            "via": self.via,
            "channel": self.channel,
            "ts": self.ts,
            "thread_ts": self.thread_ts,
            "reply_broadcast": self.reply_broadcast,
            "edited": self.edited is not None,
            "updates": list(self.updates),
            "metadata": self.payload.get("metadata"),
        }


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SinkState:
    """Channels, messages, queued faults and the calls seen, behind one lock.

    `bot_token`: the one token the Web API accepts; None accepts any `xoxb-` token.
    """

    def __init__(self, bot_token: str | None = None) -> None:
        self._lock = threading.Lock()
        self._start_token = bot_token
        self._last_micros = 0  # not reset: a ts stays unique and increasing for the process's life
        self._faults = FaultQueue()
        self._clear()

    def _clear(self) -> None:
        self._messages: list[Posted] = []
        self._deleted: set[tuple[str, str]] = set()  # (channel, ts) of messages deleted
        self._faults.clear()
        self._attempts = 0
        self._calls: list[dict[str, Any]] = []
        self._channels = {DEFAULT_CHANNEL: Channel(DEFAULT_CHANNEL, DEFAULT_CHANNEL_NAME)}
        self._bot_token = self._start_token

    def _next_ts(self) -> str:
        """Slack's `seconds.micros` message id: unique and increasing."""
        self._last_micros = max(time.time_ns() // 1000, self._last_micros + 1)
        return f"{self._last_micros // 1_000_000}.{self._last_micros % 1_000_000:06d}"

    # --- the webhook ---

    def attempt(self) -> dict[str, Any] | None:
        """Count one webhook POST; return the fault it meets, if any (faults without `method`)."""
        with self._lock:
            self._attempts += 1
            return self._faults.take(lambda fault: "method" not in fault)

    def store(self, path: str, payload: dict[str, Any]) -> tuple[int, str]:
        """A webhook message into the default channel; Slack's answer when that channel is gone."""
        with self._lock:
            channel = self._channels.get(DEFAULT_CHANNEL)
            if channel is None:
                return 404, "channel_not_found"
            if channel.is_archived:
                return 410, "channel_is_archived"
            self._messages.append(Posted("webhook", path, DEFAULT_CHANNEL, self._next_ts(), payload, _now()))
            return 200, "ok"

    # --- the Web API ---

    def api_fault(self, method: str) -> dict[str, Any] | None:
        """The first queued fault whose `method` is this one (or `*`)."""
        with self._lock:
            return self._faults.take(lambda fault: fault.get("method") in (method, "*"))

    def record_call(self, call: dict[str, Any]) -> None:
        with self._lock:
            self._calls.append(call)

    def check_token(self, token: str | None) -> None:
        with self._lock:
            pinned = self._bot_token
        if not token:
            raise ApiError("not_authed")
        if not token.startswith(BOT_TOKEN_PREFIX) or (pinned is not None and token != pinned):
            raise ApiError("invalid_auth")

    def post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            channel = self._channel(args.get("channel"), by_name=True)
            if channel.is_archived:
                raise ApiError("is_archived")
            payload = _message_payload(args)
            thread_ts = args.get("thread_ts") or None
            if thread_ts is not None:
                parent = self._find(channel.id, str(thread_ts))
                deleted = (channel.id, str(thread_ts)) in self._deleted
                if not deleted and (parent is None or not parent.top_level):
                    raise ApiError("thread_not_found")
                # Slack accepts a reply to a deleted parent, and posts it un-threaded at the root.
                thread_ts = None if deleted else parent.ts
            message = Posted(
                "api",
                f"{API_PREFIX}chat.postMessage",
                channel.id,
                self._next_ts(),
                payload,
                _now(),
                thread_ts=thread_ts,
                reply_broadcast=thread_ts is not None and _flag(args.get("reply_broadcast")),
            )
            self._messages.append(message)
            return {
                "ok": True,
                "channel": channel.id,
                "ts": message.ts,
                "message": self._slack_message(message),
            }

    def update_message(self, args: dict[str, Any]) -> dict[str, Any]:
        """Replace text, blocks, attachments or metadata (what is given; blocks not given are kept)."""
        with self._lock:
            channel = self._channel(args.get("channel"), by_name=False)
            message = self._find(channel.id, str(args.get("ts") or ""))
            if message is None:
                raise ApiError("message_not_found")
            changes = _message_payload(args)
            changes.pop("thread_ts", None)  # an edit never moves a message between threads
            message.updates.append({"payload": message.payload, "replaced_at": _now()})
            message.payload = {**message.payload, **changes}
            message.edited = {"user": BOT_USER_ID, "ts": self._next_ts()}
            return {
                "ok": True,
                "channel": channel.id,
                "ts": message.ts,
                "text": message.payload.get("text", ""),
                "message": self._slack_message(message),
            }

    def history(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.history: the channel's top-level messages and broadcasts, newest first."""
        with self._lock:
            channel = self._channel(args.get("channel"), by_name=False)
            shown = [
                m for m in self._messages if m.channel == channel.id and (m.top_level or m.reply_broadcast)
            ]
            return self._page_of(list(reversed(shown)), args)

    def replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.replies: a thread's parent, then its replies, oldest first."""
        with self._lock:
            channel = self._channel(args.get("channel"), by_name=False)
            ts = str(args.get("ts") or "")
            if not ts:
                raise ApiError("invalid_arguments")
            parent = self._find(channel.id, ts)
            if parent is None:
                raise ApiError("thread_not_found")
            head = self._find(channel.id, parent.thread_ts or parent.ts)
            if head is None:
                raise ApiError("thread_not_found")
            replies = [m for m in self._messages if m.thread_ts == head.ts and m is not head]
            answer = self._page_of(replies, args)
            # Slack answers with the parent first, whatever `oldest` leaves out.
            answer["messages"].insert(0, self._shown(head, args))
            return answer

    def _page_of(self, messages: list[Posted], args: dict[str, Any]) -> dict[str, Any]:
        """The first `limit` of `messages` after `oldest` (what the DAG's lookup sends)."""
        try:
            oldest = float(args.get("oldest") or 0)
            limit = int(args.get("limit") or 100)
        except ValueError:
            raise ApiError("invalid_arguments") from None
        within = [m for m in messages if oldest < float(m.ts)]
        page = [self._shown(m, args) for m in within[: max(limit, 1)]]
        return {"ok": True, "messages": page, "has_more": len(within) > len(page)}

    def _shown(self, message: Posted, args: dict[str, Any]) -> dict[str, Any]:
        """A message as the history answers it: its metadata only with `include_all_metadata`."""
        shown = self._slack_message(message)
        if not _flag(args.get("include_all_metadata")):
            shown.pop("metadata", None)
        return shown

    def auth_test(self, url: str) -> dict[str, Any]:
        return {
            "ok": True,
            "url": url,
            "team": TEAM_NAME,
            "user": BOT_USER_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _channel(self, ref: object, *, by_name: bool) -> Channel:
        """The channel `ref` names: its id, or (where Slack allows) its name, with or without `#`."""
        ref = str(ref or "")
        if ref in self._channels:
            return self._channels[ref]
        if by_name:
            for channel in self._channels.values():
                if channel.name == ref.removeprefix("#"):
                    return channel
        raise ApiError("channel_not_found")

    def _find(self, channel: str, ts: str) -> Posted | None:
        return next((m for m in self._messages if m.channel == channel and m.ts == ts), None)

    def _slack_message(self, message: Posted) -> dict[str, Any]:
        """The message object Slack answers with."""
        shown = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "ts": message.ts,
            "text": message.payload.get("text", ""),
            **{key: message.payload[key] for key in ("blocks", "metadata") if key in message.payload},
            "bot_profile": {"id": BOT_ID, "app_id": APP_ID, "name": BOT_USER_NAME, "team_id": TEAM_ID},
        }
        if message.thread_ts is not None:
            shown |= {"thread_ts": message.thread_ts, "parent_user_id": BOT_USER_ID}
        if message.reply_broadcast:
            shown["subtype"] = "thread_broadcast"
        replies = [m.ts for m in self._messages if m.thread_ts == message.ts and m is not message]
        if replies:
            shown |= {"thread_ts": message.ts, "reply_count": len(replies), "latest_reply": replies[-1]}
            shown |= {"reply_users": [BOT_USER_ID], "reply_users_count": 1}
        if message.edited is not None:
            shown["edited"] = dict(message.edited)
        return shown

    # --- admin ---

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [m.as_json() for m in self._messages if channel is None or m.channel == channel]

    def attempts(self) -> int:
        with self._lock:
            return self._attempts

    def calls(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._calls)

    def channels(self) -> list[dict[str, Any]]:
        with self._lock:
            return [channel.as_json() for channel in self._channels.values()]

    def add_faults(self, faults: list[dict[str, Any]]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def create_channel(self, body: dict[str, Any]) -> None:
        """Create a channel, or rename or (un)archive one: `{channel, name?, is_archived?}`."""
        channel_id = str(body["channel"])
        with self._lock:
            known = self._channels.get(channel_id)
            name = body.get("name") or (known.name if known else channel_id.lower())
            self._channels[channel_id] = Channel(channel_id, str(name), bool(body.get("is_archived", False)))

    def delete_channel(self, body: dict[str, Any]) -> None:
        with self._lock:
            if self._channels.pop(str(body["channel"]), None) is None:
                raise KeyError(f"no channel {body['channel']!r}")
            self._messages = [m for m in self._messages if m.channel != body["channel"]]

    def delete_message(self, body: dict[str, Any]) -> None:
        """Delete one message; the replies of a deleted parent stay, under "This message was deleted."."""
        with self._lock:
            message = self._find(str(body["channel"]), str(body["ts"]))
            if message is None:
                raise KeyError(f"no message {body['ts']!r} in {body['channel']!r}")
            self._messages.remove(message)
            self._deleted.add((message.channel, message.ts))

    def pin_bot_token(self, body: dict[str, Any]) -> None:
        token = body["token"]
        if token is not None and not str(token).startswith(BOT_TOKEN_PREFIX):
            raise ValueError(f"a bot token starts with {BOT_TOKEN_PREFIX!r}")
        with self._lock:
            self._bot_token = token

    def reset(self) -> None:
        """Back to the start: no messages, faults or calls, the default channel only, the start's token."""
        with self._lock:
            self._clear()


def _flag(value: object) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _json_arg(value: object, error: str) -> object:
    """A JSON argument: as sent in a JSON body, or a JSON string (how forms carry it)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ApiError(error) from None


def _message_payload(args: dict[str, Any]) -> dict[str, Any]:
    """The message's content and options from the call's arguments; Slack's errors where it refuses them."""
    payload = {key: value for key, value in args.items() if key not in ("channel", "ts", "token")}
    if "blocks" in payload:
        payload["blocks"] = _json_arg(payload["blocks"], "invalid_blocks_format")
        if (error := block_error(payload["blocks"])) is not None:
            raise ApiError(error)
    if "metadata" in payload:
        metadata = _json_arg(payload["metadata"], "invalid_metadata_format")
        if not (
            isinstance(metadata, dict)
            and isinstance(metadata.get("event_type"), str)
            and isinstance(metadata.get("event_payload"), dict)
        ):
            raise ApiError("invalid_metadata_format")
        payload["metadata"] = metadata
    if "reply_broadcast" in payload:
        payload["reply_broadcast"] = _flag(payload["reply_broadcast"])
    if not (payload.get("text") or payload.get("blocks")):
        raise ApiError("no_text")
    return payload


def _absolute_url(url: object) -> bool:
    """Slack takes a button's URL only with a scheme and a host ("/dags/..." is refused)."""
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(parts.scheme and parts.hostname)


def block_error(blocks: object) -> str | None:
    """`invalid_blocks` (or `invalid_blocks_format`) when Slack would refuse `blocks`, else None.

    Each block is checked by `slack_sdk`'s Block Kit models (types, required parts, Slack's
    limits); on top, what they let through and Slack refuses: a header in mrkdwn, a button's
    relative URL.
    """
    if not isinstance(blocks, list):
        return "invalid_blocks_format"
    if len(blocks) > MAX_BLOCKS or not all(isinstance(block, dict) for block in blocks):
        return "invalid_blocks"
    for block in blocks:
        try:
            parsed = Block.parse(block)  # None for a type it does not know
            if parsed is None:
                return "invalid_blocks"
            parsed.to_dict()  # `validate_json()` on the block and every part of it
        except (SlackObjectFormationError, TypeError, KeyError, AttributeError):
            return "invalid_blocks"  # a limit passed, a part missing or of the wrong shape
        if isinstance(parsed, HeaderBlock) and parsed.text.type != "plain_text":
            return "invalid_blocks"
        if isinstance(parsed, ActionsBlock) and any(
            isinstance(e, ButtonElement) and e.url is not None and not _absolute_url(e.url)
            for e in parsed.elements
        ):
            return "invalid_blocks"
    return None


def parse_arguments(raw: bytes, content_type: str, query: str) -> dict[str, Any]:
    """A Web API call's arguments: the query string's, then the body's (JSON or urlencoded)."""
    args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "application/json":
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError("invalid_json") from None
        if not isinstance(body, dict):
            raise ApiError("invalid_json")
        # Slack takes a JSON body's token from the header only; drop it here so it is never stored.
        body.pop("token", None)
        args.update(body)
    elif raw:
        try:
            args.update(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            raise ApiError("invalid_form_data") from None
    return args


class SinkHandler(StandInHandler):
    """Routes requests; `self.server.state` is the `SinkState`."""

    # The request line holds the webhook path, which is a secret on real Slack; fine for a stand-in.
    name = "slack-sink"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        state: SinkState = self.server.state
        if url.path == "/":
            self._page(dict(parse_qsl(url.query)).get("channel", DEFAULT_CHANNEL))
        elif url.path.startswith(API_PREFIX):
            self._web_api(url.path.removeprefix(API_PREFIX), b"", url.query)
        elif url.path == "/admin/messages":
            self._send_json({"messages": state.messages()})
        elif url.path == "/admin/attempts":
            self._send_json({"attempts": state.attempts()})
        elif url.path == "/admin/api-calls":
            self._send_json({"calls": state.calls()})
        elif url.path == "/admin/channels":
            self._send_json({"channels": state.channels()})
        else:
            self._send(404, "not_found")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        raw = self.read_body()
        admin = self.admin_routes()
        if url.path.startswith("/services/"):
            self._webhook(url.path, raw)
        elif url.path.startswith(API_PREFIX):
            self._web_api(url.path.removeprefix(API_PREFIX), raw, url.query)
        elif url.path in admin:
            self.post_admin(raw, admin[url.path])
        else:
            self._send(404, "no_service")  # what Slack says for a URL that is not a webhook

    def admin_routes(self) -> dict[str, Any]:
        state: SinkState = self.server.state
        return {
            **super().admin_routes(),
            "/admin/create-channel": state.create_channel,
            "/admin/delete-channel": state.delete_channel,
            "/admin/delete-message": state.delete_message,
            "/admin/bot-token": state.pin_bot_token,
        }

    def _page(self, channel: str) -> None:
        state: SinkState = self.server.state
        page = slack_render.render_page(
            state.channels(), channel, state.messages(channel), bot_name=BOT_USER_NAME
        )
        # Defence in depth: the page has no script of its own, so none may run at all.
        csp = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
        self._send(200, page, "text/html; charset=utf-8", headers={"Content-Security-Policy": csp})

    def _webhook(self, path: str, raw: bytes) -> None:
        fault = self.server.state.attempt() or {}
        # A fault with only `delay_seconds` is a slow Slack that then accepts the message.
        time.sleep(float(fault.get("delay_seconds", 0)))
        if "status" in fault:
            status = int(fault["status"])
            headers = {}
            if status == 429:
                # Slack's client waits out Retry-After before retrying; without it there is nothing to wait.
                headers["Retry-After"] = str(fault.get("retry_after", 1))
            body = fault.get("body", SLACK_ERROR_BODIES.get(status, "internal_error"))
            self._send(status, body, headers=headers)
            return
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self._send(400, "invalid_payload")
        elif not (payload.get("text") or payload.get("blocks")):
            self._send(400, "no_text")
        elif "blocks" in payload and (error := block_error(payload["blocks"])) is not None:
            self._send(400, error)  # as Slack's webhooks answer: the whole message is refused
        else:
            answer = self.server.state.store(path, payload)
            # `answer_after_seconds`: the message is in the channel, Slack's answer comes that much later.
            time.sleep(float(fault.get("answer_after_seconds", 0)))
            if fault.get("drop_after_call"):  # stored; the connection drops before the answer
                self.close_connection = True
                return
            self._send(*answer)

    def _web_api(self, method: str, raw: bytes, query: str) -> None:
        """One Web API call: a queued fault for this method, else the method; every call recorded."""
        state: SinkState = self.server.state
        fault = state.api_fault(method) or {}
        time.sleep(float(fault.get("delay_seconds", 0)))
        status, headers, args = 200, {}, {}
        if {"status", "error", "body"} & fault.keys():
            status = int(fault.get("status", 200))
            if status == 429:
                headers["Retry-After"] = str(fault.get("retry_after", 1))
            error = fault.get("error") or API_STATUS_ERRORS.get(status, "internal_error")
            answer: Any = fault.get("body", {"ok": False, "error": error})
        else:
            try:
                args = parse_arguments(raw, self.headers.get("Content-Type", ""), query)
                answer = self._call(method, args)
            except ApiError as err:
                answer = {"ok": False, "error": err.code}
        args.pop("token", None)
        ok = isinstance(answer, dict) and answer.get("ok") is True
        error = answer.get("error") if isinstance(answer, dict) else None
        call = {
            "method": method,
            "status": status,
            "ok": ok,
            "error": error,
            "args": args,
            "received_at": _now(),
        }
        state.record_call(call)
        # Slack did the call, then answers late: a client that gave up never hears it was accepted.
        time.sleep(float(fault.get("answer_after_seconds", 0)))
        if fault.get("drop_after_call"):  # Slack did the call; the connection drops before its answer
            self.close_connection = True
            return
        body = answer if isinstance(answer, str) else json.dumps(answer)
        self._send(status, body, "application/json; charset=utf-8", headers=headers)

    def _call(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        state: SinkState = self.server.state
        methods = {
            "chat.postMessage": state.post_message,
            "chat.update": state.update_message,
            "conversations.history": state.history,
            "conversations.replies": state.replies,
            "auth.test": lambda _: state.auth_test(f"http://{self.headers.get('Host', 'localhost')}/"),
        }
        if method not in methods:
            raise ApiError("unknown_method")
        header = self.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else args.get("token")
        state.check_token(token)
        return methods[method](args)

    def _send_json(self, payload: Any) -> None:
        self._send(200, json.dumps(payload), "application/json")

    def _send(
        self,
        status: int,
        body: str,
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.write_reply(status, body.encode(), content_type, headers)


class SlackSinkAdmin(AdminClient):
    """Client for the sink's `/admin/` API, and the addresses a Slack connection needs."""

    @property
    def webhook_url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    @property
    def api_url(self) -> str:
        """The Web API's base, for a Slack connection's `base_url` extra (slack_sdk appends the method)."""
        return self.base_url + API_PREFIX

    def messages(self) -> list[dict[str, Any]]:
        """Every message, oldest first: webhook ones (`via: webhook`) and Web API ones (`via: api`)."""
        return self.request("GET", "/admin/messages")["messages"]

    def channel_messages(self, channel: str = DEFAULT_CHANNEL) -> list[dict[str, Any]]:
        """What the channel itself shows, oldest first: top-level messages and broadcast replies."""
        return [
            m
            for m in self.messages()
            if m["channel"] == channel and (m["thread_ts"] in (None, m["ts"]) or m["reply_broadcast"])
        ]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The parent (unless deleted), then its replies, oldest first, like conversations.replies."""
        return [m for m in self.messages() if m["channel"] == channel and ts in (m["ts"], m["thread_ts"])]

    def attempts(self) -> int:
        """Webhook POSTs, faulted ones included."""
        return self.request("GET", "/admin/attempts")["attempts"]

    def api_calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """Web API calls, oldest first: method, status, ok, error, args (never the token), received_at."""
        calls = self.request("GET", "/admin/api-calls")["calls"]
        return [call for call in calls if method is None or call["method"] == method]

    def channels(self) -> list[dict[str, Any]]:
        return self.request("GET", "/admin/channels")["channels"]

    def create_channel(self, channel: str, name: str | None = None, *, archived: bool = False) -> None:
        self.request(
            "POST", "/admin/create-channel", {"channel": channel, "name": name, "is_archived": archived}
        )

    def delete_channel(self, channel: str) -> None:
        self.request("POST", "/admin/delete-channel", {"channel": channel})

    def delete_message(self, channel: str, ts: str) -> None:
        self.request("POST", "/admin/delete-message", {"channel": channel, "ts": ts})

    def pin_bot_token(self, token: str | None) -> None:
        """Accept only `token` from now on (None: any `xoxb-` token again), until reset."""
        self.request("POST", "/admin/bot-token", {"token": token})


def main(argv: list[str] | None = None) -> None:
    parser = argument_parser(__doc__)
    args = parser.parse_args(argv)
    token = os.environ.get(BOT_TOKEN_VARIABLE) or None
    if token is not None and not token.startswith(BOT_TOKEN_PREFIX):
        parser.error(f"{BOT_TOKEN_VARIABLE} must start with {BOT_TOKEN_PREFIX!r}")
    serve(StandInServer((args.host, args.port), SinkHandler, SinkState(token)), "slack sink")


if __name__ == "__main__":
    main()
