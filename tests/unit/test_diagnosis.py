"""The alert's diagnosis: the deep-health lines (tolerant of the answer's shape, safe for Slack's
mrkdwn, short) and the Logs Explorer link (encoded so that no query can break it)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from batch_cleanup.diagnosis import (
    MAX_COMPONENTS,
    MAX_DETAIL_CHARS,
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    MAX_STATUS_CHARS,
    answer_summary,
    health_check_failed,
    health_summary,
    logs_explorer_url,
)
from batch_cleanup.messages import link

WORKERS_DOWN = {"status": "unhealthy", "error": "3 of 10 workers not reporting"}


def ok(answer: Any) -> dict[str, Any]:
    return {"ok": True, "http_status": 200, "answer": answer}


def with_components(components) -> dict[str, Any]:
    return {"components": components}


NOT_HEALTHY = "no component reported unhealthy"
# The answer's components (or the whole answer, where it has a status) → the lines.
# fmt: off
LINES = {
    "all healthy": (
        {"status": "healthy", "components": {"firestore": {"status": "healthy", "latency_ms": 12}}},
        ["All 1 components healthy"]),
    "healthy in any case": (
        with_components({"a": {"status": "OK"}, "b": {"status": " Up "}, "c": {"status": "PASS"}}),
        ["All 3 components healthy"]),
    "one unhealthy with its error": (
        {"status": "degraded", "components": {"firestore": {"status": "healthy"}, "workers": WORKERS_DOWN}},
        ["workers: unhealthy — 3 of 10 workers not reporting"]),
    "components as a list with names": (
        with_components([{"name": "firestore", "status": "healthy"}, {"name": "workers", **WORKERS_DOWN}]),
        ["workers: unhealthy — 3 of 10 workers not reporting"]),
    "latency": (
        with_components({"firestore": {"status": "Degraded", "latency_ms": 1200}}),
        ["firestore: Degraded, 1200 ms"]),
    "latency and message": (
        with_components({"db": {"status": "down", "latency_ms": 2.5, "message": "pool exhausted"}}),
        ["db: down, 2.5 ms — pool exhausted"]),
    "details not a string": (
        with_components({"workers": {"status": "warn", "details": {"reporting": 7, "expected": 10}}}),
        ['workers: warn — {"reporting": 7, "expected": 10}']),
    "bare statuses": (with_components({"firestore": "ok", "workers": "down"}), ["workers: down"]),
    "boolean statuses": (with_components({"a": True, "b": False}), ["b: false"]),
    "no status": (with_components({"cache": {"latency_ms": 3}}), ["cache: no status, 3 ms"]),
    "null status, boolean latency ignored": (
        with_components({"cache": {"status": None, "latency_ms": True}}), ["cache: no status"]),
    "list without names": (
        with_components([{"status": "ok"}, {"status": "down"}, "loose"]),
        ["component 2: down", "component 3: loose"]),
    "empty name": (with_components([{"name": "", "status": "down"}]), ["component 1: down"]),
    "empty error": (with_components({"x": {"status": "down", "error": ""}}), ["x: down"]),
    "unknown fields": (
        {"status": "healthy", "uptime_s": 9, "components": {"a": {"status": "ok", "region": "eu", "x": [1]}}},
        ["All 1 components healthy"]),
    "only a status": ({"status": "healthy"}, ["Healthy (no components listed)"]),
    "empty component list": ({"status": "healthy", "components": []}, ["Healthy (no components listed)"]),
    "overall unhealthy, no components": (
        {"status": "unhealthy"}, [f"Overall status unhealthy; {NOT_HEALTHY}"]),
    "overall degraded, all components healthy": (
        {"status": "degraded", "components": {"a": {"status": "ok"}}},
        [f"Overall status degraded; {NOT_HEALTHY}"]),
    "null overall status": ({"status": None}, [f"Overall status no status; {NOT_HEALTHY}"]),
}
# fmt: on


@pytest.mark.parametrize(("answer", "lines"), LINES.values(), ids=list(LINES))
def test_the_lines_name_what_is_not_healthy(answer, lines):
    assert health_summary(ok(answer)) == lines


NOT_LISTED = "expected an object or a list"
SHAPES = {
    "list": ([{"name": "a"}], "expected a JSON object, got a list"),
    "string": ("healthy", "expected a JSON object, got a string"),
    "null": (None, "expected a JSON object, got null"),
    "number": (3, "expected a JSON object, got a number"),
    "boolean": (True, "expected a JSON object, got a boolean"),
    "empty object": ({}, "an object with neither status nor components"),
    "other fields": ({"health": "ok"}, "an object with neither status nor components"),
    "components text": ({"components": "all good"}, f"components is a string, {NOT_LISTED}"),
    "components number": ({"status": "ok", "components": 7}, f"components is a number, {NOT_LISTED}"),
}


@pytest.mark.parametrize(("answer", "line"), SHAPES.values(), ids=list(SHAPES))
def test_an_answer_of_another_shape_is_one_line_saying_so(answer, line):
    assert health_summary(ok(answer)) == [f"Health answer not understood: {line}"]


def test_at_most_max_components_are_listed_then_how_many_more_and_healthy_ones_do_not_use_up_the_cap():
    healthy = {f"ok{n}": {"status": "ok"} for n in range(MAX_COMPONENTS + 20)}
    down = {f"w{n}": {"status": "down"} for n in range(MAX_COMPONENTS + 4)}
    lines = answer_summary({"components": healthy | down})
    assert lines == [f"w{n}: down" for n in range(MAX_COMPONENTS)] + ["+4 more"]


# --- health lines: a failed check --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        ({"ok": False, "error": "timed out after 5 s"}, "timed out after 5 s"),
        ({"ok": False, "http_status": 503, "error": "HTTP 503 'down'"}, "HTTP 503 'down'"),
        ({"ok": False}, "no reason given"),
        ({}, "no reason given"),
    ],
    ids=["timeout", "503", "no error", "empty result"],
)
def test_a_failed_check_is_one_line_with_its_reason(result, reason):
    assert health_summary(result) == [f"Health check failed: {reason}"] == [health_check_failed(reason)]


# --- health lines: hostile input ---------------------------------------------------------------------

# Each shorter than any field's cut, so that all of it must come through.
HOSTILE = ["<!channel>", "<https://evil.io|click>", "a & b", "<@U123> <#C1>", "&lt;already&gt;"]


def assert_mrkdwn_safe(lines: list[str]) -> None:
    """No markup survives: <, > only as entities, & only starting one, and nothing escaped twice."""
    for line in lines:
        assert "<" not in line and ">" not in line, line
        assert not re.search(r"&(?!amp;|lt;|gt;)", line), line
        assert "\n" not in line, line


@pytest.mark.parametrize(
    "text", HOSTILE, ids=["channel mention", "link", "ampersand", "user mention", "entities"]
)
@pytest.mark.parametrize("where", ["name", "status", "error", "overall status", "check error"])
def test_hostile_text_is_escaped_once_wherever_it_comes(text, where):
    answers = {
        "name": ok({"components": {text: {"status": "down"}}}),
        "status": ok({"components": {"w": {"status": text}}}),
        "error": ok({"components": {"w": {"status": "down", "error": text}}}),
        "overall status": ok({"status": text}),
        "check error": {"ok": False, "error": text},
    }
    lines = health_summary(answers[where])
    assert_mrkdwn_safe(lines)
    # What Slack shows after reading the entities is exactly the text that came.
    assert text in html.unescape("\n".join(lines))


@pytest.mark.parametrize(
    ("answer", "limit"),
    [
        (ok({"components": {"n" * 10_000: {"status": "down"}}}), MAX_NAME_CHARS + len(": down")),
        (ok({"components": {"w": {"status": "s" * 10_000}}}), len("w: ") + MAX_STATUS_CHARS),
        (
            ok({"components": {"w": {"status": "down", "error": "e\n" * 10_000}}}),
            len("w: down — ") + MAX_DETAIL_CHARS,
        ),
        ({"ok": False, "error": "r" * 10_000}, len("Health check failed: ") + MAX_REASON_CHARS),
    ],
    ids=["name", "status", "error with newlines", "check error"],
)
def test_long_texts_are_cut_to_one_short_line_with_an_ellipsis(answer, limit):
    [line] = health_summary(answer)
    assert len(line) <= limit
    assert "…" in line
    assert "\n" not in line


def test_a_text_is_cut_before_it_is_escaped_so_no_entity_is_cut_in_half():
    [line] = health_summary({"ok": False, "error": "&" * 10_000})
    assert_mrkdwn_safe([line])
    assert line.endswith("&amp;…")
    assert len(html.unescape(line)) == len("Health check failed: ") + MAX_REASON_CHARS


# --- the Logs Explorer link --------------------------------------------------------------------------

START = datetime(2026, 3, 8, 5, 47, 12, 250000, tzinfo=UTC)
END = START + timedelta(hours=1)
DEFAULT_QUERY = 'resource.type="cloud_run_revision" severity>=WARNING'
RANGE = {"startTime": "2026-03-08T05:47:12.250Z", "endTime": "2026-03-08T06:47:12.250Z"}


def parts(url: str) -> dict[str, str]:
    """The link's matrix parameters and its project, decoded."""
    split = urlsplit(url)
    path, *params = split.path.split(";")
    assert (split.scheme, split.netloc, path) == ("https", "console.cloud.google.com", "/logs/query")
    decoded = {key: unquote(value) for key, value in (param.split("=", 1) for param in params)}
    [(key, project)] = [query.split("=", 1) for query in split.query.split("&")]
    assert key == "project"
    assert not split.fragment
    return {**decoded, "project": unquote(project)}


