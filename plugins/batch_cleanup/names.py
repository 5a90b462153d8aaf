"""The names the DAG, its tasks, the UI and the tests share: defined here once, imported everywhere."""

from __future__ import annotations

DAG_ID = "stalled_batch_cleanup"

COORDINATOR_CONN_ID = "prediction_coordinator"
GCP_CONN_ID = "google_cloud_default"
SLACK_CONN_ID = "slack_daily_orchestration"
MUTE_VARIABLE = "batch_cleanup_mute_until"
# The Firestore collections of cleanup events and of run records (docs/firestore-schema.md).
EVENT_COLLECTION = "batch_cleanup_events"
RUN_COLLECTION = "batch_cleanup_runs"
# A run record's `kind` is its decision's (`policy.Kind`). Those of runs that evaluated the incident,
# every kind but "test" (force_alert and notify=false runs: they leave it alone), make each older
# run stale: it posts nothing and saves nothing (docs/firestore-schema.md).
EVALUATED_KINDS = ("none", "alert", "escalation", "worsening", "reminder", "resolved")

# Task ids: each is also the name of its @task function in the DAG file.
CHECK_STALLED = "check_stalled"
RECORD_EVENT = "record_event"
EVALUATE = "evaluate"
CHOOSE_ALERT = "choose_alert"
SEND_ALERT = "send_alert"
SEND_RESOLVED = "send_resolved"
NO_ALERT = "no_alert"
RECORD_STATE = "record_state"
REPORT_METRICS = "report_metrics"

# The DAG runs every RUN_EVERY_MINUTES in New York time; New York is a whole number of hours off
# UTC, so its runs fall on the same quarter-hours in UTC (the backtest replays them).
RUN_EVERY_MINUTES = 15
SCHEDULE = f"*/{RUN_EVERY_MINUTES} * * * *"

# Events expire (Firestore TTL on `expire_at`) this long after their run; run records, which the
# alert-quality figures and the weekly digest look back over, after RUN_RETENTION_DAYS.
RETENTION_DAYS = 30
RUN_RETENTION_DAYS = 90
# Batches stalled twice or more within this many hours are named as repeat offenders.
OFFENDER_HOURS = 24
