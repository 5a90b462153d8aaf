"""Failure callbacks. Slack's client is imported when a callback runs, never when the DAG is parsed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batch_cleanup.messages import dag_run_url, run_overdue, task_failure


def slack_on_failure(conn_id: str) -> Callable[[dict[str, Any]], None]:
    """A task `on_failure_callback` that posts the DAG, task, run, error and log link to Slack."""

    def notify(context: dict[str, Any]) -> None:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        ti = context["ti"]
        message = task_failure(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            error=_describe(context.get("exception")),
            log_url=ti.log_url,
        )
        # notify() rather than __call__: the error text is not a template and must not be rendered as one.
        SlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=message.text, blocks=message.blocks).notify(
            context
        )

    return notify


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
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
    from airflow.sdk import conf

    run = (context or {}).get("dag_run") or {}
    message = run_overdue(
        dag_id=run.get("dag_id", "?"),
        run_id=run.get("dag_run_id") or run.get("run_id", "?"),
        queued_at=str(run.get("queued_at")),
        minutes=minutes,
        run_url=dag_run_url(
            conf.get("api", "base_url", fallback=""), run.get("dag_id", "?"), run.get("dag_run_id", "?")
        ),
    )
    await SlackWebhookHook(slack_webhook_conn_id=slack_conn_id).async_send(
        text=message.text, blocks=message.blocks
    )
