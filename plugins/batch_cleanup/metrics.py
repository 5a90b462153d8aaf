"""Run metrics through Airflow's own stats interface: they reach StatsD or OpenTelemetry when the
deployment turns `[metrics] statsd_on` or `otel_on` on, and cost nothing otherwise. Names are in
docs/metrics.md."""

from __future__ import annotations

PREFIX = "batch_cleanup"

# Each figure's one name, here and in Cloud Monitoring (`monitoring.py`), and the label value for
# a decision without a severity.
BATCHES_CHECKED = "batches_checked"
BATCHES_AUTO_COMPLETED = "batches_auto_completed"
CLEANUPS_IN_WINDOW = "cleanups_in_window"
MESSAGES_SENT = "messages_sent"
MESSAGES_FAILED = "messages_failed"
HEARTBEAT = "heartbeat"
NO_SEVERITY = "NONE"


def _stats():
    try:  # Airflow 3.2 and later
        from airflow.sdk.observability.stats import Stats
    except ImportError:  # Airflow 3.1
        from airflow.stats import Stats
    return Stats


def gauge(name: str, value: float, **tags: str) -> None:
    _stats().gauge(f"{PREFIX}.{name}", value, tags=tags or None)


def count(name: str, **tags: str) -> None:
    _stats().incr(f"{PREFIX}.{name}", tags=tags or None)
