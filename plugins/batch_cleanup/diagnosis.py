"""What an alert can say about the cause: the coordinator's deep health check, and a link to the
workers' logs. Pure: no Airflow, no I/O.

The health lines are Slack mrkdwn, already escaped with `messages.escape` (the texts come from the
coordinator): put them into a message as they are, and do not escape them again. Each is one line,
cut before it is escaped, so no escape sequence is ever cut in half.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from batch_cleanup.messages import escape, listed
from batch_cleanup.text import as_utc, utc_z

# Statuses that mean healthy, compared in lower case; anything else (or none) is not healthy.
HEALTHY = frozenset({"ok", "up", "pass", "passed", "passing", "healthy"})
# The first field of these a component has is shown as its detail.
DETAIL_FIELDS = ("error", "message", "detail", "details", "reason")
MAX_COMPONENTS = 8
MAX_NAME_CHARS = 60
MAX_STATUS_CHARS = 30
MAX_DETAIL_CHARS = 200
MAX_REASON_CHARS = 500

LOGS_EXPLORER = "https://console.cloud.google.com/logs/query"


def health_summary(result: Mapping[str, Any]) -> list[str]:
    """The alert's lines for `CoordinatorHook.deep_health`'s result; never empty.

    The components that are not healthy (at most `MAX_COMPONENTS`, then "+N more"), or one line
    saying all are healthy, or one line saying why there is nothing to show: the check failed, or
    the answer is not of the contract's shape (docs/coordinator-api.md, `GET /health/deep`).
    """
    if not result.get("ok"):
        return [health_check_failed(str(result.get("error") or "no reason given"))]
    return answer_summary(result.get("answer"))


def health_check_failed(why: str) -> str:
    """The one line for a check that got no health document: the alert still goes out at once."""
    return escape(f"Health check failed: {_short(why, MAX_REASON_CHARS)}")


def answer_summary(answer: Any) -> list[str]:
    """The lines for a deep-health answer (the parsed JSON), tolerant of its shape."""
    if not isinstance(answer, dict):
        return [_not_understood(f"expected a JSON object, got {_json_kind(answer)}")]
    if "status" not in answer and "components" not in answer:
        return [_not_understood("an object with neither status nor components")]
    raw = answer.get("components")
    if raw is not None and not isinstance(raw, dict | list):
        return [_not_understood(f"components is {_json_kind(raw)}, expected an object or a list")]
    components = _components(raw)
    unhealthy = [_line(name, fields) for name, fields in components if not _healthy(fields.get("status"))]
    if unhealthy:
        return [escape(line) for line in listed(unhealthy, MAX_COMPONENTS)]
    overall = answer.get("status")
    if "status" in answer and not _healthy(overall):
        shown = _short(overall, MAX_STATUS_CHARS) or "no status"
        return [escape(f"Overall status {shown}; no component reported unhealthy")]
    if not components:
        return ["Healthy (no components listed)"]
    return [f"All {len(components)} components healthy"]


def _components(raw: dict[str, Any] | list[Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """(name, fields) for each component, given as `{name: {...}}` or `[{"name": ..., ...}]`; a
    component given as a bare value (`{"firestore": "ok"}`) is taken as its status."""
    if isinstance(raw, dict):
        items = list(raw.items())
    else:
        items = [(item.get("name") if isinstance(item, dict) else None, item) for item in raw or ()]
    return [
        (
            _short(name, MAX_NAME_CHARS) or f"component {number}",
            value if isinstance(value, dict) else {"status": value},
        )
        for number, (name, value) in enumerate(items, start=1)
    ]


def _healthy(status: Any) -> bool:
    if isinstance(status, bool):
        return status
    return isinstance(status, str) and status.strip().lower() in HEALTHY


def _line(name: str, fields: dict[str, Any]) -> str:
    """`workers: unhealthy — 3 of 10 workers not reporting`, `firestore: degraded, 1200 ms`."""
    status = fields.get("status")
    line = f"{name}: {_short(status, MAX_STATUS_CHARS) or 'no status'}"
    latency = fields.get("latency_ms")
    if isinstance(latency, int | float) and not isinstance(latency, bool):
        line += f", {latency:g} ms"
    detail = next((fields[key] for key in DETAIL_FIELDS if fields.get(key) not in (None, "")), None)
    if detail is not None:
        line += f" — {_short(detail, MAX_DETAIL_CHARS)}"
    return line


def _not_understood(why: str) -> str:
    return escape(f"Health answer not understood: {why}")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _short(value: Any, limit: int) -> str:
    """`value` as one line of at most `limit` characters (an ellipsis marks a cut); '' for None."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def logs_explorer_url(project: str | None, query: str, start: datetime, end: datetime) -> str | None:
    """A Cloud Logging Logs Explorer link showing `query`'s entries from `start` to `end` in `project`;
    None without a project (the caller says there is no project on the Google Cloud connection).

    The format is the one the console itself writes when a query with a custom range is shared,
    `…/logs/query;query=<encoded>;startTime=<UTC ISO Z>;endTime=<UTC ISO Z>?project=<project>`: seen
    in a link copied from the console (`…;cursorTimestamp=…;startTime=2024-03-18T16:05:55.290Z;
    endTime=2024-03-24T01:05:55.290Z?project=…`), and github.com/vvakame/gcplogurl (logurl.go) builds
    the same `;query=` and `?project=` parts (it writes the range as `;timeRange=<start>%2F<end>`).
    Every reserved character of the query and the project is percent-encoded (`;`, `?`, `#`, `&`, `/`,
    spaces, quotes, parentheses), so neither can end its parameter or the URL; a browser's decoding
    gives the query back exactly.
    """
    if not project:
        return None
    start, end = as_utc(start, "start"), as_utc(end, "end")
    if end < start:
        raise ValueError(f"the range ends before it starts: {start.isoformat()} to {end.isoformat()}")
    return (
        f"{LOGS_EXPLORER};query={quote(query, safe='')};startTime={utc_z(start, timespec='milliseconds')}"
        f";endTime={utc_z(end, timespec='milliseconds')}"
        f"?project={quote(project, safe='')}"
    )
