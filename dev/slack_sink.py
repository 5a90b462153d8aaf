"""A stand-in for a Slack incoming webhook, for local runs and tests.

`POST /services/...` with a JSON body answers like Slack does (`200 ok`, or Slack's error
strings), `GET /` shows what arrived, and an unauthenticated `/admin/` API lets tests queue
faults and read the messages.

    python -m dev.slack_sink --port 0

Standard library only, so it starts in well under a second.
"""

from __future__ import annotations

import argparse
import html
import json
import signal
import sys
import threading
import time
import urllib.request
from collections import deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

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


class FaultQueue:
    """FIFO of injected faults; a fault with `count: n` is handed out n times before the next one."""

    def __init__(self) -> None:
        self._queue: deque[list[Any]] = deque()  # [fault, uses left]

    def extend(self, faults: list[dict[str, Any]]) -> None:
        self._queue.extend([fault, int(fault.get("count", 1))] for fault in faults)

    def take(self) -> dict[str, Any] | None:
        if not self._queue:
            return None
        head = self._queue[0]
        head[1] -= 1
        if head[1] <= 0:
            self._queue.popleft()
        return head[0]

    def clear(self) -> None:
        self._queue.clear()


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


class SinkServer(ThreadingHTTPServer):
    daemon_threads = True  # a request sleeping in an injected delay must not hold up shutdown

    def __init__(self, address: tuple[str, int], state: SinkState) -> None:
        super().__init__(address, SinkHandler)
        self.state = state


class SinkHandler(BaseHTTPRequestHandler):
    server: SinkServer

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
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path.startswith("/services/"):
            self._webhook(path, raw)
            return
        state = self.server.state
        try:
            body = json.loads(raw or b"{}")
            if path == "/admin/faults":
                state.add_faults(body["faults"])
            elif path == "/admin/reset":
                state.reset()
            else:
                self._send(404, "no_service")  # what Slack says for a URL that is not a webhook
                return
        except (ValueError, KeyError, TypeError) as err:
            self._send(400, f"bad admin request: {err!r}")
            return
        self._send_json({"ok": True})

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
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.log_message("client went away before the %d reply", status)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line holds the webhook path, which is a secret on real Slack; fine for a stand-in.
        sys.stderr.write(f"slack-sink {self.address_string()} {format % args}\n")


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


class SlackSinkAdmin:
    """Client for the sink's `/admin/` API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    @property
    def webhook_url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    def _request(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def messages(self) -> list[dict[str, Any]]:
        return self._request("GET", "/admin/messages")["messages"]

    def faults(self, faults: list[dict[str, Any]]) -> None:
        self._request("POST", "/admin/faults", {"faults": faults})

    def attempts(self) -> int:
        return self._request("GET", "/admin/attempts")["attempts"]

    def reset(self) -> None:
        self._request("POST", "/admin/reset", {})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)

    server = SinkServer((args.host, args.port), SinkState())
    # serve_forever() runs in this thread, so shutdown() would deadlock here; leave by exception.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    host, port = server.server_address[:2]
    print(f"slack sink listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
