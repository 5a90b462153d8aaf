"""A stand-in for Cloud Monitoring's REST API (`projects.timeSeries.create`), for local runs and tests.

`POST /v3/projects/{project}/timeSeries` answers like Google: `{}` once the body is accepted,
else `{"error": {"code", "message", "status"}}`. It checks what bites in practice: a `timeSeries`
list (1 to 200), each with `metric.type`, `resource.type` and exactly one point with
`interval.endTime` and `value`, no series twice in a request, and each series' points in time order
(Google refuses a point not newer than the series' last one; here the whole request is refused,
Google would still write the other series). An unauthenticated `/admin/` API lets tests read the
accepted requests, count attempts and queue faults. Standard library only:
`python -m dev.monitoring_api --port 0`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from dev._stand_in import AdminClient, FaultQueue, StandInHandler, StandInServer, argument_parser, serve

_CREATE = re.compile(r"^/v3/projects/([^/]+)/timeSeries$")
MAX_SERIES = 200

# Google's canonical status for each HTTP code the tests meet, and a message like the one it sends.
GOOGLE_ERRORS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    403: (
        "PERMISSION_DENIED",
        "Permission monitoring.timeSeries.create denied (or the resource may not exist).",
    ),
    404: ("NOT_FOUND", "Requested entity was not found."),
    503: ("UNAVAILABLE", "The service is currently unavailable."),
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    code, default = GOOGLE_ERRORS.get(status, ("UNKNOWN", "Unknown error."))
    return {"error": {"code": status, "message": message or default, "status": code}}


class MonitoringState:
    """Accepted requests, the last point time of each series, queued faults and attempts, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults = FaultQueue()
        self.reset()

    def attempt(self) -> dict[str, Any] | None:
        """Count one create call; return the fault it meets, if any."""
        with self._lock:
            self._attempts += 1
            return self._faults.take()

    def accept(self, project: str, body: dict[str, Any]) -> str | None:
        """Store the request unless a point is not newer than its series' last one: then say why."""
        times = {_series_key(project, s): _end_time(s) for s in body["timeSeries"]}
        with self._lock:
            for index, (key, end) in enumerate(times.items()):
                if key in self._last_point and end <= self._last_point[key]:
                    return (
                        f"Field timeSeries[{index}].points[0].interval.endTime had an invalid value: "
                        "Points must be written in order. One or more of the points specified had "
                        "an older start time than the most recent point."
                    )
            self._last_point.update(times)
            self._requests.append({"project": project, "body": body})
        return None

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def attempts(self) -> int:
        with self._lock:
            return self._attempts

    def add_faults(self, faults: list[dict[str, Any]]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        with self._lock:
            self._requests: list[dict[str, Any]] = []
            self._last_point: dict[str, datetime] = {}
            self._faults.clear()
            self._attempts = 0


def shape_error(body: Any) -> str | None:
    """What Google would refuse in the body's shape, naming the field; None when it looks right."""
    series = body.get("timeSeries") if isinstance(body, dict) else None
    if not isinstance(series, list) or not 1 <= len(series) <= MAX_SERIES:
        return f"Field timeSeries must be a list of 1 to {MAX_SERIES} time series."
    seen = set()
    for index, one in enumerate(series):
        field = f"timeSeries[{index}]"
        if not isinstance(one, dict):
            return f"Field {field} must be an object."
        for part in ("metric", "resource"):
            if not isinstance(one.get(part), dict) or not one[part].get("type"):
                return f"Field {field}.{part}.type is required."
        points = one.get("points")
        if not isinstance(points, list) or len(points) != 1:
            return f"Field {field}.points had an invalid value: exactly one point per time series."
        point = points[0]
        if not isinstance(point, dict) or "value" not in point:
            return f"Field {field}.points[0].value is required."
        try:
            _end_time(one)
        except (KeyError, TypeError, ValueError):
            return f"Field {field}.points[0].interval.endTime must be an RFC 3339 time."
        key = _series_key("", one)
        if key in seen:
            return f"Field {field} had an invalid value: Duplicate TimeSeries encountered."
        seen.add(key)
    return None


def _series_key(project: str, series: dict[str, Any]) -> str:
    metric, resource = series["metric"], series["resource"]
    return json.dumps(
        [project, metric["type"], metric.get("labels", {}), resource["type"], resource.get("labels", {})],
        sort_keys=True,
    )


def _end_time(series: dict[str, Any]) -> datetime:
    text = series["points"][0]["interval"]["endTime"]
    # Protobuf writes 0, 3, 6 or 9 fractional digits; datetime keeps 6.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    end = datetime.fromisoformat(text)
    if end.tzinfo is None:
        raise ValueError(f"no time zone in {text!r}")
    return end


class MonitoringHandler(StandInHandler):
    """Routes requests; `self.server.state` is the `MonitoringState`."""

    name = "monitoring-api"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        state = self.server.state
        if path == "/admin/requests":
            self._send_json(200, {"requests": state.requests()})
        elif path == "/admin/attempts":
            self._send_json(200, {"attempts": state.attempts()})
        else:
            self._send_json(404, error_body(404))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        raw = self.read_body()
        admin = self.admin_routes()
        if match := _CREATE.match(path):
            self._create(match.group(1), raw)
        elif path in admin:
            self.post_admin(raw, admin[path])
        else:
            self._send_json(404, error_body(404))

    def _create(self, project: str, raw: bytes) -> None:
        fault = self.server.state.attempt() or {}
        # A fault with only `delay_seconds` is a slow API that then accepts the write.
        time.sleep(float(fault.get("delay_seconds", 0)))
        if "status" in fault:
            status = int(fault["status"])
            self._send_json(status, error_body(status))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send_json(400, error_body(400, "Invalid JSON payload received."))
            return
        problem = shape_error(body) or self.server.state.accept(project, body)
        if problem:
            self._send_json(400, error_body(400, problem))
        else:
            self._send_json(200, {})

    def _send_json(self, status: int, payload: Any) -> None:
        self.write_reply(status, json.dumps(payload).encode(), "application/json; charset=UTF-8")


class MonitoringAdmin(AdminClient):
    """Client for the stand-in's `/admin/` API."""

    def requests(self) -> list[dict[str, Any]]:
        return self.request("GET", "/admin/requests")["requests"]

    def attempts(self) -> int:
        return self.request("GET", "/admin/attempts")["attempts"]


def main(argv: list[str] | None = None) -> None:
    args = argument_parser(__doc__).parse_args(argv)
    serve(StandInServer((args.host, args.port), MonitoringHandler, MonitoringState()), "monitoring api")


if __name__ == "__main__":
    main()
