"""Posting a policy decision: at most one run posts it, and the state moves only once Slack accepted it.

In bot-token mode an incident is one thread. Its first message is a card of where the incident
stands, edited after each step; every step, the opening WARNING or CRITICAL included, is a reply
in full (an escalation to CRITICAL also broadcast to the channel). Each message carries Slack
`metadata` naming its decision, so a retry finds what an earlier try posted and posts it no second
time. A thread whose first message is gone (a reply lands un-threaded at the channel's root, or an
edit finds no message) ends: the incident goes on in a new thread whose first step says why.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from batch_cleanup import metrics
from batch_cleanup.messages import with_note
from batch_cleanup.policy import CRITICAL, Decision, Evaluation, Kind, State
from batch_cleanup.ports import Channel, Message, PostRecord, Store, ThreadGone

log = logging.getLogger(__name__)

SENT, SKIPPED, RENDERED = "sent", "skipped", "rendered"
# Slack message metadata: the event type of every message of an incident, and its two parts.
EVENT_TYPE = "batch_cleanup_step"
CARD, STEP = "card", "step"
# A retry looks for an earlier try's messages from a little before its run's time (Slack's clock
# and Airflow's may differ a little).
CLOCK_SKEW = timedelta(minutes=5)
# Not a Slack error code: what delivery calls a reply that Slack posted outside its thread.
UNTHREADED = "unthreaded"


def deliver(
    message: Message,
    evaluation: Evaluation,
    *,
    notify: bool,
    dag_id: str,
    run_id: str,
    store: Store,
    slack: Channel,
    card: Message | None = None,
    since: datetime | None = None,
    retry: bool = False,
    posts: PostRecord | None = None,
) -> str:
    """Post `message` for the evaluation's decision: SENT, SKIPPED (another run has it) or RENDERED
    (notify=false).

    `card` is what the incident's first message shows after this one, in bot-token mode. A `retry`
    (not the task's first try) first looks in Slack for what an earlier try posted since `since`,
    the run's time: Slack may have taken it and the try died before it was recorded. A run older
    than the last evaluation (a newer run's record, see `Store.last_evaluation`) posts nothing. An
    accepted post is recorded in `posts` first (it needs no Firestore), then in the Firestore state.
    """
    decision = evaluation.decision
    kind = decision.kind.value
    if not notify:
        log.info("notify=false: nothing sent, state untouched. The message would read:\n%s", message.text)
        return RENDERED
    if decision.kind is Kind.TEST:  # No incident: a stand-alone message, no lease, nothing remembered.
        slack.post(message)
        return _accepted(decision)
    stored, _ = store.read_state(dag_id)
    conflict = store.claim_lease(
        dag_id, run_id=run_id, version=evaluation.version, kind=kind, run_after=since
    )
    if conflict:
        log.info("Not sending the %s: %s.", kind, conflict)
        return SKIPPED
    where, in_firestore = _posted_earlier(stored, posts, dag_id, run_id, kind)
    if where is None:
        try:
            if slack.threads and card is not None:
                key = {"dag_id": dag_id, "run_id": run_id, "kind": kind}
                thread = Thread(slack, key, card, since, look=retry)
                where = thread.deliver(message, decision, evaluation.before)
            else:
                where = slack.post(message)
        except Exception:
            # The next try, or the next run, decides again and posts; nothing is lost.
            store.release_lease(dag_id, run_id=run_id)
            raise
        _remember(posts, dag_id, {"run_id": run_id, "kind": kind, **where})
    if not in_firestore:  # the state's marker also carries the thread to the state's save
        store.record_post(dag_id, run_id=run_id, kind=kind, where=where)
    return _accepted(decision)


def thread_posted(stored: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The state fields naming the thread of `run_id`'s accepted message (the `posted` marker), for
    the lease holder's save of an open incident; {} when that message has no thread."""
    posted = stored.get("posted") or {}
    if posted.get("run_id") != run_id or not posted.get("ts"):
        return {}
    return {
        "slack_channel": posted["channel"],
        "slack_ts": posted["ts"],
        "slack_thread_gone": posted.get("gone"),
    }


def _posted_earlier(
    stored: dict[str, Any], posts: PostRecord | None, dag_id: str, run_id: str, kind: str
) -> tuple[dict[str, str] | None, bool]:
    """Where an earlier try of this run posted this decision's message (None when none did), and
    whether the Firestore state (`stored`, read before this try's claim) records it.

    Airflow's record is there even when the Firestore write of an accepted post met an outage. It
    speaks for this delivery only while the lease it was posted under is still this run's: a run
    started again after its state was saved (the lease given back) decides and posts anew.
    """
    posted, in_firestore = stored.get("posted"), True
    if not _same(posted, run_id, kind):
        lease = stored.get("lease")
        retried = isinstance(lease, dict) and lease.get("run_id") == run_id
        posted = posts.get(dag_id) if posts is not None and retried else None
        in_firestore = False
        if not _same(posted, run_id, kind):
            return None, False
    log.info(
        "An earlier try of this run posted the %s already (%s): not posting it again.",
        kind,
        "Firestore's record" if in_firestore else "Airflow's record",
    )
    return {key: posted[key] for key in ("channel", "ts", "gone") if key in posted}, in_firestore


def _same(posted: Any, run_id: str, kind: str) -> bool:
    return isinstance(posted, dict) and posted.get("run_id") == run_id and posted.get("kind") == kind


def _remember(posts: PostRecord | None, dag_id: str, posted: dict[str, str]) -> None:
    """Airflow's record of an accepted post, before Firestore's. Best effort: Firestore's record,
    retried through an outage, is still to come, and the message is out."""
    if posts is None:
        return
    try:
        posts.put(dag_id, posted)
    except Exception as err:  # a failed second record must not fail a post Slack accepted
        log.error("Could not record the accepted %s in Airflow's metadata: %s", posted["kind"], err)


class Thread:
    """One decision's messages in the incident's thread (bot-token mode): the step in full as a
    reply, the card in the first message. On a retry (`look`), each is first looked for by its
    metadata (`key` and its part) since `since` minus CLOCK_SKEW, and posted only if not found."""

    def __init__(
        self, slack: Channel, key: dict[str, Any], card: Message, since: datetime | None, *, look: bool
    ) -> None:
        self.slack, self.key, self.card, self.look = slack, key, card, look
        self.oldest = (since - CLOCK_SKEW).timestamp() if since is not None else 0.0

    def metadata(self, part: str) -> dict[str, Any]:
        return {"event_type": EVENT_TYPE, "event_payload": {**self.key, "part": part}}

    def earlier(self, thread_ts: str | None = None) -> dict[str, dict[str, Any]]:
        """This decision's messages that an earlier try posted (in `thread_ts`'s thread, else in
        the channel), by part; {} on a first try."""
        if not self.look:
            return {}
        found = self.slack.find(EVENT_TYPE, self.key, oldest=self.oldest, thread_ts=thread_ts)
        by_part: dict[str, dict[str, Any]] = {}
        for message in found:
            # In the channel, a step counts only at the root: a reply that landed outside its thread.
            if thread_ts is not None or message["payload"].get("part") == CARD or "thread_ts" not in message:
                by_part.setdefault(message["payload"].get("part"), message)
        if by_part:
            log.info(
                "An earlier try of this run posted the %s's %s already.",
                self.key["kind"],
                " and ".join(by_part),
            )
        return by_part

    def deliver(self, message: Message, decision: Decision, before: State) -> dict[str, str]:
        """Post the step and show the card; where the thread's first message is now (with `gone`:
        Slack's answer when an edit found it gone, which ends the thread for the next message)."""
        broadcast = decision.kind is Kind.ESCALATION and decision.severity == CRITICAL
        opening = decision.kind is Kind.ALERT
        thread = None if opening else before.thread
        lost = None if opening else before.slack_thread_gone
        stray = None
        if thread is not None:
            try:
                landed = self.earlier(thread["ts"]).get(STEP) or self.slack.post(
                    message, thread_ts=thread["ts"], broadcast=broadcast, metadata=self.metadata(STEP)
                )
            except ThreadGone as gone:
                lost = gone.error
            else:
                if landed.get("thread_ts") == thread["ts"]:
                    return self.show_card(thread)
                # Slack took the reply but put it at the channel's root: its parent was deleted.
                lost, stray = UNTHREADED, landed
        if lost:
            log.warning("%s Its first message was %s.", _why(lost), before.slack_ts)
            message = with_note(message, _why(lost))
        return self.start(message, broadcast, stray)

    def start(self, message: Message, broadcast: bool, stray: dict[str, Any] | None) -> dict[str, str]:
        """A new thread: the card first (an earlier try's, or this step's reply that landed at the
        root, edited into it), then the step as its first reply."""
        earlier = {} if stray is not None else self.earlier()
        parent = earlier.get(CARD) or earlier.get(STEP) or stray
        if parent is None:
            parent = self.slack.post(self.card, metadata=self.metadata(CARD))
        elif parent is not earlier.get(CARD):
            self.show_card(parent, metadata=self.metadata(CARD))
        if not (earlier and self.earlier(parent["ts"]).get(STEP)):
            self.slack.post(
                message, thread_ts=parent["ts"], broadcast=broadcast, metadata=self.metadata(STEP)
            )
        return {"channel": parent["channel"], "ts": parent["ts"]}

    def show_card(self, where: dict[str, Any], metadata: dict[str, Any] | None = None) -> dict[str, str]:
        """Edit the thread's first message into the card; a failed edit is logged and never fails
        the run (the step is out, and the next one edits it again), but one that finds the message
        gone ends the thread: `gone` says so."""
        thread = {"channel": where["channel"], "ts": where["ts"]}
        try:
            self.slack.update(thread, self.card, metadata=metadata)
        except ThreadGone as gone:
            log.warning("%s The next message starts a new thread.", _why(gone.error))
            return {**thread, "gone": gone.error}
        except Exception as err:  # best effort: said in the log
            log.error(
                "Could not edit the incident's first message (%s in %s): %s",
                thread["ts"],
                thread["channel"],
                err,
            )
        return thread


def _why(lost: str) -> str:
    """The line the first step of a new thread carries: why the incident's thread changed."""
    if lost == UNTHREADED:
        how = ": its first message was deleted (Slack posted a reply to it outside the thread)"
    else:
        how = f" (Slack answered `{lost}`)"
    return f"The incident's earlier Slack thread is gone{how}, so the incident continues in this new thread."


def _accepted(decision: Decision) -> str:
    log.info("Slack accepted the %s (%s).", decision.kind.value, decision.severity)
    kind, severity = decision.kind.value, decision.severity or metrics.NO_SEVERITY
    metrics.count(metrics.MESSAGES_SENT, severity=severity, kind=kind)
    return SENT
