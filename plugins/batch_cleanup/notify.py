"""Failure and deadline callbacks; Slack's client is imported when one runs, never at parse time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from batch_cleanup.compat import AIRFLOW_VERSION, airflow_minor
from batch_cleanup.messages import dag_run_url, run_failed, run_overdue, task_failure

log = logging.getLogger(__name__)

# Reasons Airflow gives a DAG-level failure callback (`context["reason"]`) that a task callback
# has already explained: posting again would page twice for one failure.
EXPLAINED_BY_A_TASK = frozenset({"task_failure"})


def hung_run_deadline(conn_id: str, minutes: int, airflow_version: str = AIRFLOW_VERSION) -> Any:
    """The Deadline Alert for a run still unfinished `minutes` after it was queued; None on Airflow 3.1.

    On 3.1 a DAGRUN_QUEUED_AT deadline is evaluated while the run is created, and a run created
    running (`airflow dags test`, `dag.test()`) has no queued_at yet: the run cannot even start. So
    3.1 goes without it, and says so; a hung run is still posted to Slack, by `dagrun_timeout` and
    the DAG's failure callback (`slack_on_run_failure`), only later.
    """
    if airflow_minor(airflow_version) < (3, 2):
        log.warning(
            "Airflow %s: the Deadline Alert (%d min after queued) is off, because on 3.1 it breaks "
            "runs created running, such as `airflow dags test`. A hung run is posted to Slack when "
            "it hits dagrun_timeout instead.",
            airflow_version,
            minutes,
        )
        return None
    from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback(deadline_missed, kwargs={"slack_conn_id": conn_id, "minutes": minutes}),
    )


def slack_on_failure(conn_id: str) -> Callable[[dict[str, Any]], None]:
    """A task `on_failure_callback` that posts the DAG, task, run, error and log link to Slack."""

    def notify(context: dict[str, Any]) -> None:
        from batch_cleanup.hooks import slack
        from batch_cleanup.masking import redact

        ti = context["ti"]
        message = task_failure(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            # Masked before the message cuts it: a cut must not leave half a key unmasked.
            error=redact(_describe(context.get("exception"))),
            log_url=ti.log_url,
        )
        slack.post(conn_id, message)

    return notify


def slack_on_run_failure(conn_id: str) -> Callable[[dict[str, Any]], None]:
    """A DAG-level `on_failure_callback`: a run that failed as a whole (timed out, say) posts why, once."""

    def notify(context: dict[str, Any]) -> None:
        from airflow.configuration import conf

        from batch_cleanup.hooks import slack

        reason = str(context.get("reason") or "unknown")
        dag_run = context.get("dag_run")
        dag_id = getattr(dag_run, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
        run_id = getattr(dag_run, "run_id", None) or str(context.get("run_id", "?"))
        if reason in EXPLAINED_BY_A_TASK:
            log.info("Run %s failed (%s): the failed task has posted its error.", run_id, reason)
            return
        message = run_failed(
            dag_id=dag_id,
            run_id=run_id,
            reason=failure_cause(reason, context.get("ti")),
            run_url=dag_run_url(conf.get("api", "base_url", fallback=""), dag_id, run_id),
        )
        slack.post(conn_id, message)

    return notify


def failure_cause(reason: str, ti: Any) -> str:
    """Airflow's reason in words, with the task that was still unfinished when it is known."""
    words = {
        "timed_out": "the run hit its dagrun_timeout and Airflow stopped it",
        "all_tasks_deadlocked": "no task could run (deadlocked)",
    }.get(reason, f"Airflow ended the run ({reason})")
    if ti is None:
        return words
    return f"{words}; unfinished: task {ti.task_id}, try {ti.try_number}"


def _describe(exception: BaseException | str | None) -> str:
    if exception is None:
        return "unknown error (see the task log)"
    if isinstance(exception, BaseException):
        return f"{type(exception).__name__}: {exception}"
    return str(exception)


async def deadline_missed(*, slack_conn_id: str, minutes: int, context: dict[str, Any] | None = None) -> None:
    """Deadline Alert callback (runs in the triggerer): a run still unfinished `minutes` after it was queued.

    A hung cleanup is as bad as a failed one: nothing gets auto-completed and nothing alerts.
    """
    from airflow.configuration import conf

    from batch_cleanup.hooks import slack

    run = (context or {}).get("dag_run") or {}
    dag_id, run_id = run.get("dag_id", "?"), run.get("dag_run_id") or run.get("run_id", "?")
    message = run_overdue(
        dag_id=dag_id,
        run_id=run_id,
        queued_at=str(run.get("queued_at")),
        minutes=minutes,
        run_url=dag_run_url(conf.get("api", "base_url", fallback=""), dag_id, run_id),
    )
    await slack.apost(slack_conn_id, message)
