"""Failure callbacks. Slack's client is imported when a callback runs, never when the DAG is parsed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batch_cleanup.messages import task_failure


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
