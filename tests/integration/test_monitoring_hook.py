"""MonitoringHook against the Monitoring API stand-in over real HTTP: the exact series of one write in
one call, and every failure (Google's error answers, a hung API, a refused retry, no project) is one
warning line and False, never an exception."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from batch_cleanup.hooks.monitoring import MonitoringHook, MonitoringWriteError
from batch_cleanup.monitoring import RunFigures, run_series
from batch_cleanup.steps import write_run_metrics
from dev.monitoring_api import MonitoringAdmin

CONN_ID = "monitoring_hook_test"
PROJECT = "demo-monitoring"
END = datetime(2026, 3, 8, 6, 47, 12, 250000, tzinfo=UTC)
# Checked 12, auto-completed 2, 3 cleanups in the window, 1 message sent and 0 failed: an alert.
FIGURES = RunFigures("stalled_batch_cleanup", END, 12, 2, 3, 1, 0, "alert", "WARNING")


@pytest.fixture
def api(monitoring_api, gcp_connection) -> MonitoringAdmin:
    gcp_connection(CONN_ID, project=PROJECT)
    admin = MonitoringAdmin(monitoring_api.url)
    admin.reset()
    return admin


def hook(api: MonitoringAdmin, **kwargs) -> MonitoringHook:
    return MonitoringHook(gcp_conn_id=CONN_ID, api_endpoint=api.base_url, **kwargs)


def gauge(metric: str, value: int, **labels: str) -> dict:
    return {
        "metric": {"type": f"custom.googleapis.com/batch_cleanup/{metric}", "labels": labels},
        "resource": {"type": "global", "labels": {"project_id": PROJECT}},
        "metricKind": "GAUGE",
        "valueType": "INT64",
        "points": [
            {"interval": {"endTime": "2026-03-08T06:47:12.250Z"}, "value": {"int64Value": str(value)}}
        ],
    }


def failed_write(caplog, hook: MonitoringHook) -> logging.LogRecord:
    """The run's metrics write, which must answer False: its one warning."""
    with caplog.at_level(logging.WARNING):
        assert write_run_metrics(hook, FIGURES) is False
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    [record] = [r for r in warned if r.name.startswith("batch_cleanup")]
    return record


def test_one_write_is_one_call_with_exactly_the_runs_series(api):
    assert write_run_metrics(hook(api), FIGURES) is True

    [request] = api.requests()
    assert api.attempts() == 1
    assert request["project"] == PROJECT
    run = {"dag_id": "stalled_batch_cleanup"}
    message = {**run, "kind": "alert", "severity": "WARNING"}
    assert request["body"] == {
        "timeSeries": [
            gauge("batches_checked", 12, **run),
            gauge("batches_auto_completed", 2, **run),
            gauge("cleanups_in_window", 3, **run),
            gauge("messages_sent", 1, **message),
            gauge("messages_failed", 0, **message),
            gauge("heartbeat", 1, **run),
        ]
    }


@pytest.mark.parametrize(
    ("status", "google_says"),
    [(503, "The service is currently unavailable."), (403, "Permission monitoring.timeSeries.create denied")],
)
def test_an_error_answer_is_one_warning_line_with_its_cause_and_false(api, caplog, status, google_says):
    api.faults([{"status": status, "count": 1}])

    record = failed_write(caplog, hook(api))
    line = record.getMessage()
    assert "\n" not in line and record.exc_info is None, "one line, no traceback"
    for part in (f"connection '{CONN_ID}'", f"project '{PROJECT}'", f" {status} POST ", google_says):
        assert part in line, line
    assert api.attempts() == 1, "no retry inside the run's metrics write"
    assert api.requests() == []


def test_the_raising_method_names_connection_project_and_cause(api):
    api.faults([{"status": 503, "count": 1}])

    with pytest.raises(MonitoringWriteError, match=rf"connection '{CONN_ID}', project '{PROJECT}'.*503"):
        hook(api).write_run(lambda project: run_series(FIGURES, project_id=project))


def test_a_retry_of_the_same_run_is_refused_not_counted_twice(api, caplog):
    assert write_run_metrics(hook(api), FIGURES) is True

    assert "Points must be written in order" in failed_write(caplog, hook(api)).getMessage()
    assert len(api.requests()) == 1
    # The next run, later, is written again.
    assert write_run_metrics(
        hook(api), RunFigures(dag_id="stalled_batch_cleanup", end_time=END + timedelta(minutes=15))
    )


def test_a_hung_api_is_given_up_after_the_timeout(api, caplog):
    api.faults([{"delay_seconds": 5, "count": 1}])

    started = time.monotonic()
    record = failed_write(caplog, hook(api, timeout=0.5))

    assert time.monotonic() - started < 3
    assert "Timeout" in record.getMessage()


def test_a_connection_without_a_project_is_a_warning_not_a_crash(api, gcp_connection, monkeypatch, caplog):
    gcp_connection(CONN_ID)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)

    line = failed_write(caplog, hook(api)).getMessage()

    assert f"connection '{CONN_ID}'" in line and "no project" in line
    assert api.attempts() == 0


# --- the stand-in refuses what Google refuses, so the hook's tests can trust its {} -----------------


def one_series(**changes) -> dict:
    return {**gauge("heartbeat", 1, dag_id="d"), **changes}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "timeSeries"),
        ({"timeSeries": []}, "timeSeries"),
        ({"timeSeries": [one_series(metric={"labels": {}})]}, "timeSeries[0].metric.type"),
        ({"timeSeries": [one_series(resource={})]}, "timeSeries[0].resource.type"),
        ({"timeSeries": [one_series(points=[])]}, "timeSeries[0].points"),
        ({"timeSeries": [one_series(points=[{"value": {"int64Value": "1"}}])]}, "interval.endTime"),
        ({"timeSeries": [one_series(), one_series()]}, "timeSeries[1] had an invalid value: Duplicate"),
    ],
    ids=["no-list", "empty", "no-metric-type", "no-resource-type", "no-point", "no-end-time", "duplicate"],
)
def test_the_stand_in_answers_a_bad_body_like_google(api, body, field):
    response = requests.post(f"{api.base_url}/v3/projects/{PROJECT}/timeSeries", json=body, timeout=10)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert field in error["message"]
    assert api.requests() == []
