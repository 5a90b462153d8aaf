"""What both DAGs hand every task (`default_args`). Light enough for parse time: the failure
callback imports Slack's client when it runs."""

from __future__ import annotations

from typing import Any

from batch_cleanup.config import (
    MAX_RETRY_DELAY,
    RETRIES,
    RETRY_DELAY,
    RETRY_EXPONENTIAL_BACKOFF,
    TASK_TIMEOUT,
)
from batch_cleanup.notify import slack_on_failure

OWNER = "prediction-platform"


def default_args(slack_conn_id: str) -> dict[str, Any]:
    """The owner, every task's retries and timeout, and a task that fails for good posting its error
    on `slack_conn_id`."""
    return {
        "owner": OWNER,
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": RETRY_EXPONENTIAL_BACKOFF,
        "max_retry_delay": MAX_RETRY_DELAY,
        "execution_timeout": TASK_TIMEOUT,
        "on_failure_callback": slack_on_failure(slack_conn_id),
    }
