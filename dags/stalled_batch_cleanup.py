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
| ≥ `critical_threshold` (4: every run of the hour) | **CRITICAL**, at once, even inside the cooldown |
| worse than any message told | **Getting worse**, at once, even inside the cooldown |
| unchanged | a reminder at most once per `cooldown_minutes` (60), naming new batches |
| back below the warning threshold | one **RESOLVED** with duration, total and batches |

With `alert_rule` `burn_rate`, the share of checked batches auto-completed, against
`rate_objective_pct` (1 %), decides the severity instead of the count; the rest is the same
(README: "Choosing an alert rule").

Batches that stalled twice or more in 24 h are named as repeat offenders. A task that fails for
good posts its error to the same channel, so an outage of the cleanup never looks like a quiet hour.

`check_stalled` → `record_event` (skipped when nothing stalled) → `evaluate` → `choose_alert`
→ `send_alert` | `send_resolved` | `no_alert` → `record_state`; then, however the run went,
`report_metrics` and `read_labels` (bot-token mode: the ✅ / 🔕 reactions on the incidents' first
messages label them real or noise).

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
- **Label an alert** real or noise: react ✅ or 🔕 on the incident's first Slack message
  (bot-token mode), or use *Browse → Batch cleanup*; a label from the page wins. `read_labels`
  failed: its log names what Slack said (`missing_scope`: the token needs `reactions:read`); it
  never fails the run and never pages.
- **Check the Slack wiring**: trigger with `force_alert` on; a TEST message is posted and the
  incident state is not touched. `notify` off renders the message into the log and sends nothing.
- **`check_stalled` failed, "rejected the API key"**: the key in `prediction_coordinator` is
  wrong or was rotated; fix the connection and clear the task.
- **`check_stalled` failed, "outside the contract"**: the coordinator's answer changed; see
  `docs/coordinator-api.md` in the repo.
