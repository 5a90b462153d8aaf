"""
# Weekly digest of the stalled-batch cleanup

Mondays at 09:00 (New York time) this DAG posts one message to Slack #daily-orchestration, on
the connection the alerts use: the seven days before the run against the seven before them.

- **cleanups**, batches auto-completed, and the auto-completion rate against the 1 % objective
  (from the run records, `batch_cleanup_runs`);
- the **incidents** opened in the week, each with its label (real, noise, disputed or none),
  what the labels say (precision) and the time to resolve;
- the **repeat offenders** (batches auto-completed most often) and the busiest hours;
- a link to the cleanup history page (with an absolute `[api] base_url`).

A quiet week gets its message too ("No cleanups this week"): the digest is also the cleanup's
weekly sign of life. A week with no run record at all says so.

`summarize_week` (three bounded Firestore reads) → `post_digest` (once per run).

The DAG is created **paused**: unpause it once the cleanup runs (on Composer, a step of the
deployment), so that no deployment, local or test Airflow posts a digest nobody asked for.

## Connections
| id | type | what |
|---|---|---|
| `google_cloud_default` | google_cloud_platform | project (and credentials) of the Firestore database |
| `slack_daily_orchestration` | slackwebhook, or slack (bot token) | the alerts' channel |

## Runbook
- **Check the digest's wiring**: trigger with `test_digest` on; a digest marked TEST is posted,
  covering the seven days before the run. `notify` off writes the digest into the task log and
  sends nothing.
- **"No run of the cleanup recorded"**: `stalled_batch_cleanup` is paused, failing, or writes no
  run record; check its runs.
- **"Firestore (connection …) is unreachable"**: check the `google_cloud_default` credentials and
  project, then clear the failed task.
- **Clearing `post_digest` is safe**: a run posts its digest at most once (its post is recorded in
  Airflow and in Firestore, and in bot-token mode found in Slack). To post it again, trigger a new run.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

from batch_cleanup.budget import check_fits
from batch_cleanup.config import DIGEST_RUN_TIMEOUT, TASK_BUDGET
from batch_cleanup.dag_args import default_args
from batch_cleanup.names import DIGEST_DAG_ID, DIGEST_SCHEDULE, SLACK_CONN_ID
from batch_cleanup.notify import slack_on_run_failure
from batch_cleanup.params import digest_params

# Two tasks, one after the other: each must fit half the run, tries and back-off included.
check_fits(TASK_BUDGET, DIGEST_RUN_TIMEOUT / 2, "each digest task")


@dag(
    dag_id=DIGEST_DAG_ID,
    schedule=DIGEST_SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="America/New_York"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=DIGEST_RUN_TIMEOUT,
    # Unpaused, the scheduler would run the last Monday's digest at once: a post nobody asked for.
    is_paused_upon_creation=True,
    doc_md=__doc__,
    tags=["prediction-platform", "batch-cleanup", "digest"],
    default_args=default_args(SLACK_CONN_ID),
    on_failure_callback=slack_on_run_failure(SLACK_CONN_ID),
    params=digest_params(),
)
def batch_cleanup_weekly_digest():
    # Task bodies import at run time: parsing the DAG loads no Google or Slack client.
    @task
    def summarize_week(dag_run=None) -> Any:
        """Read the week's run records, events and incidents, and the week before's; return the figures."""
        from batch_cleanup import hooks, steps

        return steps.summarize_week(hooks.firestore_hook(), run_after=dag_run.run_after)

    @task
    def post_digest(summary: dict[str, Any], params: dict[str, Any] | None = None, dag_run=None) -> str:
        """Post the digest to Slack, at most once per run (marked TEST with `test_digest`)."""
        from batch_cleanup import hooks, steps

        return steps.post_digest(summary, params, store=hooks.firestore_hook(), **hooks.posting_args(dag_run))

    post_digest(summarize_week())


batch_cleanup_weekly_digest()