def test_the_link_has_the_query_the_range_in_utc_and_the_project():
    url = logs_explorer_url("my-project", DEFAULT_QUERY, START, END)
    assert url == (
        "https://console.cloud.google.com/logs/query"
        ";query=resource.type%3D%22cloud_run_revision%22%20severity%3E%3DWARNING"
        ";startTime=2026-03-08T05:47:12.250Z;endTime=2026-03-08T06:47:12.250Z"
        "?project=my-project"
    )


def test_times_in_another_zone_are_given_in_utc():
    new_york = timezone(timedelta(hours=-5))
    url = logs_explorer_url("p", "q", START.astimezone(new_york), END.astimezone(new_york))
    assert parts(url) == {"query": "q", **RANGE, "project": "p"}
    one_instant = logs_explorer_url("p", "q", START, START)  # a range of one instant is a link too
    assert parts(one_instant)["endTime"] == "2026-03-08T05:47:12.250Z"


QUERIES = {
    "default": DEFAULT_QUERY,
    "reserved characters": "a;b=c?d#e&f/g h",
    "percent signs": 'textPayload:"100%" OR textPayload:"%3B"',
    "parentheses, pipe, newline": (
        '(severity>=ERROR OR textPayload=~"panic|fatal")\nresource.labels.service_name="worker"'
    ),
    "mrkdwn": "<https://evil.example|click> <!channel>",
    "unicode": "jsonPayload.message:\"café ☕\" + 'quoted'",
    "empty": "",
}


