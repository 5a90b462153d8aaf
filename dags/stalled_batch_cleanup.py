"""
# Stalled batch cleanup

Every 15 minutes (New York time) this DAG asks the prediction coordinator to auto-complete
batches that are nearly done (≥ `min_completion_pct` %) but have made no progress for
`stall_threshold_minutes`, records each cleanup in Firestore (`batch_cleanup_events`) and counts
the cleanups of the last `window_minutes`. Cleanups piling up point to a systemic problem
(workers crashing, a dependency failing, resource limits), so Slack #daily-orchestration hears:

| cleanups in the window | message |
|---|---|
| ≥ `warning_threshold` (3) | **WARNING** alert, once |
| ≥ `critical_threshold` (5) | **CRITICAL**, at once, even inside the cooldown |
| unchanged | a reminder at most once per `cooldown_minutes` (60), naming new batches |
| back below the warning threshold | one **RESOLVED** with duration, total and batches |

Batches that stalled twice or more in 24 h are named as repeat offenders. A task that fails for
good posts its error to the same channel, so an outage of the cleanup never looks like a quiet hour.

`check_stalled` → `record_event` (skipped when nothing stalled) → `evaluate` → `choose_alert`
→ `send_alert` | `send_resolved` | `no_alert` → `record_state`.

## Connections
| id | type | what |
|---|---|---|
| `prediction_coordinator` | http | host = coordinator base URL; password = API key (sent as `X-API-Key`) |
| `google_cloud_default` | google_cloud_platform | project (and credentials) of the Firestore database |
| `slack_daily_orchestration` | slackwebhook | webhook of #daily-orchestration |

## Runbook
- **WARNING / CRITICAL alert**: check the worker logs and the coordinator's `/health/deep`; the
  alert lists the batches stalled in the window and the repeat offenders.
- **Silence** during planned work: set Variable `batch_cleanup_mute_until` to an ISO date-time
  (UTC unless it has an offset). Decisions are still logged and tracked; the first message after
  the silence names what was held back. Delete the Variable to end it early.
- **Check the Slack wiring**: trigger with `force_alert` on; a TEST message is posted and the
  incident state is not touched. `notify` off renders the message into the log and sends nothing.
- **`check_stalled` failed, "rejected the API key"**: the key in `prediction_coordinator` is
  wrong or was rotated; fix the connection and clear the task.
- **`check_stalled` failed, "outside the contract"**: the coordinator's answer changed; see
  `docs/coordinator-api.md` in the repo.
- **Firestore errors**: check the `google_cloud_default` credentials and project. Clearing any
  task is safe: an event is written at most once per run and stalled set, and a message is
  posted at most once per decision.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from batch_cleanup.budget import check_fits
from batch_cleanup.config import (
    CHECK_BUDGET,
    CHECK_TRY_SECONDS,
    COORDINATOR_TIMEOUT_SECONDS,
    DEADLINE_MINUTES,
    MAX_RETRY_DELAY,
    RETRIES,
    RETRY_BACKOFF,
    RETRY_DELAY,
    RUN_TIMEOUT,
    TASK_TIMEOUT,
    api_base_url,
)
from batch_cleanup.notify import deadline_missed, slack_on_failure, slack_on_run_failure

COORDINATOR_CONN_ID = "prediction_coordinator"
GCP_CONN_ID = "google_cloud_default"
SLACK_CONN_ID = "slack_daily_orchestration"
MUTE_VARIABLE = "batch_cleanup_mute_until"

RETENTION_DAYS = 30
OFFENDER_HOURS = 24
# A hung coordinator must fail check_stalled, with its cause posted, before the run times out.
check_fits(CHECK_BUDGET, RUN_TIMEOUT)

# A fixed name: in a DAG file `__name__` is a generated module name, unreadable in task logs.
log = logging.getLogger("batch_cleanup.dag")


@dag(
    dag_id="stalled_batch_cleanup",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="America/New_York"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=RUN_TIMEOUT,
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=DEADLINE_MINUTES),
        callback=AsyncCallback(
            deadline_missed, kwargs={"slack_conn_id": SLACK_CONN_ID, "minutes": DEADLINE_MINUTES}
        ),
    ),
    doc_md=__doc__,
    tags=["prediction-platform", "batch-cleanup", "alerting"],
    default_args={
        "owner": "prediction-platform",
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": RETRY_BACKOFF,
        "max_retry_delay": MAX_RETRY_DELAY,
        "execution_timeout": TASK_TIMEOUT,
        "on_failure_callback": slack_on_failure(SLACK_CONN_ID),
    },
    on_failure_callback=slack_on_run_failure(SLACK_CONN_ID),
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
        "warning_threshold": Param(
            3,
            type="integer",
            minimum=1,
            title="WARNING at (cleanups in the window)",
        ),
        "critical_threshold": Param(
            5,
            type="integer",
            minimum=1,
            title="CRITICAL at (cleanups in the window)",
            description="Must be greater than the WARNING threshold.",
        ),
        "window_minutes": Param(60, type="integer", minimum=1, maximum=1440, title="Window (minutes)"),
        "cooldown_minutes": Param(
            60,
            type="integer",
            minimum=1,
            title="Cooldown (minutes)",
            description="At most one reminder per cooldown while an incident is unchanged.",
        ),
        "notify": Param(
            True,
            type="boolean",
            title="Post to Slack",
            description="Off: the message is written to the task log only; nothing is sent or changed.",
        ),
        "force_alert": Param(
            False,
            type="boolean",
            title="Send a TEST message",
            description="Posts a marked TEST message to check the Slack wiring; no incident state changes.",
        ),
    },
)
def stalled_batch_cleanup():
    @task(execution_timeout=CHECK_BUDGET.try_timeout)
    def check_stalled(params: dict[str, Any] | None = None, dag_run=None) -> Any:
        """Ask the coordinator to auto-complete stalled batches; return a compact summary."""
        from airflow.sdk.exceptions import AirflowFailException

        from batch_cleanup import metrics
        from batch_cleanup.cleanup import summarize
        from batch_cleanup.hooks.coordinator import CoordinatorHook
        from batch_cleanup.policy import PolicyConfig

        try:  # Before the coordinator acts: params that cannot work stop the run here.
            PolicyConfig.from_params(params)
        except ValueError as err:
            raise AirflowFailException(f"Invalid params: {err}") from None

        response = CoordinatorHook(
            http_conn_id=COORDINATOR_CONN_ID,
            timeout=COORDINATOR_TIMEOUT_SECONDS,
            try_seconds=CHECK_TRY_SECONDS,
        ).check_stalled(
            stall_threshold_minutes=params["stall_threshold_minutes"],
            min_completion_pct=params["min_completion_pct"],
            idempotency_key=f"{dag_run.dag_id}/{dag_run.run_id}",
        )
        summary = summarize(response)
        metrics.gauge("batches_checked", summary["batches_checked"])
        metrics.gauge("stalled_batches", summary["stalled_count"])
        log.info(
            "Checked %d batches; %d stalled and auto-completed: %s%s",
            summary["batches_checked"],
            summary["stalled_count"],
            ", ".join(summary["stalled_batch_ids"][:20]) or "none",
            " …" if summary["stalled_count"] > 20 else "",
        )
        return summary

    @task
    def record_event(summary: dict[str, Any], params: dict[str, Any] | None = None, dag_run=None) -> Any:
        """Write the cleanup to Firestore, once per run and stalled set; skipped when nothing stalled."""
        from airflow.sdk.exceptions import AirflowSkipException

        if summary["stalled_count"] == 0:
            raise AirflowSkipException("No batch was stalled: nothing to record.")

        from batch_cleanup.events import build_event, event_id
        from batch_cleanup.hooks.firestore import FirestoreHook

        document = build_event(
            summary,
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            params=params,
            expire_at=dag_run.run_after + timedelta(days=RETENTION_DAYS),
            timestamp=dag_run.run_after,
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
    def evaluate(params: dict[str, Any] | None = None, dag_run=None) -> Any:
        """Count the cleanups in the window ending at the run's time and decide what Slack hears."""
        from airflow.sdk import Variable

        from batch_cleanup import metrics
        from batch_cleanup.events import window_start
        from batch_cleanup.hooks.firestore import FirestoreHook
        from batch_cleanup.policy import (
            PolicyConfig,
            State,
            decide,
            forced_test_decision,
            mute_until,
            repeat_offenders,
        )

        config = PolicyConfig.from_params(params)
        now = dag_run.run_after
        start = window_start(now, config.window_minutes)
        store = FirestoreHook(gcp_conn_id=GCP_CONN_ID)
        # Events carry their run's time, so a re-run of an old run counts the same events.
        count = store.count_in(start, now)
        metrics.gauge("events_in_window", count)
        stored, version = store.read_state(dag_run.dag_id)
        state = State.from_dict(stored)
        window_events: dict[str, list[str]] = {}
        offenders: tuple[tuple[str, int], ...] = ()
        if count >= config.warning_threshold or state.open:  # Healthy runs read no documents.
            recent = store.events_in(now - timedelta(hours=OFFENDER_HOURS), now)
            window_events = {event: ids for event, at, ids in recent if at > start}
            offenders = repeat_offenders(ids for _, _, ids in recent)
        try:
            silence = mute_until(Variable.get(MUTE_VARIABLE, default=None), variable=MUTE_VARIABLE)
        except ValueError as err:  # A mistyped silence must not swallow alerts: warn and stay loud.
            log.error("Ignoring the silence: %s", err)
            silence = None
        muted = silence is not None and silence > now
        if muted:
            log.info(
                "Muted until %s by Variable %r: decisions are logged, not posted.", silence, MUTE_VARIABLE
            )
        decision, new_state = decide(
            state,
            count=count,
            window_events=window_events,
            offenders=offenders,
            now=now,
            config=config,
            muted=muted,
        )
        log.info("%s", decision.reason)
        if params["force_alert"]:
            decision = forced_test_decision(count, window_events, offenders)
            log.info("force_alert: a TEST message goes out instead; the incident state is not touched.")
        return {
            "decision": decision.to_dict(),
            "before": state.to_dict(iso=True),
            "state": new_state.to_dict(iso=True),
            "version": version,
        }

    @task.branch
    def choose_alert(evaluation: dict[str, Any]) -> str:
        """Branch on the decision: `send_alert`, `send_resolved` or `no_alert`."""
        decision = evaluation["decision"]
        if decision["suppressed"] or decision["kind"] == "none":
            return "no_alert"
        return "send_resolved" if decision["kind"] == "resolved" else "send_alert"

    def _post(summary: dict[str, Any], evaluation: dict[str, Any], params: dict[str, Any], dag_run) -> str:
        from batch_cleanup.delivery import deliver
        from batch_cleanup.hooks.firestore import FirestoreHook
        from batch_cleanup.messages import alert, dag_run_url
        from batch_cleanup.policy import PolicyConfig

        config = PolicyConfig.from_params(params)
        decision = evaluation["decision"]
        message = alert(
            decision,
            window_minutes=config.window_minutes,
            # A RESOLVED message carries the peak severity; it resolved below the warning threshold.
            threshold=config.warning_threshold
            if decision["kind"] == "resolved"
            else config.threshold(decision["severity"]),
            completed_this_run=summary["stalled_count"],
            run_url=dag_run_url(api_base_url(), dag_run.dag_id, dag_run.run_id),
        )
        return deliver(
            message,
            decision=decision,
            evaluation=evaluation,
            notify=params["notify"],
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            store=FirestoreHook(gcp_conn_id=GCP_CONN_ID),
            slack_conn_id=SLACK_CONN_ID,
        )

    @task
    def send_alert(summary: dict[str, Any], evaluation: dict[str, Any], params=None, dag_run=None) -> str:
        """Post the WARNING, CRITICAL, escalation, reminder or TEST message to Slack."""
        return _post(summary, evaluation, params, dag_run)

    @task
    def send_resolved(summary: dict[str, Any], evaluation: dict[str, Any], params=None, dag_run=None) -> str:
        """Post the RESOLVED message to Slack."""
        return _post(summary, evaluation, params, dag_run)

    @task
    def no_alert(evaluation: dict[str, Any]) -> None:
        """Nothing to post this run; the reason is in the log."""
        log.info("No message: %s", evaluation["decision"]["reason"])

    @task(trigger_rule="none_failed_min_one_success")
    def record_state(
        evaluation: dict[str, Any], alerted: str | None, resolved: str | None, params=None, dag_run=None
    ) -> None:
        """Remember the incident for the next run, once Slack accepted what this run posted."""
        from batch_cleanup.hooks.firestore import FirestoreHook
        from batch_cleanup.policy import Decision, State, incident_record

        decision = Decision.from_dict(evaluation["decision"])
        outcome = alerted or resolved
        if params["force_alert"] or not params["notify"]:
            log.info("State untouched (force_alert or notify=false).")
            return
        if decision.notify and outcome != "sent":
            log.info("State unchanged: the %s was not posted by this run (%s).", decision.kind, outcome)
            return
        if evaluation["state"] == evaluation["before"]:
            log.info("State unchanged.")
            return
        before, after = State.from_dict(evaluation["before"]), State.from_dict(evaluation["state"])
        conflict = FirestoreHook(gcp_conn_id=GCP_CONN_ID).save_state(
            dag_run.dag_id,
            after.to_dict(),
            run_id=dag_run.run_id,
            version=evaluation["version"],
            incident=incident_record(dag_run.dag_id, decision, before, after, dag_run.run_after),
        )
        if conflict:
            log.info("State left as another run wrote it: %s.", conflict)
        else:
            log.info("State saved: %s.", "open, " + after.severity if after.open else "no open incident")

    summary = check_stalled()
    evaluation = evaluate()
    record_event(summary) >> evaluation
    alerted = send_alert(summary, evaluation)
    resolved = send_resolved(summary, evaluation)
    quiet = no_alert(evaluation)
    choose_alert(evaluation) >> [alerted, resolved, quiet]
    record_state(evaluation, alerted, resolved) << quiet


stalled_batch_cleanup()
