"""Posting a policy decision: at most one run posts it, and the state moves only once Slack accepted it.

In bot-token mode an incident is one thread: its first message opens it, every later message of
the incident is a reply (an escalation to CRITICAL also broadcast to the channel), and after each
reply the first message is edited to show where the incident stands.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from batch_cleanup import metrics
from batch_cleanup.messages import Message, with_note
from batch_cleanup.policy import CRITICAL, State

if TYPE_CHECKING:
    from batch_cleanup.steps import Store

log = logging.getLogger(__name__)

SENT, SKIPPED, RENDERED = "sent", "skipped", "rendered"


class ThreadGone(Exception):
    """The message a reply or an edit points at can no longer be found: `error` is Slack's code."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class Channel(Protocol):
    """What delivery needs of `hooks.slack.OnCallChannel`."""

    @property
    def threads(self) -> bool: ...
    def post(
        self, message: Message, *, thread_ts: str | None = None, broadcast: bool = False
    ) -> dict[str, str]: ...
    def update(self, where: dict[str, str], message: Message) -> None: ...


class PostRecord(Protocol):
    """A second record of the last accepted post, outside Firestore (`hooks.posted.AirflowPostRecord`)."""

    def get(self, dag_id: str) -> dict[str, str] | None: ...
    def put(self, dag_id: str, posted: dict[str, str]) -> None: ...


def deliver(
    message: Message,
    *,
    decision: dict[str, Any],
    evaluation: dict[str, Any],
    notify: bool,
    dag_id: str,
    run_id: str,
    store: Store,
    slack: Channel,
    card: Message | None = None,
    posts: PostRecord | None = None,
) -> str:
    """Post `message` for `decision`: SENT, SKIPPED (another run has it) or RENDERED (notify=false).

    `card` is what the incident's first message shows after this one, in bot-token mode. An accepted
    post is recorded in `posts` first (it needs no Firestore), then in the Firestore state.
    """
    kind = decision["kind"]
    if not notify:
        log.info("notify=false: nothing sent, state untouched. The message would read:\n%s", message.text)
        return RENDERED
    if kind == "test":  # No incident: a stand-alone message, no lease, nothing remembered.
        slack.post(message)
        return _accepted(decision)
    stored, _ = store.read_state(dag_id)
    conflict = store.claim_lease(dag_id, run_id=run_id, version=evaluation["version"], kind=kind)
    if conflict:
        log.info("Not sending the %s: %s.", kind, conflict)
        return SKIPPED
    thread = State.from_dict(evaluation["before"]).thread if kind != "alert" and slack.threads else None
    where, in_firestore = _posted_earlier(stored, posts, dag_id, run_id, kind)
    if where is None:
        try:
            where = _post(slack, message, thread, decision)
        except Exception:
            # The next try, or the next run, decides again and posts; nothing is lost.
            store.release_lease(dag_id, run_id=run_id)
            raise
        _remember(posts, dag_id, {"run_id": run_id, "kind": kind, **where})
    if not in_firestore:  # the state's marker also carries the thread to the state's save
        store.record_post(dag_id, run_id=run_id, kind=kind, where=where)
    if thread is not None and where == thread and card is not None:
        _edit(slack, thread, card)
    return _accepted(decision)


def thread_posted(stored: dict[str, Any], run_id: str) -> dict[str, str]:
    """The state fields naming the thread of `run_id`'s accepted message (the `posted` marker), for
    the lease holder's save of an open incident; {} when that message has no thread."""
    posted = stored.get("posted") or {}
    if posted.get("run_id") != run_id or not posted.get("ts"):
        return {}
    return {"slack_channel": posted["channel"], "slack_ts": posted["ts"]}


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
    return {key: posted[key] for key in ("channel", "ts") if key in posted}, in_firestore


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


def _post(
    slack: Channel, message: Message, thread: dict[str, str] | None, decision: dict[str, Any]
) -> dict[str, str]:
    """Post into the incident's thread if it has one; the first message of the thread it is now in."""
    if thread is None:
        return slack.post(message)
    broadcast = decision["kind"] == "escalation" and decision["severity"] == CRITICAL
    try:
        slack.post(message, thread_ts=thread["ts"], broadcast=broadcast)
        return thread
    except ThreadGone as gone:
        why = (
            f"The incident's earlier Slack thread could not be found (Slack answered `{gone.error}`), "
            "so this message starts a new one."
        )
        log.warning("%s Its first message was %s in %s.", why, thread["ts"], thread["channel"])
        return slack.post(with_note(message, why))


def _edit(slack: Channel, thread: dict[str, str], card: Message) -> None:
    """Show the incident's state in its first message; a failed edit is logged and never fails the
    run: the message itself is out, and the next one edits the first message again."""
    try:
        slack.update(thread, card)
    except Exception as err:  # best effort: said in the log
        log.error(
            "Could not edit the incident's first message (%s in %s): %s", thread["ts"], thread["channel"], err
        )


def _accepted(decision: dict[str, Any]) -> str:
    log.info("Slack accepted the %s (%s).", decision["kind"], decision["severity"])
    metrics.count(
        "alerts_sent", severity=decision["severity"] or decision["kind"].upper(), kind=decision["kind"]
    )
    return SENT
