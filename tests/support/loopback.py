"""A scripted HTTP server on 127.0.0.1 for fault tests: every request gets the same scripted answer
(a status with headers and a body, optionally cut short and held open), and is recorded.

    with Loopback(Answer(302, headers={"Location": other.url + "/check-stalled"})) as server:
        ...  # point a connection at server.url; server.requests() is what arrived

Only the standard library; each request is served on its own thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Send only this many bytes of the body (Content-Length still says the whole), then hold the
    # connection open until the server closes: a coordinator that hangs mid-body.
    hang_after: int | None = None


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Loopback:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def close(self) -> None:
        self._closing.set()  # releases the handlers holding a connection open
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Loopback:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        loopback = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with loopback._lock:
                    loopback._requests.append(Request(self.command, self.path, dict(self.headers), body))
                answer = loopback.answer
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if answer.hang_after is None:
                    self.wfile.write(answer.body)
                    return
                self.wfile.write(answer.body[: answer.hang_after])
                self.wfile.flush()
                loopback._closing.wait()
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_HEAD = _serve

        return Handler
