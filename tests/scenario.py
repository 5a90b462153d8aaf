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
