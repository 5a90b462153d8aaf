"""The run's metrics in Cloud Monitoring, through whole DAG runs against the Monitoring API stand-in:
the exact series a run writes in one call, a healthy run that still writes nothing to Firestore, a
failed Slack post counted, and a metrics write that fails without failing the run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dev.airflow_env import LOCAL_PROJECT
from dev.monitoring_api import MonitoringAdmin
from tests.scenario import DAG_ID, healthy, record_events, stalled, texts

pytestmark = pytest.mark.e2e

METRIC = "custom.googleapis.com/batch_cleanup/"


@pytest.fixture
def monitoring(monitoring_api) -> MonitoringAdmin:
    admin = MonitoringAdmin(monitoring_api.url)
    admin.reset()
    return admin


def to(monitoring: MonitoringAdmin) -> dict[str, str]:
    return {"AIRFLOW__BATCH_CLEANUP__MONITORING_API_ENDPOINT": monitoring.base_url}


def written(monitoring: MonitoringAdmin) -> dict[str, tuple[dict[str, str], int]]:
    """The one write's series: metric name → (labels, value); also checks the resource."""
    [request] = monitoring.requests()
    assert request["project"] == LOCAL_PROJECT
    series = {}
    for one in request["body"]["timeSeries"]:
        assert one["resource"] == {"type": "global", "labels": {"project_id": LOCAL_PROJECT}}
        [point] = one["points"]
        series[one["metric"]["type"].removeprefix(METRIC)] = (
            one["metric"]["labels"],
            int(point["value"]["int64Value"]),
        )
    return series


def test_a_healthy_run_writes_its_figures_and_heartbeat_and_nothing_to_firestore(
    airflow, fresh, events, monitoring
):
    coordinator, sink = fresh
    coordinator.seed([healthy("busy-1"), healthy("busy-2")])

    airflow.dags_test(DAG_ID, name="metrics-healthy", extra_env=to(monitoring), expect="success")
    assert events() == [] and sink.messages() == []
    run_labels = {"dag_id": DAG_ID}
    quiet = {**run_labels, "kind": "none", "severity": "NONE"}
    assert written(monitoring) == {
        "batches_checked": (run_labels, 2),
        "batches_auto_completed": (run_labels, 0),
        "cleanups_in_window": (run_labels, 0),
        "messages_sent": (quiet, 0),
        "messages_failed": (quiet, 0),
        "heartbeat": (run_labels, 1),
    }


def test_an_alerting_run_counts_its_message(airflow, fresh, db, monitoring):
    coordinator, _ = fresh
    coordinator.seed([stalled("m-now"), healthy("m-busy")])
    record_events(db, datetime.now(UTC) - timedelta(minutes=10), "m0", "m1")

    airflow.dags_test(DAG_ID, name="metrics-alert", extra_env=to(monitoring), expect="success")
    series = written(monitoring)
    warning = {"dag_id": DAG_ID, "kind": "alert", "severity": "WARNING"}
    assert series["batches_checked"][1] == 2 and series["batches_auto_completed"][1] == 1
    assert series["cleanups_in_window"][1] == 3
    assert series["messages_sent"] == (warning, 1) and series["messages_failed"] == (warning, 0)


def test_a_message_slack_refused_is_counted_as_failed_and_the_run_still_reports(
    airflow, fresh, db, monitoring
):
    coordinator, sink = fresh
    coordinator.seed([stalled("m-refused")])
    record_events(db, datetime.now(UTC) - timedelta(minutes=10), "r0", "r1")
    sink.faults([{"status": 404, "body": "no_service", "count": 10}])

    run = airflow.dags_test(DAG_ID, name="metrics-slack-refused", extra_env=to(monitoring), expect="failed")
    assert run.task_states["report_metrics"] == "success", "the metrics task runs however the run went"
    series = written(monitoring)
    warning = {"dag_id": DAG_ID, "kind": "alert", "severity": "WARNING"}
    assert series["messages_sent"] == (warning, 0) and series["messages_failed"] == (warning, 1)
    assert series["heartbeat"][1] == 1


def test_a_failed_metrics_write_never_fails_the_cleanup(airflow, fresh, events, monitoring):
    coordinator, sink = fresh
    coordinator.seed([stalled("m-recorded")])
    monitoring.faults([{"status": 503, "count": 5}])

    run = airflow.dags_test(DAG_ID, name="metrics-refused", extra_env=to(monitoring), expect="success")
    assert run.task_states["report_metrics"] == "success"
    assert [event["batch_ids"] for event in events()] == [["m-recorded"]]
    assert monitoring.attempts() == 1 and monitoring.requests() == []
    lines = [
        line for line in run.output.splitlines() if "Writing run metrics to Cloud Monitoring failed" in line
    ]
    assert len(lines) == 1 and " 503 " in lines[0], lines
    assert texts(sink) == []
