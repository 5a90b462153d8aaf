"""More of the coordinator's failure modes, and a very large or odd answer, through whole DAG runs
(the answers Airflow retries: tests/dags/test_end_to_end.py)."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from dev.airflow_env import connection_env
from dev.services import free_port
from tests.scenario import DAG_ID, explains, healthy, stalled, texts

pytestmark = pytest.mark.e2e


def test_connection_refused_is_retried_then_fails_and_tells_slack(airflow, fresh, events):
    _, sink = fresh
    closed = connection_env(
        coordinator_url=f"http://127.0.0.1:{free_port()}", api_key="k", slack_webhook_url="x"
    )

    run = airflow.dags_test(
        DAG_ID,
        name="refused",
        extra_env={"AIRFLOW_CONN_PREDICTION_COORDINATOR": closed["AIRFLOW_CONN_PREDICTION_COORDINATOR"]},
        expect="failed",
    )
    assert run.tries["check_stalled"] == 4, "a refused connection is transient: all retries are used"
    assert events() == [], "a failed call is never recorded as '0 stalled'"
    [failure] = texts(sink)
    assert explains(failure, "cannot reach /check-stalled on connection 'prediction_coordinator'")


def test_ten_thousand_results_with_unicode_and_long_ids(airflow, fresh, events):
    coordinator, _ = fresh
    odd = ["ünïcødé-バッチ-🚀-" + str(index) for index in range(50)] + [
        "x" * 499 + str(index) for index in range(50)
    ]
    batches = [stalled(batch_id) for batch_id in odd]
    batches += [stalled(f"plain-{index:05d}") for index in range(4_900)]
    batches += [healthy(f"busy-{index:05d}") for index in range(5_000)]
    coordinator.seed(batches)

    run = airflow.dags_test(DAG_ID, name="ten-thousand", expect="success")
    [event] = events()
    assert event["stalled_count"] == 5_000 and event["batches_checked"] == 10_000
    assert event["truncated"] is True
    assert set(odd) <= set(event["batch_ids"]), "unicode and 500-character ids are stored as given"
    with sqlite3.connect(airflow.home / "airflow.db") as metadata:
        rows = metadata.execute(
            "SELECT value FROM xcom WHERE run_id = ? AND task_id = 'check_stalled'", (run.run_id,)
        ).fetchall()
    size = sum(len(value if isinstance(value, bytes) else str(value).encode()) for (value,) in rows)
    assert 0 < size < 100_000, f"check_stalled's XCom is {size} bytes"
    assert json.loads(rows[0][0])["stalled_count"] == 5_000


def test_coordinator_429_with_retry_after_is_waited_out_within_the_try(airflow, fresh, events):
    coordinator, sink = fresh
    coordinator.seed([stalled("b-after-429")])
    coordinator.faults([{"status": 429, "retry_after": 2, "count": 1}])

    run = airflow.dags_test(DAG_ID, name="coordinator-429", expect="success")
    assert run.tries["check_stalled"] == 1, "Retry-After fits in the try: waited out, not a retry"
    calls = coordinator.calls()
    assert len(calls) == 2
    assert calls[0]["idempotency_key"] == calls[1]["idempotency_key"]
    assert "waiting 2 s (Retry-After)" in run.output
    assert [event["batch_ids"] for event in events()] == [["b-after-429"]]
    assert sink.messages() == []


def test_a_hung_coordinator_fails_every_try_within_the_budget_and_posts_the_cause(airflow, fresh, events):
    coordinator, sink = fresh
    coordinator.seed([stalled("b-hung")])
    coordinator.faults([{"delay_seconds": 4, "count": 10}])

    run = airflow.dags_test(
        DAG_ID,
        name="hung",
        extra_env={"AIRFLOW__BATCH_CLEANUP__COORDINATOR_TIMEOUT_SECONDS": "2"},
        expect="failed",
    )
    assert run.tries["check_stalled"] == 4, "every try is used, and each one ends"
    [failure] = texts(sink)
    assert explains(failure, "did not answer within 2 s"), "Slack hears the cause, not only that the run hung"
    assert events() == []
    # The stand-in records a slow call once it answers: let the last one finish before the next test.
    deadline = time.monotonic() + 10
    while len(coordinator.calls()) < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(coordinator.calls()) == 4
