"""Small builders shared by the end-to-end scenarios."""

from __future__ import annotations

from dev.slack_sink import SlackSinkAdmin

DAG_ID = "stalled_batch_cleanup"


def stalled(batch_id: str, minutes: float = 30, pct: float = 95.0) -> dict:
    """A batch the coordinator will auto-complete under the default thresholds."""
    return {"batch_id": batch_id, "completion_pct": pct, "stalled_minutes": minutes}


def healthy(batch_id: str) -> dict:
    return {"batch_id": batch_id, "completion_pct": 40.0, "stalled_minutes": 1}


def texts(sink: SlackSinkAdmin) -> list[str]:
    return [message["payload"].get("text", "") for message in sink.messages()]


def explains(failure: str, error: str) -> bool:
    """A task-failure message carries the task's `error`. On Airflow 3.1 and 3.2, `airflow dags test`
    hands the failure callback no exception (their in-process runner leaves `context["exception"]`
    unset; 3.3 sets it), so there the message points at the task log instead. Deployed, their task
    runner sets it."""
    from batch_cleanup.compat import airflow_minor

    if airflow_minor() < (3, 3):
        return "unknown error (see the task log)" in failure
    return error in failure
