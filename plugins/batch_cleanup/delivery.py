"""Posting a policy decision: at most one run posts it, and the state moves only once Slack accepted it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from batch_cleanup import metrics
from batch_cleanup.messages import Message

if TYPE_CHECKING:
    from batch_cleanup.steps import Store

log = logging.getLogger(__name__)

SENT, SKIPPED, RENDERED = "sent", "skipped", "rendered"


def deliver(
    message: Message,
    *,
    decision: dict[str, Any],
    evaluation: dict[str, Any],
    notify: bool,
    dag_id: str,
    run_id: str,
    store: Store,
    post: Callable[[Message], None],
) -> str:
    """Post `message` for `decision`: SENT, SKIPPED (another run has it) or RENDERED (notify=false)."""
    if not notify:
        log.info("notify=false: nothing sent, state untouched. The message would read:\n%s", message.text)
        return RENDERED
    test = decision["kind"] == "test"
    if not test:
        conflict = store.claim_lease(
            dag_id, run_id=run_id, version=evaluation["version"], kind=decision["kind"]
        )
        if conflict:
            log.info("Not sending the %s: %s.", decision["kind"], conflict)
            return SKIPPED
    try:
        post(message)
    except Exception:
        if not test:
            # The next try, or the next run, decides again and posts; nothing is lost.
            store.release_lease(dag_id, run_id=run_id)
        raise
    log.info("Slack accepted the %s (%s).", decision["kind"], decision["severity"])
    metrics.count(
        "alerts_sent", severity=decision["severity"] or decision["kind"].upper(), kind=decision["kind"]
    )
    return SENT
