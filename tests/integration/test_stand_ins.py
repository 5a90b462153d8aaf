"""The coordinator stand-in and the emulator's wipe, as real processes over real HTTP: the DAG's
tests trust what they answer (the Slack sink's tests: test_slack_sink_api.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from dev import services
from dev.airflow_env import LOCAL_PROJECT
from dev.coordinator import HEALTHY_ANSWER, CoordinatorAdmin
from tests.conftest import API_KEY

STALLED = {"batch_id": "b1", "completion_pct": 95, "stalled_minutes": 30}
THRESHOLDS = {"stall_threshold_minutes": 10, "min_completion_pct": 90}


@pytest.fixture
def admin(coordinator: services.Service) -> CoordinatorAdmin:
    admin = CoordinatorAdmin(coordinator.url)
    admin.reset()
    return admin


def check_stalled(
    admin: CoordinatorAdmin, body: object = None, *, api_key: str | None = API_KEY, key: str | None = None
) -> requests.Response:
    headers = {"X-API-Key": api_key, "X-Idempotency-Key": key}
    body = THRESHOLDS if body is None else body
    return requests.post(
        f"{admin.base_url}/check-stalled",
        json=body,
        headers={name: value for name, value in headers.items() if value is not None},
        timeout=10,
    )


def statuses(admin: CoordinatorAdmin) -> dict[str, str]:
    return {batch["batch_id"]: batch["status"] for batch in admin.batches()}


def deep_health(admin: CoordinatorAdmin) -> requests.Response:
    return requests.get(f"{admin.base_url}/health/deep", headers={"X-API-Key": API_KEY}, timeout=10)


# --- coordinator -----------------------------------------------------------------------------------


def test_api_key_is_not_on_the_command_line(coordinator):
    cmdline = Path(f"/proc/{coordinator.process.pid}/cmdline")
    if not cmdline.exists():
        pytest.skip("no /proc: command lines cannot be read this way here")

    shown = cmdline.read_bytes().replace(b"\0", b" ").decode()

    assert "dev.coordinator" in shown and API_KEY not in shown


@pytest.mark.parametrize("api_key", [None, "wrong-key"], ids=["missing key", "wrong key"])
def test_a_bad_key_is_a_401_that_acts_on_nothing_and_is_recorded_without_the_key(admin, api_key):
    admin.seed([STALLED])
    admin.faults([{"status": 500}])

    response = check_stalled(admin, api_key=api_key)

    assert (response.status_code, response.json()) == (401, {"error": "invalid or missing API key"})
    assert statuses(admin) == {"b1": "active"}
    [call] = admin.calls()
    assert (call["api_key_ok"], call["status"]) == (False, 401)
    assert "wrong-key" not in json.dumps(call)
    assert check_stalled(admin).status_code == 500, "a rejected call consumes no fault"


@pytest.mark.parametrize("body", [[1, 2], "text", {"min_completion_pct": "90"}, b"{nope"], ids=repr)
def test_a_body_that_is_not_an_object_of_numbers_is_a_400(admin, body):
    data = body if isinstance(body, bytes) else json.dumps(body)
    url, headers = f"{admin.base_url}/check-stalled", {"X-API-Key": API_KEY}

    assert requests.post(url, data=data, headers=headers, timeout=5).status_code == 400


@pytest.mark.parametrize(
    ("completion_pct", "stalled_minutes", "body", "stalled"),
    [
        (90, 30, None, True),  # completion exactly at the minimum counts
        (89.99, 30, None, False),
        (95, 10, None, True),  # progress exactly threshold minutes ago (plus the request's own latency)
        (95, 9.9, None, False),
        (90, 10.5, {}, True),  # no thresholds: 10 minutes and 90 %
        (89, 60, {}, False),
        (99, 9.5, {}, False),
    ],
)
def test_stalled_means_complete_enough_and_quiet_long_enough(
    admin, completion_pct, stalled_minutes, body, stalled
):
    admin.seed([{"batch_id": "b1", "completion_pct": completion_pct, "stalled_minutes": stalled_minutes}])

    answer = check_stalled(admin, body).json()

    assert (answer["batches_checked"], answer["batches_completed"]) == (1, int(stalled))
    [result] = answer["results"]
    action = "auto_completed" if stalled else "none"
    assert (result["batch_id"], result["was_stalled"], result["action"]) == ("b1", stalled, action)
    assert result["completion_pct"] == completion_pct
    assert stalled_minutes <= result["minutes_since_progress"] < stalled_minutes + 0.5
    assert statuses(admin) == {"b1": "completed" if stalled else "active"}


def test_an_idempotency_key_replays_its_first_answer_and_another_key_acts_again(admin):
    admin.seed([STALLED, {"batch_id": "running", "completion_pct": 40, "stalled_minutes": 1}])
    first = check_stalled(admin, key="run-1")
    # A batch that stalls between the calls shows whether a repeat acted again.
    admin.seed([{**STALLED, "batch_id": "b2"}])

    repeat = check_stalled(admin, key="run-1")
    other = check_stalled(admin, key="run-2").json()

    assert (repeat.status_code, repeat.content) == (first.status_code, first.content)
    assert (first.json()["batches_checked"], first.json()["batches_completed"]) == (2, 1)
    assert [result["batch_id"] for result in other["results"]] == ["running", "b2"], "completed: not checked"
    calls = admin.calls()
    keys = [(call["idempotency_key"], call["replayed"]) for call in calls]
    assert keys == [("run-1", False), ("run-1", True), ("run-2", False)]
    recorded = {"path": "/check-stalled", "idempotency_key": "run-1", "api_key_ok": True, "status": 200}
    assert calls[0] == {**recorded, "body": THRESHOLDS, "replayed": False}, "never the key itself"


def test_faults_apply_count_times_in_order_and_act_on_nothing(admin):
    admin.seed([STALLED])
    html = {"status": 502, "body": "Bad Gateway", "content_type": "text/html"}
    admin.faults([{"status": 503, "count": 2}, html, {"status": 429, "retry_after": 7}, {"malformed": True}])

    answers = [check_stalled(admin, key="k") for _ in range(6)]

    assert [answer.status_code for answer in answers] == [503, 503, 502, 429, 200, 200]
    assert answers[0].json() == {"error": "injected"}
    assert (answers[2].text, answers[2].headers["Content-Type"]) == ("Bad Gateway", "text/html")
    assert answers[3].headers["Retry-After"] == "7"
    assert answers[4].text == '{"results": ['
    # Injected answers did not act and were not stored for replay: the last call did the work.
    assert answers[5].json()["batches_completed"] == 1
    assert [call["status"] for call in admin.calls()] == [503, 503, 502, 429, 200, 200]


@pytest.mark.parametrize("after_action", [False, True])
def test_a_delay_fault_is_a_slow_coordinator_that_still_acts(admin, after_action):
    admin.seed([STALLED])
    admin.faults([{"delay_seconds": 0.6, "after_action": after_action}])

    started = time.monotonic()
    response = check_stalled(admin)

    assert time.monotonic() - started >= 0.6
    assert response.json()["batches_completed"] == 1


def test_the_health_answer_stays_until_changed_and_reset_forgets_everything(admin):
    admin.set_health(status=502, body="Bad Gateway")
    answers = [deep_health(admin) for _ in range(2)]
    bad = requests.post(f"{admin.base_url}/admin/health", json={"satus": 503}, timeout=5)
    admin.seed([STALLED])
    check_stalled(admin, key="run-1")
    admin.faults([{"status": 500}])

    assert [(a.status_code, a.headers["Content-Type"], a.text) for a in answers] == [
        (502, "text/plain", "Bad Gateway")
    ] * 2, "a setting stays until changed, unlike a fault"
    assert (bad.status_code, "satus" in bad.json()["error"]) == (400, True), "a typo changes nothing"
    assert deep_health(admin).status_code == 502
    admin.reset()
    assert (admin.batches(), admin.calls(), admin.health_calls()) == ([], [], [])
    assert deep_health(admin).json() == HEALTHY_ANSWER
    replay = check_stalled(admin, key="run-1")
    assert (replay.status_code, replay.json()["results"]) == (200, []), "no fault, no stored reply"


# --- the Firestore emulator ------------------------------------------------------------------------


def test_wipe_deletes_every_document(firestore):
    import google.auth.credentials
    from google.cloud import firestore as google_firestore

    credentials = google.auth.credentials.AnonymousCredentials()
    document = google_firestore.Client(credentials=credentials).collection("wipe_check").document("doc-1")
    document.set({"n": 1})
    assert document.get().exists

    services.wipe_firestore(firestore.url, LOCAL_PROJECT)

    assert not document.get().exists
