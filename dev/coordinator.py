"""A stand-in for the prediction coordinator, for local runs and tests.

It speaks the real service's contract (`POST /check-stalled` with `X-API-Key`, replay by
`X-Idempotency-Key`, `GET /health/deep` with the same key) over real HTTP, and adds an
unauthenticated `/admin/` API so tests can seed batches, queue faults, set the health answer and
read what the DAG sent.

    COORDINATOR_API_KEY=KEY python -m dev.coordinator --port 0 [--seed-demo]

The key comes from the environment, not the command line, so that `ps` does not show it.
Standard library only, so it starts in well under a second.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from dev._stand_in import AdminClient, FaultQueue, StandInHandler, StandInServer, argument_parser, serve

API_KEY_VARIABLE = "COORDINATOR_API_KEY"

DEMO_BATCHES = [
    {"batch_id": "demo-stalled-1", "completion_pct": 96.5, "stalled_minutes": 45},
    {"batch_id": "demo-stalled-2", "completion_pct": 92.0, "stalled_minutes": 25},
    {"batch_id": "demo-recent", "completion_pct": 97.0, "stalled_minutes": 2},
    {"batch_id": "demo-half-done", "completion_pct": 48.0, "stalled_minutes": 120},
]

# What `GET /health/deep` answers until `POST /admin/health` says otherwise (docs/coordinator-api.md).
HEALTHY_ANSWER = {
    "status": "healthy",
    "components": {
        "firestore": {"status": "healthy", "latency_ms": 12},
        "workers": {"status": "healthy", "reporting": 10, "expected": 10},
        "model_registry": {"status": "healthy", "latency_ms": 35},
    },
}
# What `POST /admin/health` may set: the answer (JSON, status 200 unless given), or a raw status and
# body, and a delay before any of them.
HEALTH_SETTINGS = frozenset({"answer", "status", "body", "content_type", "delay_seconds"})


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, payload: Any) -> Reply:
    return Reply(status, json.dumps(payload).encode())


UNAUTHORISED = json_reply(401, {"error": "invalid or missing API key"})


def fault_reply(fault: dict[str, Any]) -> Reply | None:
    """The injected answer, or None when the fault only delays the real one."""
    if fault.get("malformed"):
        return Reply(200, b'{"results": [')
    if "status" not in fault and "body" not in fault:
        return None
    status = int(fault.get("status", 200))
    body = fault["body"].encode() if "body" in fault else json.dumps({"error": "injected"}).encode()
    headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else {}
    return Reply(status, body, fault.get("content_type", "application/json"), headers)


def health_reply(setting: dict[str, Any]) -> tuple[Reply, float]:
    """The `/health/deep` reply for an admin setting (`{}`: the healthy default), and its delay."""
    unknown = set(setting) - HEALTH_SETTINGS
    if unknown:
        raise ValueError(f"unknown health settings {sorted(unknown)}; allowed: {sorted(HEALTH_SETTINGS)}")
    status = int(setting.get("status", 200))
    if "body" in setting:
        reply = Reply(status, str(setting["body"]).encode(), setting.get("content_type", "text/plain"))
    else:
        reply = json_reply(status, setting.get("answer", HEALTHY_ANSWER))
    return reply, float(setting.get("delay_seconds", 0))


def thresholds(body: Any) -> tuple[float, float]:
    """(stall_threshold_minutes, min_completion_pct) from the request body, or ValueError saying why not."""
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object")
    values = {"stall_threshold_minutes": 10.0, "min_completion_pct": 90.0} | body
    for name in ("stall_threshold_minutes", "min_completion_pct"):
        if isinstance(values[name], bool) or not isinstance(values[name], int | float):
            raise ValueError(f"{name} must be a number, got {values[name]!r}")
    return float(values["stall_threshold_minutes"]), float(values["min_completion_pct"])


class CoordinatorState:
    """Batches, faults, recorded calls and stored idempotent replies, behind one lock."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self._lock = threading.Lock()
        self._faults = FaultQueue()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._batches: dict[str, dict[str, Any]] = {}  # by id; `last_progress_at` a datetime
            self._faults.clear()
            self._calls: list[dict[str, Any]] = []
            self._replies: dict[str, Reply] = {}
            self._health = health_reply({})

    def seed(self, specs: list[dict[str, Any]]) -> None:
        """Batches `{batch_id, completion_pct, stalled_minutes}`: active, last progress that long ago."""
        now = datetime.now(UTC)
        batches = {
            str(spec["batch_id"]): {
                "batch_id": str(spec["batch_id"]),
                "completion_pct": float(spec["completion_pct"]),
                "last_progress_at": now - timedelta(minutes=float(spec.get("stalled_minutes", 0))),
                "status": "active",
            }
            for spec in specs
        }
        with self._lock:
            self._batches.update(batches)

    def batches(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {**b, "last_progress_at": b["last_progress_at"].isoformat()} for b in self._batches.values()
            ]

    def add_faults(self, faults: list[dict[str, Any]]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def next_fault(self) -> dict[str, Any] | None:
        with self._lock:
            return self._faults.take()

    def record_call(self, call: dict[str, Any]) -> None:
        with self._lock:
            self._calls.append(call)

    def calls(self, path: str = "/check-stalled") -> list[dict[str, Any]]:
        """The recorded requests to `path`, oldest first."""
        with self._lock:
            return [dict(call) for call in self._calls if call["path"] == path]

    def set_health(self, setting: dict[str, Any]) -> None:
        reply = health_reply(setting)  # checked before anything changes
        with self._lock:
            self._health = reply

    def health(self) -> tuple[Reply, float]:
        with self._lock:
            return self._health

    def check_stalled(
        self, idempotency_key: str | None, threshold_minutes: float, min_pct: float
    ) -> tuple[Reply, bool]:
        """Complete the stalled active batches; (reply, replayed). A known key replays without acting."""
        with self._lock:
            if idempotency_key is not None and idempotency_key in self._replies:
                return self._replies[idempotency_key], True
            now = datetime.now(UTC)
            results = []
            for batch in (b for b in self._batches.values() if b["status"] == "active"):
                minutes = (now - batch["last_progress_at"]).total_seconds() / 60
                stalled = batch["completion_pct"] >= min_pct and minutes >= threshold_minutes
                batch["status"] = "completed" if stalled else "active"
                results.append(
                    {
                        "batch_id": batch["batch_id"],
                        "was_stalled": stalled,
                        "completion_pct": batch["completion_pct"],
                        "minutes_since_progress": round(minutes, 3),
                        "action": "auto_completed" if stalled else "none",
                    }
                )
            completed = sum(result["was_stalled"] for result in results)
            reply = json_reply(
                200, {"batches_checked": len(results), "batches_completed": completed, "results": results}
            )
            if idempotency_key is not None:
                self._replies[idempotency_key] = reply
            return reply, False


class CoordinatorHandler(StandInHandler):
    """Routes requests; `self.server.state` is the `CoordinatorState`."""

    name = "coordinator"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/health/deep":
            self._deep_health(path)
        elif path == "/admin/health":
            self._send(json_reply(200, {"calls": self.server.state.calls("/health/deep")}))
        elif path == "/admin/calls":
            self._send(json_reply(200, {"calls": self.server.state.calls()}))
        elif path == "/admin/batches":
            self._send(json_reply(200, {"batches": self.server.state.batches()}))
        else:
            self._send(json_reply(404, {"error": f"no route GET {path}"}))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        raw = self.read_body()
        admin = self.admin_routes()
        admin["/admin/batches"] = lambda body: self.server.state.seed(body["batches"])
        admin["/admin/health"] = self.server.state.set_health
        if path == "/check-stalled":
            self._check_stalled(path, raw)
        elif path in admin:
            self.post_admin(raw, admin[path])
        else:
            self._send(json_reply(404, {"error": f"no route POST {path}"}))

    def _check_stalled(self, path: str, raw: bytes) -> None:
        state = self.server.state
        api_key = self.headers.get("X-API-Key")
        try:
            body = json.loads(raw) if raw.strip() else {}  # like the real service: empty, the defaults
        except ValueError:
            body = None
        # The key's value is never recorded: calls() ends up in test output.
        call = {"path": path, "idempotency_key": self.headers.get("X-Idempotency-Key")}
        call |= {"api_key_ok": api_key == state.api_key, "body": body, "replayed": False}
        reply, delay = self._answer(call, body)
        # Recorded before any delay, so a test whose client timed out already sees the call.
        state.record_call(call | {"status": reply.status})
        time.sleep(delay)
        self._send(reply)

    def _deep_health(self, path: str) -> None:
        state = self.server.state
        api_key = self.headers.get("X-API-Key")
        reply, delay = (UNAUTHORISED, 0.0) if api_key != state.api_key else state.health()
        # Like /check-stalled's calls: never the key's value, and recorded before the delay.
        state.record_call({"path": path, "api_key_ok": api_key == state.api_key, "status": reply.status})
        time.sleep(delay)
        self._send(reply)

    def _answer(self, call: dict[str, Any], body: Any) -> tuple[Reply, float]:
        """The reply and how long to wait before sending it; `call["replayed"]` set."""
        state = self.server.state
        if not call["api_key_ok"]:
            return UNAUTHORISED, 0.0
        try:
            threshold, min_pct = thresholds(body)
        except ValueError as err:
            return json_reply(400, {"error": str(err)}), 0.0
        # Only authorised, well-formed calls consume faults, so auth tests never eat a queued fault.
        fault = state.next_fault() or {}
        injected = fault_reply(fault)
        delay = float(fault.get("delay_seconds", 0))
        if injected is not None and not fault.get("after_action"):
            return injected, delay
        if injected is None and not fault.get("after_action"):
            time.sleep(delay)  # a slow coordinator: it waits, then acts and answers
            delay = 0.0
        # After acting, an `after_action` fault's answer: "timed out after the coordinator acted".
        reply, call["replayed"] = state.check_stalled(call["idempotency_key"], threshold, min_pct)
        return injected or reply, delay

    def _send(self, reply: Reply) -> None:
        self.write_reply(reply.status, reply.body, reply.content_type, reply.headers)


class CoordinatorAdmin(AdminClient):
    """Client for the stand-in's `/admin/` API."""

    def seed(self, batches: list[dict[str, Any]]) -> None:
        self.request("POST", "/admin/batches", {"batches": batches})

    def batches(self) -> list[dict[str, Any]]:
        return self.request("GET", "/admin/batches")["batches"]

    def calls(self) -> list[dict[str, Any]]:
        return self.request("GET", "/admin/calls")["calls"]

    def set_health(self, answer: Any = None, **setting: Any) -> None:
        """What `/health/deep` answers from now on: `answer` as JSON, or a raw `body` (text/plain
        unless `content_type`), with `status` (200 by default), after `delay_seconds` (the stand-in
        refuses any other setting). No argument: the healthy default again (so does `reset`)."""
        self.request("POST", "/admin/health", setting if answer is None else {"answer": answer, **setting})

    def health_calls(self) -> list[dict[str, Any]]:
        """`{"path", "api_key_ok", "status"}` for each `/health/deep` request, oldest first."""
        return self.request("GET", "/admin/health")["calls"]


def main(argv: list[str] | None = None) -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--seed-demo", action="store_true", help="start with a few batches, some stalled")
    args = parser.parse_args(argv)
    api_key = os.environ.get(API_KEY_VARIABLE)
    if not api_key:
        parser.error(f"set the environment variable {API_KEY_VARIABLE} to the key the coordinator accepts")

    state = CoordinatorState(api_key)
    if args.seed_demo:
        state.seed(DEMO_BATCHES)
    serve(StandInServer((args.host, args.port), CoordinatorHandler, state), "coordinator")


if __name__ == "__main__":
    main()
