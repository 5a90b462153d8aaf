"""The stand-ins themselves, as real processes over real HTTP: other tests trust what they answer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dev import services
from dev.airflow_env import REPO
from dev.coordinator import API_KEY_VARIABLE, HEALTHY_ANSWER, CoordinatorAdmin
from dev.slack_sink import WEBHOOK_PATH, SlackSinkAdmin

LOG_DIR = REPO / "test-output" / "stand-ins"
API_KEY = "test-key"
FORBIDDEN_KEY = "revoked-key"
PROJECT = "demo-test"
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}
# A missing, a wrong and a forbidden key, and what the coordinator answers each, on every endpoint.
BAD_KEYS = pytest.mark.parametrize(
    ("api_key", "status"),
    [(None, 401), ("wrong-key", 401), (FORBIDDEN_KEY, 403)],
    ids=["missing key", "wrong key", "forbidden key"],
)
# What the stand-in records of a `/health/deep` request with the right key.
HEALTH_OK = {"path": "/health/deep", "api_key_ok": True, "status": 200}


# Named apart from tests/conftest.py's session fixtures: these processes have their own settings.
@pytest.fixture(scope="module")
def coordinator_process() -> Iterator[services.Service]:
    service = services.start_coordinator(LOG_DIR, api_key=API_KEY, forbidden_key=FORBIDDEN_KEY)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def sink_process() -> Iterator[services.Service]:
    service = services.start_slack_sink(LOG_DIR)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def emulator_process() -> Iterator[services.Service]:
    service = services.start_firestore_emulator(LOG_DIR)
    yield service
    service.stop()


@pytest.fixture
def coordinator_admin(coordinator_process: services.Service) -> CoordinatorAdmin:
    admin = CoordinatorAdmin(coordinator_process.url)
    admin.reset()
    return admin


@pytest.fixture
def sink_admin(sink_process: services.Service) -> SlackSinkAdmin:
    admin = SlackSinkAdmin(sink_process.url)
    admin.reset()
    return admin


def check_stalled(
    admin: CoordinatorAdmin,
    body: object = None,
    *,
    api_key: str | None = API_KEY,
    idempotency_key: str | None = None,
    timeout: float = 10,
) -> requests.Response:
    headers = {}
    if api_key is not None:
        headers["X-API-Key"] = api_key
    if idempotency_key is not None:
        headers["X-Idempotency-Key"] = idempotency_key
    body = {"stall_threshold_minutes": 10, "min_completion_pct": 90} if body is None else body
    return requests.post(f"{admin.base_url}/check-stalled", json=body, headers=headers, timeout=timeout)


def statuses(admin: CoordinatorAdmin) -> dict[str, str]:
    return {batch["batch_id"]: batch["status"] for batch in admin.batches()}


# --- coordinator: its key ---------------------------------------------------------------------------


def test_api_key_is_not_on_the_command_line(coordinator_process: services.Service) -> None:
    cmdline = Path(f"/proc/{coordinator_process.process.pid}/cmdline")
    if not cmdline.exists():
        pytest.skip("no /proc: command lines cannot be read this way here")

    shown = cmdline.read_bytes().replace(b"\0", b" ").decode()

    assert "dev.coordinator" in shown
    assert API_KEY not in shown


def test_coordinator_will_not_start_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_VARIABLE, raising=False)

    done = subprocess.run(
        [sys.executable, "-m", "dev.coordinator", "--port", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 2
    assert API_KEY_VARIABLE in done.stderr


# --- coordinator: contract -------------------------------------------------------------------------


def deep_health(
    admin: CoordinatorAdmin, api_key: str | None = API_KEY, timeout: float = 10
) -> requests.Response:
    headers = {} if api_key is None else {"X-API-Key": api_key}
    return requests.get(f"{admin.base_url}/health/deep", headers=headers, timeout=timeout)


def test_deep_health_answers_the_healthy_default_to_the_key(coordinator_admin: CoordinatorAdmin) -> None:
    response = deep_health(coordinator_admin)

    assert (response.status_code, response.json()) == (200, HEALTHY_ANSWER)
    assert response.headers["Content-Type"] == "application/json"
    assert coordinator_admin.health_calls() == [HEALTH_OK]


@BAD_KEYS
def test_deep_health_checks_the_key_like_check_stalled(
    coordinator_admin: CoordinatorAdmin, api_key: str | None, status: int
) -> None:
    response = deep_health(coordinator_admin, api_key)

    assert response.status_code == status
    assert response.json() == check_stalled(coordinator_admin, api_key=api_key).json()
    assert coordinator_admin.health_calls() == [{**HEALTH_OK, "api_key_ok": False, "status": status}]
    assert "wrong-key" not in response.text and FORBIDDEN_KEY not in json.dumps(
        coordinator_admin.health_calls()
    )


@pytest.mark.parametrize(
    ("setting", "status", "content_type", "body"),
    [
        ({"answer": {"status": "degraded"}}, 200, "application/json", b'{"status": "degraded"}'),
        ({"answer": [1], "status": 503}, 503, "application/json", b"[1]"),
        ({"status": 502, "body": "Bad Gateway"}, 502, "text/plain", b"Bad Gateway"),
        ({"body": "<p>", "content_type": "text/html"}, 200, "text/html", b"<p>"),
    ],
    ids=["answer", "answer with a status", "raw body with a status", "raw body with a type"],
)
def test_the_health_answer_can_be_set(
    coordinator_admin: CoordinatorAdmin, setting: dict, status: int, content_type: str, body: bytes
) -> None:
    coordinator_admin.set_health(**setting)

    answers = [deep_health(coordinator_admin) for _ in range(2)]

    assert [(a.status_code, a.headers["Content-Type"], a.content) for a in answers] == [
        (status, content_type, body)
    ] * 2, "a setting stays until changed, unlike a fault"


def test_a_health_delay_outlasts_a_client_timeout_and_is_recorded_first(
    coordinator_admin: CoordinatorAdmin,
) -> None:
    coordinator_admin.set_health(delay_seconds=1.5)

    with pytest.raises(requests.exceptions.Timeout):
        deep_health(coordinator_admin, timeout=0.3)
    assert coordinator_admin.health_calls() == [HEALTH_OK]


def test_set_health_without_arguments_and_reset_restore_the_default(
    coordinator_admin: CoordinatorAdmin,
) -> None:
    coordinator_admin.set_health(status=500, body="down")
    coordinator_admin.set_health()
    assert deep_health(coordinator_admin).json() == HEALTHY_ANSWER

    coordinator_admin.set_health(status=500, body="down")
    coordinator_admin.reset()

    assert deep_health(coordinator_admin).json() == HEALTHY_ANSWER
    assert coordinator_admin.health_calls() == [HEALTH_OK]


def test_an_unknown_health_setting_is_a_400_and_changes_nothing(coordinator_admin: CoordinatorAdmin) -> None:
    response = requests.post(f"{coordinator_admin.base_url}/admin/health", json={"satus": 503}, timeout=5)

    assert response.status_code == 400
    assert "satus" in response.json()["error"]
    assert deep_health(coordinator_admin).json() == HEALTHY_ANSWER


@BAD_KEYS
def test_coordinator_rejects_bad_keys_without_acting(
    coordinator_admin: CoordinatorAdmin, api_key: str | None, status: int
) -> None:
    coordinator_admin.seed([{"batch_id": "b1", "completion_pct": 95, "stalled_minutes": 30}])

    response = check_stalled(coordinator_admin, api_key=api_key)

    assert response.status_code == status
    assert "error" in response.json()
    assert statuses(coordinator_admin) == {"b1": "active"}
    [call] = coordinator_admin.calls()
    assert (call["api_key_ok"], call["status"]) == (False, status)
    assert "wrong-key" not in json.dumps(call) and FORBIDDEN_KEY not in json.dumps(call)


def test_missing_key_has_the_documented_error_body(coordinator_admin: CoordinatorAdmin) -> None:
    assert check_stalled(coordinator_admin, api_key=None).json() == {"error": "invalid or missing API key"}


def test_calls_never_record_the_api_key(coordinator_admin: CoordinatorAdmin) -> None:
    check_stalled(coordinator_admin, idempotency_key="k1")

    [call] = coordinator_admin.calls()
    assert API_KEY not in json.dumps(call)
    assert call == {
        "path": "/check-stalled",
        "idempotency_key": "k1",
        "api_key_ok": True,
        "body": {"stall_threshold_minutes": 10, "min_completion_pct": 90},
        "status": 200,
        "replayed": False,
    }


@pytest.mark.parametrize("body", [[1, 2], "text", 5], ids=["array", "string", "number"])
def test_body_that_is_not_an_object_is_a_400(coordinator_admin: CoordinatorAdmin, body: object) -> None:
    response = check_stalled(coordinator_admin, body)

    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]


def test_body_that_is_not_json_is_a_400(coordinator_admin: CoordinatorAdmin) -> None:
    response = requests.post(
        f"{coordinator_admin.base_url}/check-stalled",
        data=b"{nope",
        headers={"X-API-Key": API_KEY},
        timeout=5,
    )

    assert response.status_code == 400


@pytest.mark.parametrize(
    ("completion_pct", "stalled_minutes", "stalled"),
    [
        (90, 30, True),  # completion exactly at the minimum counts
        (89.99, 30, False),
        (95, 10, True),  # progress exactly threshold minutes ago (plus the request's own latency)
        (95, 9.9, False),
        (100, 0, False),
    ],
)
def test_stalled_means_complete_enough_and_quiet_long_enough(
    coordinator_admin: CoordinatorAdmin, completion_pct: float, stalled_minutes: float, stalled: bool
) -> None:
    coordinator_admin.seed(
        [{"batch_id": "b1", "completion_pct": completion_pct, "stalled_minutes": stalled_minutes}]
    )

    body = check_stalled(coordinator_admin).json()

    assert body["batches_checked"] == 1
    assert body["batches_completed"] == int(stalled)
    [result] = body["results"]
    assert result["batch_id"] == "b1"
    assert result["was_stalled"] is stalled
    assert result["action"] == ("auto_completed" if stalled else "none")
    assert result["completion_pct"] == completion_pct
    assert stalled_minutes <= result["minutes_since_progress"] < stalled_minutes + 0.5
    assert statuses(coordinator_admin) == {"b1": "completed" if stalled else "active"}


def test_missing_thresholds_default_to_10_minutes_and_90_pct(coordinator_admin: CoordinatorAdmin) -> None:
    coordinator_admin.seed(
        [
            {"batch_id": "yes", "completion_pct": 90, "stalled_minutes": 10.5},
            {"batch_id": "too-recent", "completion_pct": 99, "stalled_minutes": 9.5},
            {"batch_id": "too-incomplete", "completion_pct": 89, "stalled_minutes": 60},
        ]
    )

    body = check_stalled(coordinator_admin, {}).json()

    assert {result["batch_id"]: result["was_stalled"] for result in body["results"]} == {
        "yes": True,
        "too-recent": False,
        "too-incomplete": False,
    }


def test_last_progress_can_be_seeded_as_an_iso_time(coordinator_admin: CoordinatorAdmin) -> None:
    coordinator_admin.seed(
        [
            {"batch_id": "old", "completion_pct": 95, "last_progress_at": "2020-01-01T00:00:00Z"},
            {"batch_id": "future", "completion_pct": 95, "last_progress_at": "2999-01-01T00:00:00+00:00"},
        ]
    )

    body = check_stalled(coordinator_admin).json()

    assert [result["was_stalled"] for result in body["results"]] == [True, False]


def test_completed_batches_are_not_checked_again(coordinator_admin: CoordinatorAdmin) -> None:
    coordinator_admin.seed(
        [
            {"batch_id": "stalled", "completion_pct": 95, "stalled_minutes": 30},
            {"batch_id": "running", "completion_pct": 40, "stalled_minutes": 1},
        ]
    )

    first = check_stalled(coordinator_admin).json()
    second = check_stalled(coordinator_admin).json()

    assert (first["batches_checked"], first["batches_completed"]) == (2, 1)
    assert (second["batches_checked"], second["batches_completed"]) == (1, 0)
    assert [result["batch_id"] for result in second["results"]] == ["running"]


def test_same_idempotency_key_replays_the_first_answer_without_acting(
    coordinator_admin: CoordinatorAdmin,
) -> None:
    coordinator_admin.seed([{"batch_id": "b1", "completion_pct": 95, "stalled_minutes": 30}])
    first = check_stalled(coordinator_admin, idempotency_key="run-1")
    # A batch that stalls between the two calls shows whether the repeat acted again.
    coordinator_admin.seed([{"batch_id": "b2", "completion_pct": 95, "stalled_minutes": 30}])

    repeat = check_stalled(coordinator_admin, idempotency_key="run-1")

    assert (repeat.status_code, repeat.content) == (first.status_code, first.content)
    assert first.json()["batches_completed"] == 1
    assert statuses(coordinator_admin) == {"b1": "completed", "b2": "active"}
    calls = coordinator_admin.calls()
    assert [(call["idempotency_key"], call["status"], call["replayed"]) for call in calls] == [
        ("run-1", 200, False),
        ("run-1", 200, True),
    ]


def test_another_idempotency_key_acts_again(coordinator_admin: CoordinatorAdmin) -> None:
    coordinator_admin.seed([{"batch_id": "b1", "completion_pct": 95, "stalled_minutes": 30}])
    check_stalled(coordinator_admin, idempotency_key="run-1")
    coordinator_admin.seed([{"batch_id": "b2", "completion_pct": 95, "stalled_minutes": 30}])

    body = check_stalled(coordinator_admin, idempotency_key="run-2").json()

    assert [result["batch_id"] for result in body["results"]] == ["b2"]
    assert statuses(coordinator_admin) == {"b1": "completed", "b2": "completed"}


# --- coordinator: faults ---------------------------------------------------------------------------


def test_status_fault_applies_count_times_then_the_queue_moves_on(
    coordinator_admin: CoordinatorAdmin,
) -> None:
    coordinator_admin.seed([{"batch_id": "b1", "completion_pct": 95, "stalled_minutes": 30}])
    coordinator_admin.faults(
        [{"status": 503, "count": 2}, {"status": 502, "body": "Bad Gateway", "content_type": "text/html"}]
    )

    answers = [check_stalled(coordinator_admin, idempotency_key="k") for _ in range(4)]

    assert [answer.status_code for answer in answers] == [503, 503, 502, 200]
    assert answers[0].json() == {"error": "injected"}
    assert (answers[2].text, answers[2].headers["Content-Type"]) == ("Bad Gateway", "text/html")
    # Injected failures did not act and were not stored for replay: the fourth call did the work.
    assert answers[3].json()["batches_completed"] == 1
    assert [call["status"] for call in coordinator_admin.calls()] == [503, 503, 502, 200]


def test_malformed_fault_answers_200_with_truncated_json(coordinator_admin: CoordinatorAdmin) -> None:
    coordinator_admin.seed([{"batch_id": "b1", "completion_pct": 95, "stalled_minutes": 30}])
    coordinator_admin.faults([{"malformed": True}])

    response = check_stalled(coordinator_admin)

    assert (response.status_code, response.text) == (200, '{"results": [')
    with pytest.raises(ValueError):
        response.json()
    assert statuses(coordinator_admin) == {"b1": "active"}


def test_delay_fault_is_a_slow_coordinator_that_still_acts(coordinator_admin: CoordinatorAdmin) -> None:
    coordinator_admin.seed([{"batch_id": "b1", "completion_pct": 95, "stalled_minutes": 30}])
    coordinator_admin.faults([{"delay_seconds": 0.6}])

    started = time.monotonic()
    response = check_stalled(coordinator_admin)

    assert time.monotonic() - started >= 0.6
    assert response.json()["batches_completed"] == 1


def test_delay_fault_outlasts_a_client_timeout(coordinator_admin: CoordinatorAdmin) -> None:
    coordinator_admin.faults([{"status": 504, "delay_seconds": 1.5}])

    with pytest.raises(requests.exceptions.Timeout):
        check_stalled(coordinator_admin, timeout=0.3)


def test_after_action_fault_acts_and_stores_the_reply_then_times_out(
    coordinator_admin: CoordinatorAdmin,
) -> None:
    coordinator_admin.seed([{"batch_id": "b1", "completion_pct": 95, "stalled_minutes": 30}])
    coordinator_admin.faults([{"status": 504, "delay_seconds": 1.5, "after_action": True}])

    with pytest.raises(requests.exceptions.Timeout):
        check_stalled(coordinator_admin, idempotency_key="run-1", timeout=0.3)
    assert statuses(coordinator_admin) == {"b1": "completed"}

    retry = check_stalled(coordinator_admin, idempotency_key="run-1")

    assert retry.status_code == 200
    assert retry.json()["results"][0]["action"] == "auto_completed"
    assert [(call["status"], call["replayed"]) for call in coordinator_admin.calls()] == [
        (504, False),
        (200, True),
    ]


def test_after_action_delay_without_status_sends_the_real_reply_late(
    coordinator_admin: CoordinatorAdmin,
) -> None:
    coordinator_admin.seed([{"batch_id": "b1", "completion_pct": 95, "stalled_minutes": 30}])
    coordinator_admin.faults([{"delay_seconds": 0.6, "after_action": True}])

    started = time.monotonic()
    response = check_stalled(coordinator_admin)

    assert time.monotonic() - started >= 0.6
    assert response.json()["batches_completed"] == 1


def test_rejected_calls_do_not_consume_faults(coordinator_admin: CoordinatorAdmin) -> None:
    coordinator_admin.faults([{"status": 500}])

    assert check_stalled(coordinator_admin, api_key="wrong-key").status_code == 401
    assert check_stalled(coordinator_admin).status_code == 500


def test_reset_forgets_batches_faults_calls_and_stored_replies(coordinator_admin: CoordinatorAdmin) -> None:
    coordinator_admin.seed([{"batch_id": "b1", "completion_pct": 95, "stalled_minutes": 30}])
    check_stalled(coordinator_admin, idempotency_key="run-1")
    coordinator_admin.faults([{"status": 500}])

    coordinator_admin.reset()

    assert (coordinator_admin.batches(), coordinator_admin.calls()) == ([], [])
    response = check_stalled(coordinator_admin, idempotency_key="run-1")
    assert response.status_code == 200
    assert response.json() == {"batches_checked": 0, "batches_completed": 0, "results": []}


# --- Slack sink ------------------------------------------------------------------------------------


def post_webhook(sink_admin: SlackSinkAdmin, payload: object, **kwargs: object) -> requests.Response:
    return requests.post(sink_admin.webhook_url, json=payload, timeout=10, **kwargs)


def test_sink_accepts_and_stores_messages_like_slack(sink_admin: SlackSinkAdmin) -> None:
    response = post_webhook(sink_admin, {"text": "hello", "blocks": [SECTION]})

    assert (response.status_code, response.text) == (200, "ok")
    assert response.headers["Content-Type"].startswith("text/plain")
    [message] = sink_admin.messages()
    assert message["path"] == WEBHOOK_PATH
    assert message["payload"] == {"text": "hello", "blocks": [SECTION]}
    assert message["received_at"].endswith("+00:00")


def test_any_path_under_services_is_a_webhook(sink_admin: SlackSinkAdmin) -> None:
    response = requests.post(f"{sink_admin.base_url}/services/T1/B2/other", json={"text": "x"}, timeout=5)

    assert response.text == "ok"
    assert sink_admin.messages()[0]["path"] == "/services/T1/B2/other"


def test_rate_limit_fault_carries_retry_after_and_is_not_stored(sink_admin: SlackSinkAdmin) -> None:
    sink_admin.faults([{"status": 429, "retry_after": 2, "count": 2}])

    answers = [post_webhook(sink_admin, {"text": f"try {n}"}) for n in range(3)]

    assert [(answer.status_code, answer.text) for answer in answers] == [
        (429, "rate_limited"),
        (429, "rate_limited"),
        (200, "ok"),
    ]
    assert answers[0].headers["Retry-After"] == "2"
    assert [message["payload"]["text"] for message in sink_admin.messages()] == ["try 2"]
    assert sink_admin.attempts() == 3


@pytest.mark.parametrize(
    ("fault", "status", "body"),
    [
        ({"status": 404}, 404, "channel_not_found"),
        ({"status": 500, "body": "internal_error"}, 500, "internal_error"),
        ({"status": 429}, 429, "rate_limited"),
    ],
)
def test_faults_answer_with_slack_error_strings(
    sink_admin: SlackSinkAdmin, fault: dict, status: int, body: str
) -> None:
    sink_admin.faults([fault])

    response = post_webhook(sink_admin, {"text": "lost"})

    assert (response.status_code, response.text) == (status, body)
    assert sink_admin.messages() == []
    assert sink_admin.attempts() == 1


def test_sink_rejects_what_slack_rejects(sink_admin: SlackSinkAdmin) -> None:
    not_json = requests.post(sink_admin.webhook_url, data=b"text=hi", timeout=5)
    no_text = post_webhook(sink_admin, {"username": "bot"})

    assert (not_json.status_code, not_json.text) == (400, "invalid_payload")
    assert (no_text.status_code, no_text.text) == (400, "no_text")
    assert sink_admin.messages() == []
    assert sink_admin.attempts() == 2


def test_page_lists_texts_newest_first_and_escaped(sink_admin: SlackSinkAdmin) -> None:
    post_webhook(sink_admin, {"text": "first <b>"})
    post_webhook(sink_admin, {"text": "second & last"})

    page = requests.get(f"{sink_admin.base_url}/", timeout=5).text

    assert page.index("second &amp; last") < page.index("first &lt;b&gt;")
    assert "<b>" not in page


def test_sink_reset_clears_messages_faults_and_attempts(sink_admin: SlackSinkAdmin) -> None:
    post_webhook(sink_admin, {"text": "x"})
    sink_admin.faults([{"status": 500}])

    sink_admin.reset()

    assert (sink_admin.messages(), sink_admin.attempts()) == ([], 0)
    assert post_webhook(sink_admin, {"text": "y"}).status_code == 200


# --- Firestore emulator ----------------------------------------------------------------------------


def test_emulator_answers_ok(emulator_process: services.Service) -> None:
    response = requests.get(f"{emulator_process.url}/", timeout=5)

    assert (response.status_code, response.text.strip()) == (200, "Ok")
    assert emulator_process.host == emulator_process.url.removeprefix("http://")


def test_wipe_deletes_every_document(
    emulator_process: services.Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    import google.auth.credentials
    from google.cloud import firestore

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator_process.host)
    client = firestore.Client(project=PROJECT, credentials=google.auth.credentials.AnonymousCredentials())
    document = client.collection("wipe_check").document("doc-1")
    document.set({"n": 1})
    assert document.get().exists

    services.wipe_firestore(emulator_process.url, PROJECT)

    assert not document.get().exists
    assert list(client.collection("wipe_check").stream()) == []
