"""CoordinatorHook.deep_health against the coordinator stand-in over real HTTP: one short try with the
connection's key, and every failure (503, a slow or refused coordinator, a wrong key, a body that is
not JSON) a small result saying why, never an exception, and never the key."""

from __future__ import annotations

import json
import logging
import time

import pytest

from batch_cleanup.diagnosis import health_summary
from batch_cleanup.hooks.coordinator import API_KEY_HEADER, MAX_HEALTH_ERROR_CHARS, CoordinatorHook
from batch_cleanup.messages import escape
from dev import services
from dev.coordinator import HEALTHY_ANSWER, CoordinatorAdmin
from tests.conftest import API_KEY, SERVICE_LOGS

CONN_ID = "coordinator_health_test"
TIMEOUT = 5.0
# What the stand-in records of a `/health/deep` request with the right key.
HEALTH_OK = {"path": "/health/deep", "api_key_ok": True, "status": 200}


@pytest.fixture
def admin(coordinator, monkeypatch) -> CoordinatorAdmin:
    connect(monkeypatch, host=coordinator.url, password=API_KEY)
    admin = CoordinatorAdmin(coordinator.url)
    admin.reset()
    return admin


def connect(monkeypatch, **connection) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "http", **connection}))


def deep_health(timeout: float = TIMEOUT) -> dict:
    return CoordinatorHook(http_conn_id=CONN_ID, timeout=60).deep_health(timeout)


HTML = "<html>ok</html>"
ECHO = f"key {API_KEY}"  # a coordinator that echoes the key it was sent
DEGRADED = {"status": "degraded", "version": "2.4.1", "components": [
    {"name": "firestore", "status": "UP", "latency_ms": 9},
    {"name": "workers", "status": "unhealthy", "error": "3 of 10 workers not reporting"},
]}  # fmt: skip


@pytest.mark.parametrize(
    "key", [{"password": API_KEY}, {"extra": {API_KEY_HEADER: API_KEY}}], ids=["password", "in-extra"]
)
def test_a_healthy_coordinator_answers_its_document_with_the_key_sent(admin, coordinator, monkeypatch, key):
    connect(monkeypatch, host=coordinator.url, **key)

    result = deep_health()

    assert result == {"ok": True, "http_status": 200, "answer": HEALTHY_ANSWER}
    assert admin.health_calls() == [HEALTH_OK]
    assert health_summary(result) == ["All 3 components healthy"]


@pytest.mark.parametrize("status", [200, 503], ids=["200", "503 with a health document"])
def test_unhealthy_components_come_back_as_the_answer(admin, status):
    admin.set_health(DEGRADED, status=status)

    result = deep_health()

    assert result == {"ok": True, "http_status": status, "answer": DEGRADED}
    assert health_summary(result) == ["workers: unhealthy — 3 of 10 workers not reporting"]


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ({"status": 503, "body": "Service Unavailable"}, "HTTP 503 'Service Unavailable'"),
        ({"status": 503, "answer": {"error": "overloaded"}}, """HTTP 503 '{"error": "overloaded"}'"""),
        ({"status": 500, "body": ""}, "HTTP 500 ''"),
        ({"status": 200, "body": HTML, "content_type": "text/html"}, f"not JSON: '{HTML}'"),
        ({"status": 200, "body": '{"status": "healthy"'}, """not JSON: '{"status": "healthy"'"""),
    ],
    ids=["503 text", "503 JSON without status or components", "500 empty", "html", "cut JSON"],
)
def test_an_answer_without_a_health_document_is_a_failure_saying_what_came(admin, setting, error):
    admin.set_health(**setting)

    result = deep_health()

    assert result == {"ok": False, "http_status": setting["status"], "error": error}
    assert health_summary(result) == [escape(f"Health check failed: {error}")]
    assert len(admin.health_calls()) == 1, "one try, no retries"


def test_a_slow_coordinator_is_given_up_after_the_timeout(admin):
    admin.set_health(delay_seconds=5)

    started = time.monotonic()
    result = deep_health(timeout=0.5)

    assert result == {"ok": False, "error": "timed out after 0.5 s"}
    assert time.monotonic() - started < 4, "the 5 s answer was waited for"
    assert len(admin.health_calls()) == 1


def test_a_wrong_key_is_a_failure_naming_the_rejected_key(admin, coordinator, monkeypatch):
    connect(monkeypatch, host=coordinator.url, password="not-the-key")

    result = deep_health()

    assert (result["ok"], result["http_status"]) == (False, 401)
    assert result["error"].startswith("HTTP 401 '") and result["error"].endswith("(the API key was rejected)")
    assert admin.health_calls() == [{**HEALTH_OK, "api_key_ok": False, "status": 401}]


def test_a_connection_without_a_key_is_a_failure_without_a_request(admin, coordinator, monkeypatch):
    connect(monkeypatch, host=coordinator.url)

    result = deep_health()

    assert result["ok"] is False
    assert f"Connection '{CONN_ID}' has no API key" in result["error"]
    assert admin.health_calls() == []


def test_a_refused_connection_is_a_failure_naming_the_cause(monkeypatch):
    port = services.free_port()
    connect(monkeypatch, host=f"http://127.0.0.1:{port}", password=API_KEY)

    result = deep_health()

    assert result["ok"] is False
    assert result["error"].startswith(f"cannot connect to http://127.0.0.1:{port}: ")
    assert "Connection refused" in result["error"]


def test_a_long_error_body_is_cut_to_one_short_line(admin):
    admin.set_health(status=502, body="gateway\nsays " * 2000)

    error = deep_health()["error"]

    assert len(error) <= MAX_HEALTH_ERROR_CHARS and "\n" not in error
    assert error.startswith("HTTP 502 'gateway\\nsays gateway")


@pytest.mark.parametrize(
    "setting",
    [
        {"answer": {"status": "unhealthy", "components": {"auth": {"status": "down", "error": ECHO}}}},
        {"status": 503, "body": f"rejected X-API-Key: {API_KEY}"},
        {"status": 200, "body": f"plain text {API_KEY}"},
        {"status": 401, "body": f"{'x' * 290}{API_KEY}"},  # the key straddles the excerpt's cut
    ],
    ids=["in a component's error", "in a 503 body", "in a body that is not JSON", "across the cut"],
)
def test_an_echoed_key_never_reaches_the_result_or_the_logs(admin, setting, caplog, capfd):
    admin.set_health(**setting)

    with caplog.at_level(logging.DEBUG):
        result = deep_health()

    shown = json.dumps(result)
    logs = caplog.text + "".join(capfd.readouterr())
    assert API_KEY not in shown and API_KEY not in logs
    assert API_KEY[:10] not in shown, "no half of the key either"
    assert "***" in shown
    assert API_KEY not in "".join(health_summary(result))
    assert API_KEY not in (SERVICE_LOGS / "coordinator.log").read_text()
