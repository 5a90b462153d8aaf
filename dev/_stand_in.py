"""What the coordinator stand-in and the Slack sink share: the server loop, fault queue and admin client.

Standard library only, like the stand-ins themselves.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import urllib.request
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FaultQueue:
    """FIFO of injected faults; a fault with `count: n` is handed out n times before the next one."""

    def __init__(self) -> None:
        self._queue: deque[list[Any]] = deque()  # [fault, uses left]

    def extend(self, faults: list[dict[str, Any]]) -> None:
        self._queue.extend([fault, int(fault.get("count", 1))] for fault in faults)

    def take(self, applies: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any] | None:
        """The first queued fault (the first that `applies` to this request, when given), used once."""
        for index, entry in enumerate(self._queue):
            if applies is None or applies(entry[0]):
                entry[1] -= 1
                if entry[1] <= 0:
                    del self._queue[index]
                return entry[0]
        return None

    def clear(self) -> None:
        self._queue.clear()


class StandInServer(ThreadingHTTPServer):
    """A threading HTTP server that hands its handlers one shared `state` object."""

    daemon_threads = True  # a request sleeping in an injected delay must not hold up shutdown

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], state: Any) -> None:
        super().__init__(address, handler)
        self.state = state


class StandInHandler(BaseHTTPRequestHandler):
    """Writes replies and logs request lines under the stand-in's `name`."""

    name = "stand-in"
    server: StandInServer

    def write_reply(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for header, value in (headers or {}).items():
                self.send_header(header, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout test); nothing else to do.
            self.log_message("client went away before the %d reply", status)

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def admin_routes(self) -> dict[str, Callable[[Any], object]]:
        """`POST /admin/...` routes: what every stand-in's state supports; subclasses add their own."""
        state = self.server.state
        return {
            "/admin/faults": lambda body: state.add_faults(body["faults"]),
            "/admin/reset": lambda body: state.reset(),
        }

    def post_admin(self, raw: bytes, action: Callable[[Any], object]) -> None:
        """Apply `action` to the JSON body: 200 `{"ok": true}`, or 400 saying what was wrong with it."""
        try:
            action(json.loads(raw or b"{}"))
        except (ValueError, KeyError, TypeError) as err:
            body = {"error": f"bad admin request: {err!r}"}
            self.write_reply(400, json.dumps(body).encode(), "application/json")
            return
        self.write_reply(200, json.dumps({"ok": True}).encode(), "application/json")

    def log_message(self, format: str, *args: Any) -> None:
        # The request line and status only: headers may carry a key.
        sys.stderr.write(f"{self.name} {self.address_string()} {format % args}\n")


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with `--host` and `--port`, described by the first line of the module's docstring."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    return parser


def serve(server: StandInServer, name: str) -> None:
    """Print `NAME listening on URL` (dev/services.py waits for it) and serve until SIGTERM or Ctrl-C."""
    # serve_forever() runs in this thread, so shutdown() would deadlock here; leave by exception.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    host, port = server.server_address[:2]
    print(f"{name} listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class AdminClient:
    """JSON over HTTP to a stand-in's unauthenticated `/admin/` API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def faults(self, faults: list[dict[str, Any]]) -> None:
        self.request("POST", "/admin/faults", {"faults": faults})

    def reset(self) -> None:
        self.request("POST", "/admin/reset", {})
