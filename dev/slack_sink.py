"""A stand-in for a Slack incoming webhook, for local runs and tests.

`POST /services/...` with a JSON body answers like Slack does (`200 ok`, or Slack's error
strings), `GET /` shows what arrived, and an unauthenticated `/admin/` API lets tests queue
faults and read the messages.

    python -m dev.slack_sink --port 0

Standard library only, so it starts in well under a second.
"""

from __future__ import annotations

import html
import json
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from dev._stand_in import AdminClient, FaultQueue, StandInHandler, StandInServer, argument_parser, serve

# Any path under /services/ is accepted; this one reads as a fake in logs and connection URLs.
WEBHOOK_PATH = "/services/T000LOCAL/B000LOCAL/local-sink"

# Slack answers errors with a short plain-text reason; a fault without `body` gets the usual one.
SLACK_ERROR_BODIES = {
    400: "invalid_payload",
    403: "invalid_token",
    404: "channel_not_found",
    410: "channel_is_archived",
    429: "rate_limited",
}


class SinkState:
    """Accepted messages, queued faults and the attempt count, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._faults = FaultQueue()
        self._attempts = 0

    def attempt(self) -> dict[str, Any] | None:
        """Count one webhook POST; return the fault it meets, if any."""
        with self._lock:
            self._attempts += 1
            return self._faults.take()

    def store(self, path: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self._messages.append(
                {"path": path, "payload": payload, "received_at": datetime.now(UTC).isoformat()}
            )

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages)

    def attempts(self) -> int:
        with self._lock:
            return self._attempts

    def add_faults(self, faults: list[dict[str, Any]]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._faults.clear()
            self._attempts = 0


class SinkHandler(StandInHandler):
    """Routes requests; `self.server.state` is the `SinkState`."""

    # The request line holds the webhook path, which is a secret on real Slack; fine for a stand-in.
    name = "slack-sink"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        state = self.server.state
        if path == "/":
            self._send(200, render_page(state.messages()), "text/html; charset=utf-8")
        elif path == "/admin/messages":
            self._send_json({"messages": state.messages()})
        elif path == "/admin/attempts":
            self._send_json({"attempts": state.attempts()})
        else:
            self._send(404, "not_found")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        raw = self.read_body()
        admin = self.admin_routes()
        if path.startswith("/services/"):
            self._webhook(path, raw)
        elif path in admin:
            self.post_admin(raw, admin[path])
        else:
            self._send(404, "no_service")  # what Slack says for a URL that is not a webhook

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
        elif not any(payload.get(key) for key in ("text", "blocks", "attachments")):
            self._send(400, "no_text")
        else:
            self.server.state.store(path, payload)
            self._send(200, "ok")

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


def render_page(messages: list[dict[str, Any]]) -> str:
    """Received messages, newest first; the `text` of each, or its JSON when it has none."""
    items = "\n".join(
        "<li><small>{}</small><pre>{}</pre></li>".format(
            html.escape(message["received_at"]),
            html.escape(message["payload"].get("text") or json.dumps(message["payload"], indent=1)),
        )
        for message in reversed(messages)
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='5'>"
        "<title>Slack sink</title></head><body><h1>Slack sink</h1>"
        f"<p>{len(messages)} message(s), newest first. Refreshes every 5 s.</p>"
        f"<ul>{items or '<li>No messages yet.</li>'}</ul></body></html>"
    )


class SlackSinkAdmin(AdminClient):
    """Client for the sink's `/admin/` API."""

    @property
    def webhook_url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    def messages(self) -> list[dict[str, Any]]:
        return self.request("GET", "/admin/messages")["messages"]

    def attempts(self) -> int:
        return self.request("GET", "/admin/attempts")["attempts"]


def main(argv: list[str] | None = None) -> None:
    args = argument_parser(__doc__).parse_args(argv)
    serve(StandInServer((args.host, args.port), SinkHandler, SinkState()), "slack sink")


if __name__ == "__main__":
    main()
