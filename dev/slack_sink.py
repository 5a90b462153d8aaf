"""A stand-in for Slack, for local runs and tests: an incoming webhook and the Web API methods the DAG calls.

- `POST /services/...` with a JSON body answers like an incoming webhook of #daily-orchestration
  (`200 ok`, or Slack's plain-text error strings).
- `POST /api/chat.postMessage`, `/api/chat.update`, `/api/conversations.history`,
  `/api/conversations.replies` and `/api/reactions.get` answer like Slack's Web API (what
  slack_sdk's WebClient sends): HTTP 200 with `{"ok": true, ...}` or `{"ok": false, "error":
  "<code>"}`, a bot token in `Authorization: Bearer xoxb-...`. Threads, broadcasts, edits, message
  `metadata` and reactions are kept as Slack keeps them; a reply to a deleted parent is accepted
  but lands on its own at the channel's root, as on Slack.
- `GET /` shows the channel as Slack would (blocks, mrkdwn, threads; dev/slack_render.py draws it).
- An unauthenticated `/admin/` API lets tests queue faults, read the messages and the Web API
  calls, delete messages, add or remove a user's reaction and pin the bot token. A webhook fault
  answers `status` (and `body`, `retry_after`); a Web API fault (its `method`) answers `error`, or
  `body` as is (garbage where Slack's JSON should be). Either may instead do the call and answer
  only `answer_after_seconds` later (a client that timed out then never hears that Slack
  accepted), or with `drop_after_call` do it and close the connection without an answer.

    python -m dev.slack_sink --port 0

Any `xoxb-` token is accepted unless one is pinned by `POST /admin/bot-token`. Standard library
and `slack_sdk`'s Block Kit models (which check the blocks) only, so it starts in well under a second.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, HeaderBlock

from dev import slack_render
from dev._stand_in import AdminClient, FaultQueue, StandInHandler, StandInServer, argument_parser, serve

# Any path under /services/ is accepted; this one reads as a fake in logs and connection URLs.
WEBHOOK_PATH = "/services/T000LOCAL/B000LOCAL/local-sink"
API_PREFIX = "/api/"
BOT_TOKEN_PREFIX = "xoxb-"
# The one channel; webhooks post to it.
DEFAULT_CHANNEL = "C000LOCAL"
DEFAULT_CHANNEL_NAME = "daily-orchestration"
BOT_USER_ID, BOT_USER_NAME = "U000LOCAL", "batch-cleanup"
# Slack refuses a message of more blocks; `slack_sdk`'s block models check each block, not the list.
MAX_BLOCKS = 50


class ApiError(Exception):
    """A Web API error code: answered as HTTP 200 `{"ok": false, "error": code}`."""


@dataclass
class Posted:
    """A message posted through the webhook or the Web API; `payload` is its current version."""

    via: str
    path: str
    ts: str
    payload: dict[str, Any]
    thread_ts: str | None = None
    reply_broadcast: bool = False
    edited: dict[str, str] | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)
    # Emoji name → the users who reacted with it, in the order they did (as Slack lists them).
    reactions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def top_level(self) -> bool:
        return self.thread_ts in (None, self.ts)

    def as_json(self) -> dict[str, Any]:
        extra = {"channel": DEFAULT_CHANNEL, "edited": self.edited is not None}
        return asdict(self) | extra | {"metadata": self.payload.get("metadata")}


class SinkState:
    """Messages, queued faults and the calls seen, behind one lock; `bot_token`: the one token the
    Web API accepts (None: any `xoxb-` token)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_micros = 0  # not reset: a ts stays unique and increasing for the process's life
        self._faults = FaultQueue()
        self.reset()

    def reset(self) -> None:
        """Back to the start: no messages, faults or calls, any token."""
        with self._lock:
            self._messages: list[Posted] = []
            self._deleted: set[str] = set()  # ts of messages deleted
            self._faults.clear()
            self._attempts = 0
            self._calls: list[dict[str, Any]] = []
            self.bot_token: str | None = None

    def _next_ts(self) -> str:
        """Slack's `seconds.micros` message id: unique and increasing."""
        self._last_micros = max(time.time_ns() // 1000, self._last_micros + 1)
        return f"{self._last_micros // 1_000_000}.{self._last_micros % 1_000_000:06d}"

    def attempt(self) -> dict[str, Any] | None:
        """Count one webhook POST; return the fault it meets, if any (faults without `method`)."""
        with self._lock:
            self._attempts += 1
            return self._faults.take(lambda fault: "method" not in fault)

    def store(self, path: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self._messages.append(Posted("webhook", path, self._next_ts(), payload))

    def api_fault(self, method: str) -> dict[str, Any] | None:
        with self._lock:
            return self._faults.take(lambda fault: fault.get("method") == method)

    def record_call(self, call: dict[str, Any]) -> None:
        with self._lock:
            self._calls.append(call)

    def check_token(self, token: str | None) -> None:
        if not token:
            raise ApiError("not_authed")
        if not token.startswith(BOT_TOKEN_PREFIX) or self.bot_token not in (None, token):
            raise ApiError("invalid_auth")

    def post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            _check_channel(args)
            thread_ts = args.get("thread_ts") or None
            if thread_ts is not None:
                parent = self._find(str(thread_ts))
                deleted = str(thread_ts) in self._deleted
                if not deleted and (parent is None or not parent.top_level):
                    raise ApiError("thread_not_found")
                # Slack accepts a reply to a deleted parent, and posts it un-threaded at the root.
                thread_ts = None if deleted else parent.ts
            message = Posted("api", f"{API_PREFIX}chat.postMessage", self._next_ts(), _message_payload(args))
            message.thread_ts = thread_ts
            message.reply_broadcast = thread_ts is not None and _flag(args.get("reply_broadcast"))
            self._messages.append(message)
            return {"ok": True, "channel": DEFAULT_CHANNEL, "ts": message.ts, "message": self._shown(message)}

    def update_message(self, args: dict[str, Any]) -> dict[str, Any]:
        """Replace text, blocks or metadata (what is given; what is not given is kept)."""
        with self._lock:
            _check_channel(args)
            message = self._find(str(args.get("ts") or ""))
            if message is None:
                raise ApiError("message_not_found")
            changes = _message_payload(args)
            changes.pop("thread_ts", None)  # an edit never moves a message between threads
            message.updates.append({"payload": message.payload})
            message.payload = {**message.payload, **changes}
            message.edited = {"user": BOT_USER_ID, "ts": self._next_ts()}
            return {"ok": True, "channel": DEFAULT_CHANNEL, "ts": message.ts, "message": self._shown(message)}

    def history(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.history: the channel's top-level messages and broadcasts, newest first."""
        with self._lock:
            _check_channel(args)
            shown = [m for m in self._messages if m.top_level or m.reply_broadcast]
            return self._page_of(list(reversed(shown)), args)

    def replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.replies: a thread's parent, then its replies, oldest first."""
        with self._lock:
            _check_channel(args)
            parent = self._find(str(args.get("ts") or ""))
            if parent is None or not parent.top_level:
                raise ApiError("thread_not_found")
            answer = self._page_of([m for m in self._messages if m.thread_ts == parent.ts != m.ts], args)
            # Slack answers with the parent first, whatever `oldest` leaves out.
            answer["messages"].insert(0, self._shown(parent, args))
            return answer

    def reactions(self, args: dict[str, Any]) -> dict[str, Any]:
        """reactions.get of a message (`channel`, `timestamp`): the message with its `reactions`, each
        `{name, users, count}` (Slack leaves the key out when there are none); a deleted one is not found."""
        with self._lock:
            _check_channel(args)
            message = self._find(str(args.get("timestamp") or ""))
            if message is None:
                raise ApiError("message_not_found")
            shown = self._shown(message)
            if message.reactions:
                shown["reactions"] = [
                    {"name": name, "users": list(users), "count": len(users)}
                    for name, users in message.reactions.items()
                ]
            return {"ok": True, "type": "message", "channel": DEFAULT_CHANNEL, "message": shown}

    def _page_of(self, messages: list[Posted], args: dict[str, Any]) -> dict[str, Any]:
        """The first `limit` of `messages` after `oldest` (what the DAG's lookup sends)."""
        within = [m for m in messages if float(args.get("oldest") or 0) < float(m.ts)]
        page = [self._shown(m, args) for m in within[: int(args.get("limit") or 100)]]
        return {"ok": True, "messages": page, "has_more": len(within) > len(page)}

    def _find(self, ts: str) -> Posted | None:
        return next((m for m in self._messages if m.ts == ts), None)

    def _shown(self, message: Posted, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """The message object Slack answers with; in a history, metadata only with `include_all_metadata`."""
        with_metadata = args is None or _flag(args.get("include_all_metadata"))
        keys = {"text", "blocks", "metadata"} if with_metadata else {"text", "blocks"}
        shown = {"type": "message", "user": BOT_USER_ID, "ts": message.ts}
        shown |= {key: value for key, value in message.payload.items() if key in keys}
        if message.thread_ts is not None:
            shown["thread_ts"] = message.thread_ts
        if message.reply_broadcast:
            shown["subtype"] = "thread_broadcast"
        if any(m.thread_ts == message.ts for m in self._messages):
            shown["thread_ts"] = message.ts
        if message.edited is not None:
            shown["edited"] = dict(message.edited)
        return shown

    # --- admin ---

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m.as_json() for m in self._messages]

    def attempts(self) -> int:
        with self._lock:
            return self._attempts

    def calls(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._calls)

    def add_faults(self, faults: list[dict[str, Any]]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def delete_message(self, body: dict[str, Any]) -> None:
        """Delete one message; the replies of a deleted parent stay, under "This message was deleted."."""
        with self._lock:
            message = self._find(str(body["ts"]))
            if message is None:
                raise KeyError(f"no message {body['ts']!r}")
            self._messages.remove(message)
            self._deleted.add(message.ts)

    def react(self, body: dict[str, Any]) -> None:
        """User `user` adds (or with `remove`, takes back) reaction `name` on the message `ts`; as on
        Slack, a user reacts with each emoji at most once."""
        with self._lock:
            message = self._find(str(body["ts"]))
            if message is None:
                raise KeyError(f"no message {body['ts']!r}")
            name, user = str(body["name"]), str(body["user"])
            users = message.reactions.setdefault(name, [])
            if user in users:
                users.remove(user)
            if not body.get("remove"):
                users.append(user)
            if not users:
                del message.reactions[name]

    def pin_bot_token(self, body: dict[str, Any]) -> None:
        token = body["token"]
        if token is not None and not str(token).startswith(BOT_TOKEN_PREFIX):
            raise ValueError(f"a bot token starts with {BOT_TOKEN_PREFIX!r}")
        self.bot_token = token


def _check_channel(args: dict[str, Any]) -> None:
    if args.get("channel") != DEFAULT_CHANNEL:
        raise ApiError("channel_not_found")


def _flag(value: object) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _message_payload(args: dict[str, Any]) -> dict[str, Any]:
    """The message's content and options from the call's arguments; Slack's errors where it refuses them."""
    payload = {key: value for key, value in args.items() if key not in ("channel", "ts")}
    if "blocks" in payload and (error := block_error(payload["blocks"])) is not None:
        raise ApiError(error)
    metadata = payload.get("metadata", {"event_type": "", "event_payload": {}})
    if not (isinstance(metadata, dict) and isinstance(metadata.get("event_type"), str)) or not isinstance(
        metadata.get("event_payload"), dict
    ):
        raise ApiError("invalid_metadata_format")
    if not (payload.get("text") or payload.get("blocks")):
        raise ApiError("no_text")
    return payload


def _absolute_url(url: object) -> bool:
    """Slack takes a button's URL only with a scheme and a host ("/dags/..." is refused)."""
    try:
        parts = urlsplit(url)
    except (ValueError, TypeError, AttributeError):
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


class SinkHandler(StandInHandler):
    """Routes requests; `self.server.state` is the `SinkState`."""

    # The request line holds the webhook path, which is a secret on real Slack; fine for a stand-in.
    name = "slack-sink"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        state: SinkState = self.server.state
        admin = {"/admin/messages": state.messages, "/admin/attempts": state.attempts}
        admin["/admin/api-calls"] = state.calls
        if url.path == "/":
            page = slack_render.render_page(DEFAULT_CHANNEL_NAME, state.messages(), bot_name=BOT_USER_NAME)
            # Defence in depth: the page has no script of its own, so none may run at all.
            csp = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
            self._send(200, page, "text/html; charset=utf-8", **{"Content-Security-Policy": csp})
        elif url.path in admin:
            self._send(200, json.dumps(admin[url.path]()), "application/json")
        else:
            self._send(404, "not_found")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        raw = self.read_body()
        admin = self.admin_routes()
        if url.path.startswith("/services/"):
            self._webhook(url.path, raw)
        elif url.path.startswith(API_PREFIX):
            self._web_api(url.path.removeprefix(API_PREFIX), raw)
        elif url.path in admin:
            self.post_admin(raw, admin[url.path])
        else:
            self._send(404, "no_service")  # what Slack says for a URL that is not a webhook

    def admin_routes(self) -> dict[str, Any]:
        state: SinkState = self.server.state
        return {
            **super().admin_routes(),
            "/admin/delete-message": state.delete_message,
            "/admin/reaction": state.react,
            "/admin/bot-token": state.pin_bot_token,
        }

    def _webhook(self, path: str, raw: bytes) -> None:
        fault = self.server.state.attempt() or {}
        if "status" in fault:
            status = int(fault["status"])
            # Slack's client waits out Retry-After before retrying; without it there is nothing to wait.
            headers = {"Retry-After": str(fault.get("retry_after", 1))} if status == 429 else {}
            body = fault.get("body", "rate_limited" if status == 429 else "internal_error")
            self._send(status, body, **headers)
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
            self.server.state.store(path, payload)
            if self._lose_answer(fault):
                return
            self._send(200, "ok")

    def _web_api(self, method: str, raw: bytes) -> None:
        """One Web API call: a queued fault for this method, else the method; every call recorded."""
        state: SinkState = self.server.state
        fault = state.api_fault(method) or {}
        args: dict[str, Any] = {}
        try:
            if "error" in fault:
                raise ApiError(fault["error"])
            # slack_sdk sends a write as JSON, a read's arguments form-encoded.
            if self.headers.get("Content-Type", "").startswith("application/json"):
                body = json.loads(raw)
                args |= body if isinstance(body, dict) else {}
            elif raw:
                args |= dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True))
            answer = self._call(method, args)
        except ValueError:  # neither JSON nor a form, or a bad `oldest` or `limit`
            answer = {"ok": False, "error": "invalid_arguments"}
        except ApiError as err:
            answer = {"ok": False, "error": str(err)}
        state.record_call({"method": method, "ok": answer["ok"], "error": answer.get("error"), "args": args})
        if self._lose_answer(fault):
            return
        # A fault's `body` is answered as is: garbage where Slack's JSON should be.
        self._send(200, str(fault.get("body", json.dumps(answer))), "application/json; charset=utf-8")

    def _lose_answer(self, fault: dict[str, Any]) -> bool:
        """Slack did the call; its answer comes `answer_after_seconds` late (a client that gave up never
        hears it was accepted), or with `drop_after_call` never: True when the connection is dropped."""
        time.sleep(float(fault.get("answer_after_seconds", 0)))
        self.close_connection = bool(fault.get("drop_after_call"))
        return self.close_connection

    def _call(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        state: SinkState = self.server.state
        methods = {
            "chat.postMessage": state.post_message,
            "chat.update": state.update_message,
            "conversations.history": state.history,
            "conversations.replies": state.replies,
            "reactions.get": state.reactions,
        }
        if method not in methods:
            raise ApiError("unknown_method")
        header = self.headers.get("Authorization", "")
        state.check_token(header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None)
        return methods[method](args)

    def _send(
        self, status: int, body: str, content_type: str = "text/plain; charset=utf-8", **headers: str
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
        return self.request("GET", "/admin/messages")

    def channel_messages(self, channel: str = DEFAULT_CHANNEL) -> list[dict[str, Any]]:
        """What the channel itself shows, oldest first: top-level messages and broadcast replies."""
        return [m for m in self.messages() if m["thread_ts"] in (None, m["ts"]) or m["reply_broadcast"]]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The parent (unless deleted), then its replies, oldest first, like conversations.replies."""
        return [m for m in self.messages() if ts in (m["ts"], m["thread_ts"])]

    def attempts(self) -> int:
        """Webhook POSTs, faulted ones included."""
        return self.request("GET", "/admin/attempts")

    def api_calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """Web API calls, oldest first: method, ok, error, args (never the token)."""
        calls = self.request("GET", "/admin/api-calls")
        return [call for call in calls if method is None or call["method"] == method]

    def delete_message(self, channel: str, ts: str) -> None:
        self.request("POST", "/admin/delete-message", {"channel": channel, "ts": ts})

    def react(self, ts: str, name: str, user: str, *, remove: bool = False) -> None:
        """User `user` reacts with emoji `name` (`white_check_mark`, no colons) on the message `ts`;
        `remove` takes the reaction back."""
        self.request("POST", "/admin/reaction", {"ts": ts, "name": name, "user": user, "remove": remove})

    def pin_bot_token(self, token: str | None) -> None:
        """Accept only `token` from now on (None: any `xoxb-` token again), until reset."""
        self.request("POST", "/admin/bot-token", {"token": token})


def main(argv: list[str] | None = None) -> None:
    args = argument_parser(__doc__).parse_args(argv)
    serve(StandInServer((args.host, args.port), SinkHandler, SinkState()), "slack sink")


if __name__ == "__main__":
    main()
