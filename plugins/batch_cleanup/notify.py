"""Failure and deadline callbacks. Slack's client and the messages are imported when one runs, never at
parse time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from batch_cleanup.compat import AIRFLOW_VERSION, airflow_minor

log = logging.getLogger(__name__)

# Reasons Airflow gives a DAG-level failure callback (`context["reason"]`) that a task callback
# has already explained: posting again would page twice for one failure.
EXPLAINED_BY_A_TASK = frozenset({"task_failure"})
# A run in one of these states has ended: it cannot be overdue (Airflow drops the deadline of a
# successful run only, so a failed run's deadline still fires).
FINISHED = frozenset({"success", "failed"})
# How long the deadline callback waits for the run's current state before posting without it.
STATE_READ_TIMEOUT_SECONDS = 30.0


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
        from batch_cleanup import messages
        from batch_cleanup.config import api_base_url
        from batch_cleanup.hooks import slack
        from batch_cleanup.masking import redact

        ti = context["ti"]
        if _trigger_mistake(context, ti.task_id):
            return
        message = messages.task_failure(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            # Masked before the message cuts it: a cut must not leave half a key unmasked.
            error=redact(_describe(context.get("exception"))),
            # Without [api] base_url, Airflow makes it http://localhost:8080/…: a link to nowhere.
            log_url=ti.log_url if api_base_url() else None,
        )
        slack.post(conn_id, message)

    return notify


def slack_on_run_failure(conn_id: str) -> Callable[[dict[str, Any]], None]:
    """A DAG-level `on_failure_callback`: a run that failed as a whole (timed out, say) posts why, once."""

    def notify(context: dict[str, Any]) -> None:
        from batch_cleanup import messages
        from batch_cleanup.config import api_base_url
        from batch_cleanup.hooks import slack

        reason = str(context.get("reason") or "unknown")
        dag_run = context.get("dag_run")
        dag_id = getattr(dag_run, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
        run_id = getattr(dag_run, "run_id", None) or str(context.get("run_id", "?"))
        if _trigger_mistake(context, f"run {run_id}"):
            return
        if reason in EXPLAINED_BY_A_TASK:
            log.info("Run %s failed (%s): the failed task has posted its error.", run_id, reason)
            return
        base_url = api_base_url()
        message = messages.run_failed(
            dag_id=dag_id,
            run_id=run_id,
            reason=failure_cause(reason, context.get("ti")),
            run_url=messages.dag_run_url(base_url, dag_id, run_id) if base_url else None,
        )
        slack.post(conn_id, message)

    return notify


def invalid_params(context: Mapping[str, Any]) -> str | None:
    """Why the run's params cannot work, or None: a run triggered with contradicting thresholds is
    the triggering person's mistake, refused before the coordinator is called, not an outage.

    Decided from the params themselves, checked as `check_stalled` checks them, and from the
    exception when there is one: `airflow dags test` on Airflow 3.1 and 3.2 hands the callback none.
    """
    from batch_cleanup.config import ALERT_RULE, RATE_OBJECTIVE_PCT
    from batch_cleanup.params import policy_config
    from batch_cleanup.rule_defaults import check_rule
    from batch_cleanup.steps import InvalidParams

    exception = context.get("exception")
    if isinstance(exception, InvalidParams):
        return str(exception)
    params = context.get("params")
    if not isinstance(params, Mapping):
        return None
    try:
        policy_config(params)
        check_rule(params.get("alert_rule", ALERT_RULE), params.get("rate_objective_pct", RATE_OBJECTIVE_PCT))
    except ValueError as err:  # InvalidParam too
        return str(err)
    return None


def _trigger_mistake(context: Mapping[str, Any], failed: str) -> bool:
    """Whether the run failed on its params, a trigger mistake: logged, and nothing goes to Slack."""
    mistake = invalid_params(context)
    if mistake is not None:
        log.info("Nothing posted to Slack: %s failed on its params, a trigger mistake (%s).", failed, mistake)
    return mistake is not None


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

    A hung cleanup is as bad as a failed one: nothing gets auto-completed and nothing alerts. A run
    that has ended (failed, which posted its own message, or succeeded late) is not hung: silent.
    """
    from batch_cleanup import messages
    from batch_cleanup.config import api_base_url
    from batch_cleanup.hooks import slack

    run = (context or {}).get("dag_run") or {}
    dag_id, run_id = run.get("dag_id", "?"), run.get("dag_run_id") or run.get("run_id", "?")
    state, unread = await current_run_state(dag_id, run_id)
    if unread is not None:
        state = run.get("state")  # as the scheduler saw it when it found the deadline missed
        log.warning(
            "Run %s: its current state could not be read (%s); when the deadline passed it was %s.",
            run_id,
            unread,
            state,
        )
    if state in FINISHED:
        log.info(
            "Run %s of %s has ended (%s): no overdue message for its %d-minute deadline.",
            run_id,
            dag_id,
            state,
            minutes,
        )
        return
    note = ""
    if unread is not None:  # a hung run must never go silent: posted, saying what is not known
        seen = state or "unknown"
        note = f"Its current state could not be read ({unread}); when the deadline passed it was {seen}."
    base_url = api_base_url()
    message = messages.run_overdue(
        dag_id=dag_id,
        run_id=run_id,
        queued_at=str(run.get("queued_at")),
        minutes=minutes,
        run_url=messages.dag_run_url(base_url, dag_id, run_id) if base_url else None,
        state_note=note,
    )
    await slack.apost(slack_conn_id, message)


async def current_run_state(dag_id: str, run_id: str) -> tuple[str | None, str | None]:
    """The run's state now, and None; or None and why it could not be read.

    In the triggerer (Airflow 3.2 and 3.3) the Task SDK's `get_dagrun_state` asks the triggerer's
    supervisor (`GetDagRunState`), which asks the API server's execution API. It is a blocking call,
    so it runs in a thread, as Airflow's triggerer documents for Task SDK calls.
    """
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        state = await asyncio.wait_for(
            asyncio.to_thread(RuntimeTaskInstance.get_dagrun_state, dag_id, run_id),
            STATE_READ_TIMEOUT_SECONDS,
        )
    except Exception as err:  # any failure to read: post rather than stay silent about a hung run
        return None, _describe(err) if str(err) else type(err).__name__
    state = getattr(state, "value", state)  # DagRunState, a str enum
    if not isinstance(state, str):
        return None, f"unexpected answer {type(state).__name__}"
    return state, None
