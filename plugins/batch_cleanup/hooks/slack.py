"""Posting to the on-call channel through the Slack provider's webhook hook.

Everything posted goes through Airflow's secrets masker first: an error text may echo a key.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

from batch_cleanup.compat import AirflowException, AirflowFailException
from batch_cleanup.masking import redact
from batch_cleanup.messages import Message

TIMEOUT_SECONDS = 30
MAX_RETRIES = 2
# 4xx answers that a retry cannot heal: a revoked or mistyped webhook, an archived channel, a bad body.
# 408 and 429 are Slack asking to come back later, and stay retried like 5xx.
RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})


def webhook_hook(conn_id: str) -> SlackWebhookHook:
    """The provider's hook, with the Slack client's retry handlers (it retries nothing without them).

    429 waits out `Retry-After`; 5xx and dropped connections are tried again a few times.
    """
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    return SlackWebhookHook(
        slack_webhook_conn_id=conn_id,
        timeout=TIMEOUT_SECONDS,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=MAX_RETRIES),
            ServerErrorRetryHandler(max_retry_count=MAX_RETRIES),
            ConnectionErrorRetryHandler(max_retry_count=MAX_RETRIES),
        ],
    )


def async_webhook_hook(conn_id: str) -> SlackWebhookHook:
    """The same hook for the triggerer's event loop, with the async versions of the handlers."""
    from slack_sdk.http_retry.builtin_async_handlers import (
        AsyncConnectionErrorRetryHandler,
        AsyncRateLimitErrorRetryHandler,
        AsyncServerErrorRetryHandler,
    )

    return SlackWebhookHook(
        slack_webhook_conn_id=conn_id,
        timeout=TIMEOUT_SECONDS,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=MAX_RETRIES),
            AsyncServerErrorRetryHandler(max_retry_count=MAX_RETRIES),
            AsyncConnectionErrorRetryHandler(max_retry_count=MAX_RETRIES),
        ],
    )


def payload(message: Message) -> dict[str, Any]:
    """The body posted for `message`, every string passed through the secrets masker."""
    return redact({"text": message.text, "blocks": message.blocks})


def post(conn_id: str, message: Message) -> None:
    """Post one message; raises (naming the connection and Slack's answer) unless Slack accepted it."""
    response = webhook_hook(conn_id).client.send_dict(payload(message))
    check_answer(conn_id, response.status_code, response.body)


async def apost(conn_id: str, message: Message) -> None:
    """`post` for async callbacks (the triggerer)."""
    client = await async_webhook_hook(conn_id).get_async_client()
    response = await client.send_dict(payload(message))
    check_answer(conn_id, response.status_code, response.body)


def check_answer(conn_id: str, status: int, body: Any) -> None:
    """Nothing for 200; AirflowFailException when only fixing the connection helps; else AirflowException."""
    if status == 200:
        return
    answer = f"HTTP {status} {str(body)[:200]!r}"
    if 400 <= status < 500 and status not in RETRYABLE_CLIENT_ERRORS:
        raise AirflowFailException(
            f"Slack refused the message on connection {conn_id!r} ({answer}): the webhook URL is wrong, "
            f"revoked or its channel is gone; fix connection {conn_id!r}. Not retried."
        )
    raise AirflowException(f"Slack did not accept the message on connection {conn_id!r}: {answer}")