@pytest.mark.parametrize("query", QUERIES.values(), ids=list(QUERIES))
def test_no_query_can_break_the_link_and_it_comes_back_exactly(query):
    url = logs_explorer_url("my-project", query, START, END)
    assert re.fullmatch(r"[A-Za-z0-9%._~:/;=?\-]+", url), url
    assert parts(url) == {"query": query, **RANGE, "project": "my-project"}
    # Nothing in it for Slack's link markup to change: `<url|label>` carries it as it is.
    assert link(url, "Worker logs") == f"<{url}|Worker logs>"


def test_a_hostile_project_cannot_break_the_link_either():
    url = logs_explorer_url("p?x=1&y#z;w", "q", START, END)
    assert parts(url)["project"] == "p?x=1&y#z;w"
    assert parts(url)["query"] == "q"


@pytest.mark.parametrize("project", [None, ""], ids=["none", "empty"])
def test_no_project_no_link(project):
    assert logs_explorer_url(project, DEFAULT_QUERY, START, END) is None


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        (START.replace(tzinfo=None), END, r"^start must be timezone-aware"),
        (START, END.replace(tzinfo=None), r"^end must be timezone-aware"),
        (END, START, "ends before it starts"),
    ],
    ids=["naive start", "naive end", "reversed"],
)
def test_a_range_that_is_not_one_is_refused(start, end, match):
    with pytest.raises(ValueError, match=match):
        logs_explorer_url("p", "q", start, end)
