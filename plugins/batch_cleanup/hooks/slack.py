"""Posting to the on-call channel through the Slack provider's webhook hook."""

from __future__ import annotations

from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
from airflow.sdk.exceptions import AirflowException
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from batch_cleanup.messages import Message

TIMEOUT_SECONDS = 30


def webhook_hook(conn_id: str, *, max_retries: int = 2) -> SlackWebhookHook:
    """The provider's hook, with the Slack client's retry handlers (it retries nothing without them).

    429 waits out `Retry-After`; 5xx and dropped connections are tried again a few times.
    """
    return SlackWebhookHook(
        slack_webhook_conn_id=conn_id,
        timeout=TIMEOUT_SECONDS,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=max_retries),
            ServerErrorRetryHandler(max_retry_count=max_retries),
            ConnectionErrorRetryHandler(max_retry_count=max_retries),
        ],
    )


def post(conn_id: str, message: Message) -> None:
    """Post one message; raises (naming the connection and Slack's answer) unless Slack accepted it."""
    try:
        webhook_hook(conn_id).send(text=message.text, blocks=message.blocks)
    except AirflowException as err:
        raise AirflowException(f"Slack did not accept the message on connection {conn_id!r}: {err}") from None
