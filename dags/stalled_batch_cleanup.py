"""
# Stalled batch cleanup

Every 15 minutes (New York time) this DAG asks the prediction coordinator to auto-complete
batches that are nearly done (≥ `min_completion_pct` %) but have made no progress for
`stall_threshold_minutes`, records each cleanup in Firestore (`batch_cleanup_events`), counts
the cleanups of the last 60 minutes and alerts Slack when there are 3 or more: cleanups piling
up point to a systemic problem, not a one-off.

`check_stalled` → `record_event` (skipped when nothing stalled) → `evaluate` → `choose_alert`
→ `send_alert` or `no_alert`. A task that fails for good posts its error to the same channel,
so an outage of the cleanup itself never looks like a quiet hour.

## Connections
| id | type | what |
|---|---|---|
| `prediction_coordinator` | http | host = coordinator base URL; password = API key (sent as `X-API-Key`) |
| `google_cloud_default` | google_cloud_platform | project (and credentials) of the Firestore database |
| `slack_daily_orchestration` | slackwebhook | webhook of #daily-orchestration |

## Runbook
- **Alert "systemic batch stall issue"**: check the worker logs and the coordinator's
  `/health/deep`; the alert lists the batches stalled in the window.
- **`check_stalled` failed, "rejected the API key"**: the key in `prediction_coordinator` is
  wrong or was rotated; fix the connection and clear the task.
- **`check_stalled` failed, "outside the contract"**: the coordinator's answer changed; see
  `docs/coordinator-api.md` in the repo.
- **Firestore errors**: check the `google_cloud_default` credentials and project. Clearing
  `record_event` is safe: an event is written at most once per run and stalled set.
- **Manual run**: *Trigger DAG* with parameters; the form validates them before the run starts.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, conf, dag, task

from batch_cleanup.notify import slack_on_failure

COORDINATOR_CONN_ID = "prediction_coordinator"
GCP_CONN_ID = "google_cloud_default"
SLACK_CONN_ID = "slack_daily_orchestration"

ALERT_THRESHOLD = 3
WINDOW_MINUTES = 60
RETENTION_DAYS = 30
# Tests shorten the delay through Airflow's configuration: AIRFLOW__BATCH_CLEANUP__RETRY_DELAY_SECONDS.
RETRY_DELAY = timedelta(seconds=conf.getint("batch_cleanup", "retry_delay_seconds", fallback=30))

log = logging.getLogger(__name__)


@dag(
    dag_id="stalled_batch_cleanup",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="America/New_York"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=14),
    doc_md=__doc__,
    tags=["prediction-platform", "batch-cleanup", "alerting"],
    default_args={
        "owner": "prediction-platform",
        "retries": 3,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=4),
        "execution_timeout": timedelta(minutes=6),
        "on_failure_callback": slack_on_failure(SLACK_CONN_ID),
    },
    params={
        "stall_threshold_minutes": Param(
            10,
            type="integer",
            minimum=1,
            maximum=1440,
            title="Stall threshold (minutes)",
            description="A batch counts as stalled after this many minutes without progress.",
        ),
        "min_completion_pct": Param(
            90,
            type="number",
            minimum=0,
            maximum=100,
            title="Minimum completion (%)",
            description="Only batches at least this complete are auto-completed.",
        ),
    },
)
def stalled_batch_cleanup():
    @task
    def check_stalled(params: dict[str, Any] | None = None, dag_run=None) -> Any:
        """Ask the coordinator to auto-complete stalled batches; return a compact summary."""
        from batch_cleanup.cleanup import summarize
        from batch_cleanup.hooks.coordinator import CoordinatorHook

        response = CoordinatorHook(http_conn_id=COORDINATOR_CONN_ID).check_stalled(
            stall_threshold_minutes=params["stall_threshold_minutes"],
            min_completion_pct=params["min_completion_pct"],
            idempotency_key=f"{dag_run.dag_id}/{dag_run.run_id}",
        )
        summary = summarize(response)
        log.info(
            "Checked %d batches; %d stalled and auto-completed: %s%s",
            summary["batches_checked"],
            summary["stalled_count"],
            ", ".join(summary["stalled_batch_ids"][:20]) or "none",
            " (list truncated)" if summary["stalled_count"] > 20 else "",
        )
        return summary

    @task
    def record_event(summary: dict[str, Any], params: dict[str, Any] | None = None, dag_run=None) -> Any:
        """Write the cleanup to Firestore, once per run and stalled set; skipped when nothing stalled."""
        from airflow.sdk.exceptions import AirflowSkipException

        if summary["stalled_count"] == 0:
            raise AirflowSkipException("No batch was stalled: nothing to record.")

        from google.cloud import firestore

        from batch_cleanup.events import build_event, event_id
        from batch_cleanup.hooks.firestore import FirestoreHook

        document = build_event(
            summary,
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            params=params,
            expire_at=dag_run.run_after + timedelta(days=RETENTION_DAYS),
            timestamp=firestore.SERVER_TIMESTAMP,
        )
        document_id = event_id(dag_run.dag_id, dag_run.run_id, summary["fingerprint"])
        created = FirestoreHook(gcp_conn_id=GCP_CONN_ID).create_event(document_id, document)
        log.info(
            "%s event %s: %d stalled batches%s",
            "Recorded" if created else "Already recorded (kept as first written)",
            document_id,
            summary["stalled_count"],
            " (stored lists truncated)" if document["truncated"] else "",
        )
        return document_id

    @task(trigger_rule="none_failed")
    def evaluate(dag_run=None) -> Any:
        """Count the cleanups in the window ending at the run's time (the run's own included)."""
        from batch_cleanup.events import window_start
        from batch_cleanup.hooks.firestore import FirestoreHook

        start = window_start(dag_run.run_after, WINDOW_MINUTES)
        count = FirestoreHook(gcp_conn_id=GCP_CONN_ID).count_since(start)
        alert = count >= ALERT_THRESHOLD
        log.info(
            "%d cleanups in the last %d minutes %s %d → %s",
            count,
            WINDOW_MINUTES,
            "≥" if alert else "<",
            ALERT_THRESHOLD,
            "WARNING" if alert else "no alert",
        )
        return {"count": count, "window_start": start.isoformat(), "alert": alert}

    @task.branch
    def choose_alert(evaluation: dict[str, Any]) -> str:
        """Branch: `send_alert` when the threshold is reached, else `no_alert`."""
        return "send_alert" if evaluation["alert"] else "no_alert"

    @task
    def send_alert(summary: dict[str, Any], evaluation: dict[str, Any], dag_run=None) -> None:
        """Post the systemic-stall alert to Slack."""
        from batch_cleanup.hooks import slack
        from batch_cleanup.hooks.firestore import FirestoreHook
        from batch_cleanup.messages import dag_run_url, systemic_alert

        start = datetime.fromisoformat(evaluation["window_start"])
        message = systemic_alert(
            count=evaluation["count"],
            threshold=ALERT_THRESHOLD,
            window_minutes=WINDOW_MINUTES,
            completed_this_run=summary["stalled_count"],
            batch_ids_in_window=FirestoreHook(gcp_conn_id=GCP_CONN_ID).batch_ids_since(start),
            run_url=dag_run_url(conf.get("api", "base_url", fallback=""), dag_run.dag_id, dag_run.run_id),
        )
        slack.post(SLACK_CONN_ID, message)
        log.info("Posted the alert to Slack connection %r", SLACK_CONN_ID)

    @task
    def no_alert(evaluation: dict[str, Any]) -> None:
        """Below the threshold: nothing to post."""
        log.info("%d cleanups in the window, below %d: no alert.", evaluation["count"], ALERT_THRESHOLD)

    summary = check_stalled()
    evaluation = evaluate()
    record_event(summary) >> evaluation
    choose_alert(evaluation) >> [send_alert(summary, evaluation), no_alert(evaluation)]


stalled_batch_cleanup()
