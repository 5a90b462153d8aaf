"""Run metrics reach StatsD: a real UDP listener receives the lines of a DAG run."""

from __future__ import annotations

import socketserver
import threading
from datetime import UTC, datetime, timedelta

import pytest

from batch_cleanup.monitoring import METRIC_TYPES
from tests.scenario import DAG_ID, healthy, record_events, stalled

pytestmark = pytest.mark.e2e


@pytest.fixture
def statsd():
    """A UDP server that collects the lines of every datagram sent to it."""
    lines: list[str] = []

    class Collect(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            lines.extend(self.request[0].decode().splitlines())

    with socketserver.UDPServer(("127.0.0.1", 0), Collect) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield server.server_address[1], lines
        server.shutdown()


def test_a_run_emits_its_metrics_over_statsd(airflow, fresh, db, statsd):
    coordinator, sink = fresh
    port, lines = statsd
    record_events(db, datetime.now(UTC) - timedelta(minutes=5), "earlier-0", "earlier-1")
    coordinator.seed([stalled("metrics-1"), healthy("metrics-ok-1"), healthy("metrics-ok-2")])

    airflow.dags_test(
        DAG_ID,
        name="metrics",
        extra_env={
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            # Tags as InfluxDB-style suffixes, so the severity tag is visible on the wire.
            "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
        },
        expect="success",
    )
    ours = sorted(line for line in lines if ".batch_cleanup." in line)
    assert "airflow.batch_cleanup.batches_checked:3|g" in ours, ours
    assert "airflow.batch_cleanup.batches_auto_completed:1|g" in ours, ours
    assert "airflow.batch_cleanup.cleanups_in_window:3|g" in ours, ours
    assert any(
        line.startswith("airflow.batch_cleanup.messages_sent,")
        and "severity=WARNING" in line
        and line.endswith(":1|c")
        for line in ours
    ), ours
    # One name per figure: each StatsD name is a Cloud Monitoring metric's.
    names = {line.split("airflow.batch_cleanup.")[1].split(",")[0].split(":")[0] for line in ours}
    assert names <= {metric_type.rsplit("/", 1)[1] for metric_type in METRIC_TYPES}, names
    assert len(sink.messages()) == 1
