"""Alerts carry the diagnosis through whole DAG runs: the coordinator stand-in's `/health/deep`
(asked with the connection's key, best effort) and a Logs Explorer link for the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest

from dev.airflow_env import LOCAL_PROJECT
from tests.scenario import DAG_ID, record_events

pytestmark = pytest.mark.e2e

RUN_AFTER = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)


def seed_window(db, prefix: str) -> None:
    record_events(db, RUN_AFTER - timedelta(minutes=10), *(f"{prefix}-{index}" for index in range(3)))


def alert_of(airflow, sink, name: str, **env: str):
    run = airflow.dags_test(DAG_ID, run_after=RUN_AFTER, name=name, extra_env=env, expect="success")
    [message] = sink.messages()
    return run, message["payload"]


def test_a_warning_names_the_unhealthy_components_and_links_the_windows_worker_logs(airflow, fresh, db):
    coordinator, sink = fresh
    seed_window(db, "diag")
    coordinator.set_health(
        {
            "status": "unhealthy",
            "components": [
                {"name": "workers", "status": "UNHEALTHY", "error": "3 of 10 workers not reporting"},
                {"name": "firestore", "status": "ok", "latency_ms": 9},
                {"name": "model_registry", "status": "degraded", "latency_ms": 2400, "shard": "x"},
            ],
        },
        status=503,
    )

    _, alert = alert_of(airflow, sink, "diagnosis")

    assert [call["api_key_ok"] for call in coordinator.health_calls()] == [True]
    health = alert["blocks"][2]["text"]["text"]
    assert "workers: UNHEALTHY — 3 of 10 workers not reporting" in health
    assert "model_registry: degraded, 2400 ms" in health
    assert "firestore" not in health
    [logs] = [line for line in alert["text"].splitlines() if line.startswith("Worker logs of the window: ")]
    url = unquote(logs.removeprefix("Worker logs of the window: ").replace("&amp;", "&"))
    assert f"?project={LOCAL_PROJECT}" in url
    assert 'query=resource.type="cloud_run_revision" severity>=WARNING' in url
    start, end = RUN_AFTER - timedelta(minutes=60), RUN_AFTER
    assert f"startTime={start:%Y-%m-%dT%H:%M:%S}" in url and f"endTime={end:%Y-%m-%dT%H:%M:%S}" in url


def test_a_slow_health_check_is_one_line_and_the_alert_goes_out_at_once(airflow, fresh, db):
    coordinator, sink = fresh
    seed_window(db, "slow")
    coordinator.set_health(delay_seconds=8)

    run, alert = alert_of(airflow, sink, "health-slow", AIRFLOW__BATCH_CLEANUP__HEALTH_TIMEOUT_SECONDS="1")

    assert "Health check failed: timed out after 1 s" in alert["text"]
    assert run.tries["send_alert"] == 1
    assert alert["text"].startswith("WARNING: systemic batch stalls")


def test_the_worker_logs_query_comes_from_airflows_config(airflow, fresh, db):
    coordinator, sink = fresh
    seed_window(db, "query")
    coordinator.set_health(status=500, body="<html>oops</html>", content_type="text/html")
    query = 'resource.type="k8s_container" labels.app="worker"'

    _, alert = alert_of(airflow, sink, "logs-query", AIRFLOW__BATCH_CLEANUP__WORKER_LOGS_QUERY=query)

    assert "Health check failed: HTTP 500" in alert["text"]
    assert f"query={query}" in unquote(alert["text"].replace("&amp;", "&"))
