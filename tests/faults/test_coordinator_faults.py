"""What if the coordinator redirects elsewhere, or hangs halfway through its answer: loopback servers
scripted to do so, the hook and a whole DAG run talking to them over real sockets.

Answers that are garbage (not JSON, the wrong shape, an HTML 200) are covered already, for
`/check-stalled` by tests/dags/test_end_to_end.py and for `/health/deep` by
tests/integration/test_coordinator_hook.py.
"""

from __future__ import annotations

import json
import time

import pytest

from batch_cleanup.compat import AirflowFailException
from batch_cleanup.hooks.coordinator import API_KEY_HEADER, CoordinatorHook, CoordinatorUnavailable
from tests.conftest import API_KEY
from tests.scenario import DAG_ID, explains, stalled, texts
from tests.support.loopback import Answer, Loopback

CONN_ID = "coordinator_fault_test"
REDIRECTS = [301, 302, 303, 307, 308]
ZERO_STALLED = json.dumps({"results": []}).encode()


@pytest.fixture
def elsewhere():
    """Another host that would answer "0 stalled" to whoever asks, and records who did."""
    with Loopback(Answer(200, ZERO_STALLED, {"Content-Type": "application/json"})) as server:
        yield server


def connect(monkeypatch, url: str) -> None:
    connection = {"conn_type": "http", "host": url, "password": API_KEY}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))


def hook(timeout: float = 5) -> CoordinatorHook:
    return CoordinatorHook(http_conn_id=CONN_ID, timeout=timeout)


def check_stalled(timeout: float = 5) -> dict:
    return hook(timeout).check_stalled(stall_threshold_minutes=10, min_completion_pct=90, idempotency_key="k")


@pytest.mark.parametrize("status", REDIRECTS)
def test_a_redirect_is_not_followed_it_fails_naming_the_location_and_sends_nothing_there(
    monkeypatch, elsewhere, status
):
    """`/check-stalled` fails naming the location; `/health/deep` is a failed check."""
    stalled_at, health_at = f"{elsewhere.url}/check-stalled", f"{elsewhere.url}/health/deep"
    with (
        Loopback(Answer(status, headers={"Location": stalled_at})) as coordinator,
        Loopback(Answer(status, headers={"Location": health_at})) as health,
    ):
        connect(monkeypatch, coordinator.url)
        with pytest.raises(AirflowFailException) as failure:
            check_stalled()
        [asked] = coordinator.requests()
        connect(monkeypatch, health.url)
        result = hook().deep_health(5)

    message = str(failure.value)
    assert f"redirected (HTTP {status}) to {stalled_at!r}" in message
    assert f"set the host of connection {CONN_ID!r}" in message
    assert API_KEY not in message
    assert (asked.method, asked.headers.get(API_KEY_HEADER)) == ("POST", API_KEY)
    assert (result["ok"], result["http_status"]) == (False, status)
    assert result["error"].startswith(f"redirected (HTTP {status}) to {health_at!r}; not followed")
    assert elsewhere.requests() == [], "the key (or anything) reached the host the redirect named"


def test_a_coordinator_hanging_mid_body_is_unavailable_within_the_timeout(monkeypatch):
    body = json.dumps({"results": [{"batch_id": "b", "was_stalled": True}]}).encode()
    with Loopback(Answer(200, body, {"Content-Type": "application/json"}, hang_after=12)) as coordinator:
        connect(monkeypatch, coordinator.url)
        started = time.monotonic()

        with pytest.raises(CoordinatorUnavailable, match=r"did not answer within 1 s") as failure:
            check_stalled(timeout=1)

        assert time.monotonic() - started < 4
    assert f"connection {CONN_ID!r}" in str(failure.value)


def test_a_health_check_hanging_mid_body_is_a_timeout(monkeypatch):
    body = json.dumps({"status": "healthy", "components": {}}).encode()
    with Loopback(Answer(200, body, {"Content-Type": "application/json"}, hang_after=5)) as coordinator:
        connect(monkeypatch, coordinator.url)

        result = hook().deep_health(1)

    assert result == {"ok": False, "error": "timed out after 1 s"}


@pytest.mark.e2e
def test_a_redirected_check_stalled_fails_the_run_and_slack_hears_the_location(
    airflow, fresh, events, elsewhere
):
    coordinator, sink = fresh
    coordinator.seed([stalled("b-never-seen")])
    location = f"{elsewhere.url}/check-stalled"
    with Loopback(Answer(302, headers={"Location": location})) as redirecting:
        connection = {"conn_type": "http", "host": redirecting.url, "password": API_KEY}
        run = airflow.dags_test(
            DAG_ID,
            name="redirect",
            extra_env={"AIRFLOW_CONN_PREDICTION_COORDINATOR": json.dumps(connection)},
        )
        asked = redirecting.requests()

    assert run.state == "failed", run.explain()
    assert run.tries["check_stalled"] == 1, "a redirect is the connection's fault: not retried"
    assert len(asked) == 1
    assert elsewhere.requests() == [], "the key reached the host the redirect named"
    assert events() == [], "a redirect must never be recorded as '0 stalled'"
    [failure] = texts(sink)
    assert explains(failure, f"redirected (HTTP 302) to {location!r}")