- **`check_stalled` failed, "redirected"**: the coordinator answered a redirect, which is never
  followed (the API key stays with the connection's host); set the connection's host to where the
  coordinator answers now, after checking that the `Location` named is really yours.
- **"Firestore (connection …) is unreachable"** and other Firestore errors: check the
  `google_cloud_default` credentials and project. Clearing any task is safe: an event is written
  at most once per run and stalled set, a message is posted at most once per decision, and a run
  older than the last evaluation posts nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pendulum
from airflow.sdk import dag, task, teardown

from batch_cleanup.budget import check_fits
from batch_cleanup.config import CHECK_BUDGET, DEADLINE_MINUTES, RUN_TIMEOUT
from batch_cleanup.dag_args import default_args
from batch_cleanup.names import DAG_ID, SCHEDULE, SLACK_CONN_ID
from batch_cleanup.notify import hung_run_deadline, slack_on_run_failure
from batch_cleanup.params import dag_params

# A hung coordinator must fail check_stalled, with its cause posted, before the run times out.
check_fits(CHECK_BUDGET, RUN_TIMEOUT)


@dag(
    dag_id=DAG_ID,
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="America/New_York"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=RUN_TIMEOUT,
    # A run still unfinished this long after it was queued is hung: Slack hears (a Deadline Alert;
    # none on Airflow 3.1, where dagrun_timeout's failure callback tells Slack instead).
    deadline=hung_run_deadline(SLACK_CONN_ID, DEADLINE_MINUTES),
    doc_md=__doc__,
    tags=["prediction-platform", "batch-cleanup", "alerting"],
    default_args=default_args(SLACK_CONN_ID),
    on_failure_callback=slack_on_run_failure(SLACK_CONN_ID),
    params=dag_params(),
)
def stalled_batch_cleanup():
    # Task bodies import at run time: parsing the DAG loads no HTTP, Google or Slack client. Tasks
    # returning a dict are annotated `Any`: a dict annotation makes TaskFlow push each key again.
    @task(execution_timeout=CHECK_BUDGET.try_timeout)
    def check_stalled(params: dict[str, Any] | None = None, dag_run=None) -> Any:
        """Ask the coordinator to auto-complete stalled batches; return a compact summary."""
        from batch_cleanup import hooks, steps

        return steps.check_stalled(
            hooks.coordinator_hook(), params, dag_id=dag_run.dag_id, run_id=dag_run.run_id
        )

    @task
    def record_event(summary: dict[str, Any], params: dict[str, Any] | None = None, dag_run=None) -> str:
        """Write the cleanup to Firestore, once per run and stalled set; skipped when nothing stalled."""
        from batch_cleanup import hooks, steps

        return steps.record_event(
            hooks.firestore_hook(),
            summary,
            params,
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            run_after=dag_run.run_after,
        )

    @task(trigger_rule="none_failed")
    def evaluate(summary: dict[str, Any], params: dict[str, Any] | None = None, dag_run=None) -> Any:
        """Count the cleanups in the window ending at the run's time and decide what Slack hears."""
        from airflow.sdk import Variable

        from batch_cleanup import hooks, steps
        from batch_cleanup.names import MUTE_VARIABLE

        return steps.evaluate(
            hooks.firestore_hook(),
            params,
            dag_id=dag_run.dag_id,
            run_after=dag_run.run_after,
            mute_value=Variable.get(MUTE_VARIABLE, default=None),
            recorded=summary["stalled_count"] > 0,
            summary=summary,
        )

    @task.branch
    def choose_alert(evaluation: dict[str, Any]) -> str:
        """Branch on the decision: `send_alert`, `send_resolved` or `no_alert`."""
        from batch_cleanup import steps

        return steps.choose_alert(evaluation)

    # send_alert and send_resolved run the same step. They stay two tasks because the Grid view
    # then shows at a glance which runs opened or escalated an incident and which one ended it.
    @task
    def send_alert(summary: dict[str, Any], evaluation: dict[str, Any], params=None, dag_run=None) -> str:
        """Post the WARNING, CRITICAL, escalation, reminder or TEST message to Slack."""
        from batch_cleanup import hooks, steps

        store = hooks.firestore_hook()
        return steps.send(
            store, summary, evaluation, params, project=store.project_id, **hooks.delivery_args(dag_run)
        )

    @task
    def send_resolved(summary: dict[str, Any], evaluation: dict[str, Any], params=None, dag_run=None) -> str:
        """Post the RESOLVED message to Slack."""
        from batch_cleanup import hooks, steps

        store = hooks.firestore_hook()
        return steps.send(
            store, summary, evaluation, params, project=store.project_id, **hooks.delivery_args(dag_run)
        )

    @task
    def no_alert(evaluation: dict[str, Any]) -> str:
        """Nothing to post this run; the reason is in the log."""
        from batch_cleanup.policy import Evaluation

        return f"No message: {Evaluation.from_xcom(evaluation).decision.reason}"

    @task(trigger_rule="none_failed_min_one_success")
    def record_state(
        summary: dict[str, Any],
        evaluation: dict[str, Any],
        alerted: str | None,
        resolved: str | None,
        params=None,
        dag_run=None,
    ) -> str:
        """Remember the incident once Slack accepted what this run posted; write the run's record."""
        from batch_cleanup import hooks, steps

        return steps.record_state(
            hooks.firestore_hook(),
            summary,
            evaluation,
            alerted or resolved,
            params,
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            run_after=dag_run.run_after,
        )

    # A teardown: it runs however the run went (a heartbeat from every finished run) and its own
    # outcome never decides the run's state. A task that failed or was skipped hands it None.
    @teardown
    def report_metrics(
        summary: Any,
        evaluation: Any,
        alerted: str | None,
        resolved: str | None,
        recorded: str | None,
        params=None,
        dag_run=None,
    ) -> bool:
        """Write the run's figures and heartbeat to Cloud Monitoring, and the record of a run that
        ended before record_state; never fails the run."""
        from batch_cleanup import hooks, steps

        outcome, end_time = alerted or resolved, datetime.now(UTC)
        if recorded is None:  # record_state failed or never ran: the run still counts in the rate
            steps.record_unfinished_run(
                hooks.firestore_hook(),
                summary,
                evaluation,
                params,
                dag_id=dag_run.dag_id,
                run_id=dag_run.run_id,
                run_after=dag_run.run_after,
            )
        figures = steps.run_figures(
            summary, evaluation, outcome, params, dag_id=dag_run.dag_id, end_time=end_time
        )
        return steps.write_run_metrics(hooks.monitoring_hook(), figures)

    # A teardown too, after the state is saved. It must never page: no failure callback, and no
    # retry (the next run, 15 minutes later, reads again).
    @teardown
    @task(retries=0, on_failure_callback=None)
    def read_labels(dag_run=None) -> str:
        """Read the responders' labels: reactions on the incidents' first Slack messages (bot-token mode)."""
        from batch_cleanup import hooks, steps
        from batch_cleanup.hooks.slack import OnCallChannel

        # The time the reactions are read, not the run's: what a cleared old run sees is today's Slack.
        now = datetime.now(UTC)
        return steps.read_labels(
            hooks.firestore_hook(), OnCallChannel(SLACK_CONN_ID), dag_id=dag_run.dag_id, now=now
        )

    summary = check_stalled()
    evaluation = evaluate(summary)
    record_event(summary) >> evaluation
    alerted = send_alert(summary, evaluation)
    resolved = send_resolved(summary, evaluation)
    quiet = no_alert(evaluation)
    choose_alert(evaluation) >> [alerted, resolved, quiet]
    recorded = record_state(summary, evaluation, alerted, resolved)
    quiet >> recorded >> report_metrics(summary, evaluation, alerted, resolved, recorded)
    recorded >> read_labels()


stalled_batch_cleanup()
