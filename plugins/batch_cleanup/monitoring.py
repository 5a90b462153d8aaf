"""A finished run's figures as Cloud Monitoring custom metrics, described as plain data.

One GAUGE INT64 point per metric at the run's end time, on the `global` resource. The
descriptions use the API's field names, so `hooks/monitoring.py` turns each into a `TimeSeries`
as it is. No Google imports, no I/O, no clock: the end time is an argument.

Label sets are small and fixed (every value comes from a closed set), so each metric has a
handful of series whatever the runs do. The alert policies and the dashboard in
`deploy/monitoring/` filter on these names; a test checks they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from batch_cleanup import metrics
from batch_cleanup.policy import CRITICAL, WARNING, Kind
from batch_cleanup.text import as_utc

PREFIX = "custom.googleapis.com/batch_cleanup/"
BATCHES_CHECKED = PREFIX + metrics.BATCHES_CHECKED
BATCHES_AUTO_COMPLETED = PREFIX + metrics.BATCHES_AUTO_COMPLETED
CLEANUPS_IN_WINDOW = PREFIX + metrics.CLEANUPS_IN_WINDOW
MESSAGES_SENT = PREFIX + metrics.MESSAGES_SENT
MESSAGES_FAILED = PREFIX + metrics.MESSAGES_FAILED
HEARTBEAT = PREFIX + metrics.HEARTBEAT
METRIC_TYPES = (
    BATCHES_CHECKED,
    BATCHES_AUTO_COMPLETED,
    CLEANUPS_IN_WINDOW,
    MESSAGES_SENT,
    MESSAGES_FAILED,
    HEARTBEAT,
)

# `global` with `project_id`: the cleanup is one job per project, and `dag_id` says which; the
# `generic_task` resource would need a location, namespace, job and task id that add nothing here.
RESOURCE_TYPE = "global"

KINDS = tuple(kind.value for kind in Kind)
NO_SEVERITY = metrics.NO_SEVERITY
SEVERITIES = (WARNING, CRITICAL, NO_SEVERITY)


@dataclass(frozen=True)
class RunFigures:
    """What one run did. A figure the run never learnt (its task failed) is None, and not written.

    `kind` and `severity` are the run's decision (`Decision.kind`, `Decision.severity`): they
    label `messages_sent` and `messages_failed`, which count the run's Slack messages accepted and
    given up on (0 or 1 each for a run as the DAG stands).
    """

    dag_id: str
    end_time: datetime
    batches_checked: int | None = None
    batches_auto_completed: int | None = None
    cleanups_in_window: int | None = None
    messages_sent: int = 0
    messages_failed: int = 0
    kind: str = Kind.NONE.value
    severity: str | None = None


def run_series(figures: RunFigures, *, project_id: str) -> list[dict[str, Any]]:
    """One time series (one point each) per known figure, plus the heartbeat (1), for one write."""
    end_time = as_utc(figures.end_time, "end_time")
    if figures.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {figures.kind!r}")
    severity = figures.severity or NO_SEVERITY
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES} or None, got {figures.severity!r}")
    run = {"dag_id": figures.dag_id}
    message = {**run, "kind": figures.kind, "severity": severity}
    values = [
        (BATCHES_CHECKED, run, figures.batches_checked),
        (BATCHES_AUTO_COMPLETED, run, figures.batches_auto_completed),
        (CLEANUPS_IN_WINDOW, run, figures.cleanups_in_window),
        (MESSAGES_SENT, message, figures.messages_sent),
        (MESSAGES_FAILED, message, figures.messages_failed),
        (HEARTBEAT, run, 1),
    ]
    return [
        _series(metric_type, labels, value, end_time, project_id)
        for metric_type, labels, value in values
        if value is not None
    ]


def _series(
    metric_type: str, labels: dict[str, str], value: int, end_time: datetime, project_id: str
) -> dict[str, Any]:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{metric_type} must be an integer ≥ 0, got {value!r}")
    return {
        "metric": {"type": metric_type, "labels": dict(labels)},
        "resource": {"type": RESOURCE_TYPE, "labels": {"project_id": project_id}},
        "metric_kind": "GAUGE",
        "value_type": "INT64",
        "points": [{"interval": {"end_time": end_time}, "value": {"int64_value": value}}],
    }
