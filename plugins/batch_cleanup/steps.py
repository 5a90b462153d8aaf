"""The DAG's task steps: each task unpacks what Airflow hands it and calls one of these.

They take their inputs (hooks, params, the run's id and time) and return small JSON-able values,
so they can be tested without Airflow running. The hooks are passed in; Slack is the `slack`
channel (the real one is `batch_cleanup.hooks.slack.OnCallChannel`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from batch_cleanup import digest, labels, metrics
from batch_cleanup.cleanup import summarize
from batch_cleanup.compat import AirflowFailException, AirflowSkipException
from batch_cleanup.config import (
    HEALTH_TIMEOUT_SECONDS,
    NOISE_REACTION,
    REAL_REACTION,
    RUN_TIMEOUT,
    WORKER_LOGS_QUERY,
)
from batch_cleanup.delivery import RENDERED, SENT, deliver, post_once, thread_posted
from batch_cleanup.diagnosis import health_summary, logs_explorer_url
from batch_cleanup.events import build_event, double_recorded, event_id, run_document, window_start
from batch_cleanup.messages import Diagnosis, alert, dag_run_url, incident_card
from batch_cleanup.monitoring import RunFigures, run_series
from batch_cleanup.names import (
    DAG_ID,
    MUTE_VARIABLE,
    NO_ALERT,
    OFFENDER_HOURS,
    RETENTION_DAYS,
    SEND_ALERT,
    SEND_RESOLVED,
)
from batch_cleanup.policy import (
    Decision,
    Evaluation,
    Kind,
    PolicyConfig,
    State,
    decide,
    forced_test_decision,
    incident_record,
    mute_until,
    rate_rule,
    repeat_offenders,
)
from batch_cleanup.ports import Channel, Coordinator, Message, PostRecord, RunRecord, Store, ThreadGone
from batch_cleanup.rules import RateReading, RateRule, reading

log = logging.getLogger(__name__)

LOGGED_IDS = 20
# The messages that tell of a systemic problem now (and the TEST of their wiring): they carry the
# coordinator's health and the worker-logs link. A RESOLVED one does not.
DIAGNOSED = frozenset({Kind.ALERT, Kind.ESCALATION, Kind.WORSENING, Kind.REMINDER, Kind.TEST})


class InvalidParams(AirflowFailException):
    """The run's params contradict each other (critical not above warning, an objective the rate rule
    cannot work with: what the trigger form cannot check): the triggering person's mistake, not an
    outage, so the failure callbacks post nothing."""


def check_stalled(coordinator: Coordinator, params: Mapping[str, Any], *, dag_id: str, run_id: str) -> dict:
    """Ask the coordinator to auto-complete stalled batches; return the compact summary for XCom.

    Params that cannot work (critical not above warning, a rate objective the rule cannot reach)
    fail here, before the coordinator acts.
    """
    try:
        PolicyConfig.from_params(params)
        rate_rule(params)
    except ValueError as err:
        raise InvalidParams(f"Invalid params: {err}. Nothing was done and nothing posted to Slack.") from None
    response = coordinator.check_stalled(
        stall_threshold_minutes=params["stall_threshold_minutes"],
        min_completion_pct=params["min_completion_pct"],
        idempotency_key=f"{dag_id}/{run_id}",
    )
    summary = summarize(response)
    metrics.gauge(metrics.BATCHES_CHECKED, summary["batches_checked"])
    metrics.gauge(metrics.BATCHES_AUTO_COMPLETED, summary["stalled_count"])
    log.info(
        "Checked %d batches; %d stalled and auto-completed: %s%s",
        summary["batches_checked"],
        summary["stalled_count"],
        ", ".join(summary["stalled_batch_ids"][:LOGGED_IDS]) or "none",
        " …" if summary["stalled_count"] > LOGGED_IDS else "",
    )
    return summary


def record_event(
    store: Store,
    summary: dict[str, Any],
    params: Mapping[str, Any],
    *,
    dag_id: str,
    run_id: str,
    run_after: datetime,
) -> str:
    """Write the cleanup once per run and stalled set; skipped (AirflowSkipException) when nothing stalled."""
    if summary["stalled_count"] == 0:
        raise AirflowSkipException("No batch was stalled: nothing to record.")
    document = build_event(
        summary,
        dag_id=dag_id,
        run_id=run_id,
        params=params,
        expire_at=run_after + timedelta(days=RETENTION_DAYS),
        timestamp=run_after,
    )
    document_id = event_id(dag_id, run_id, summary["fingerprint"])
    created = store.create_event(document_id, document)
    log.info(
        "%s event %s: %d stalled batches%s",
        "Recorded" if created else "Already recorded (kept as first written)",
        document_id,
        summary["stalled_count"],
        " (stored lists truncated)" if document["truncated"] else "",
    )
    return document_id


def evaluate(
    store: Store,
    params: Mapping[str, Any],
    *,
    dag_id: str,
    run_after: datetime,
    mute_value: str | None,
    recorded: bool = False,
    summary: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Count the cleanups in the window ending at the run's time and decide what Slack hears.

    `recorded`: this run wrote a cleanup, so it looks for the coordinator writing the same one.
    `summary`: this run's `check_stalled` answer; under the rate rule its figures are the newest
    run (its own record is written only when the run ends). Returns the `Evaluation`, as XCom holds it.
    """
    config = PolicyConfig.from_params(params)
    rule = rate_rule(params)
    if rule is None:
        for unreachable in config.unreachable():
            log.warning("%s: only manual or cleared runs could reach it.", unreachable)
    start = window_start(run_after, config.window_minutes)
    count = store.count_in(start, run_after)
    stored, version = store.read_state(dag_id)
    state = State.from_dict(stored)
    # A run that changes nothing else saves no state: the newest run record says when the incident
    # was last evaluated, for the older runs (cleared, re-run) that must post nothing.
    last = store.last_evaluation(dag_id)
    if last is not None and (state.evaluated_at is None or last.run_after > state.evaluated_at):
        state = dataclasses.replace(state, evaluated_at=last.run_after)
    rate = _rate_reading(store, summary, rule, dag_id=dag_id, run_after=run_after) if rule else None
    window_events: dict[str, list[str]] = {}
    auto_completed = 0
    offenders: tuple[tuple[str, int], ...] = ()
    twice: set[str] = set()
    alarming = count >= config.warning_threshold if rate is None else rate.severity is not None
    if alarming or state.open or recorded:  # Healthy runs read no events.
        # Up to the run's timeout: the coordinator stamps its copy of this run's cleanup after it.
        recent = store.events_in(run_after - timedelta(hours=OFFENDER_HOURS), run_after + RUN_TIMEOUT)
        twice = double_recorded(recent, RUN_TIMEOUT)
        counted = [event for event in recent if event.timestamp <= run_after and event.id not in twice]
        count -= sum(start < event.timestamp <= run_after for event in recent if event.id in twice)
        in_window = [event for event in counted if event.timestamp > start]
        window_events = {event.id: event.batch_ids for event in in_window}
        auto_completed = sum(event.auto_completed for event in in_window)
        offenders = repeat_offenders(event.batch_ids for event in counted)
    if twice:
        log.warning(
            "%d cleanup(s) in Firestore were recorded by the coordinator too: its own tracking is still "
            "on (docs/cutover.md). Counted once: %s.",
            len(twice),
            ", ".join(sorted(twice)),
        )
    metrics.gauge(metrics.CLEANUPS_IN_WINDOW, count)
    decision, new_state = decide(
        state,
        count=count,
        window_events=window_events,
        offenders=offenders,
        now=run_after,
        config=config,
        muted=_muted(mute_value, run_after),
        double_recorded=len(twice),
        auto_completed=auto_completed,
        rate=rate,
    )
    log.info("%s", decision.reason)
    if params["force_alert"]:
        decision, new_state = forced_test_decision(count, window_events, offenders, decision.rate), state
        log.info("force_alert: a TEST message goes out instead; the incident state is not touched.")
    return Evaluation(decision, state, new_state, version).to_xcom()


def _rate_reading(
    store: Store, summary: Mapping[str, Any] | None, rule: RateRule, *, dag_id: str, run_after: datetime
) -> RateReading:
    """The rate rule's reading at `run_after`: the DAG's run records of the rule's span, and this
    run's own figures as the newest (in place of its record, should a retry find it written)."""
    stored = store.runs_in(run_after - rule.span, run_after, dag_id=dag_id)
    runs = [run for run in stored if run.run_after != run_after]
    if summary is not None:
        runs.append(RunRecord(run_after, summary["batches_checked"], summary["stalled_count"], dag_id=dag_id))
    return reading(runs, run_after, rule)


def _muted(value: str | None, now: datetime) -> bool:
    try:
        silence = mute_until(value, variable=MUTE_VARIABLE)
    except ValueError as err:  # A mistyped silence must not swallow alerts: warn and stay loud.
        log.error("Ignoring the silence: %s", err)
        return False
    if silence is None or silence <= now:
        return False
    log.info("Muted until %s by Variable %r: decisions are logged, not posted.", silence, MUTE_VARIABLE)
    return True


def choose_alert(evaluation: dict[str, Any]) -> str:
    """The task that follows the decision (`evaluation` as XCom holds it): `send_alert`,
    `send_resolved` or `no_alert`."""
    decision = Evaluation.from_xcom(evaluation).decision
    if not decision.notify:
        return NO_ALERT
    return SEND_RESOLVED if decision.kind is Kind.RESOLVED else SEND_ALERT


def compared_with(decision: Decision, config: PolicyConfig) -> int:
    """The threshold a message compares the count with: a RESOLVED one carries the peak severity,
    but it resolved below the warning threshold."""
    return config.warning_threshold if decision.kind is Kind.RESOLVED else config.threshold(decision.severity)


def message_for(
    summary: dict[str, Any],
    decision: Decision,
    params: Mapping[str, Any],
    *,
    run_url: str | None,
    run_id: str,
    diagnosis: Diagnosis | None = None,
) -> Message:
    """The Slack message for this run's decision."""
    config = PolicyConfig.from_params(params)
    return alert(
        decision,
        window_minutes=config.window_minutes,
        threshold=compared_with(decision, config),
        completed_this_run=summary["stalled_count"],
        run_url=run_url,
        run_id=run_id,
        diagnosis=diagnosis,
    )


def diagnose(
    coordinator: Coordinator,
    project: str | None,
    start: datetime,
    end: datetime,
    *,
    timeout_seconds: float,
    query: str,
) -> Diagnosis:
    """What an alert carries besides the counts: the coordinator's deep health, best effort (one
    short try; a failed check is one line and the alert still goes out), and the worker logs of
    the window in Logs Explorer."""
    return Diagnosis(
        health=tuple(health_summary(coordinator.deep_health(timeout_seconds))),
        logs_url=logs_explorer_url(project, query, start, end),
    )


def send(
    store: Store,
    summary: dict[str, Any],
    evaluation: dict[str, Any],
    params: Mapping[str, Any],
    *,
    dag_id: str,
    run_id: str,
    base_url: str | None,
    slack: Channel,
    now: datetime,
    run_after: datetime | None = None,
    coordinator: Coordinator | None = None,
    project: str | None = None,
    retry: bool = False,
    posts: PostRecord | None = None,
) -> str:
    """Post the decision's message at most once: `sent`, `skipped` (another run has it) or `rendered`.

    A WARNING or CRITICAL message (and a TEST) first gets the diagnosis of the window ending at
    `run_after`: the `coordinator`'s health and a link to the worker logs in `project`. In
    bot-token mode the incident's first message is then edited to show where it stands (`now`),
    and a `retry` (not the task's first try) first looks in Slack for what an earlier try
    posted. Without a `base_url` (see `config.api_base_url`) the messages name the run without
    linking to it.
    """
    run_url = dag_run_url(base_url, dag_id, run_id) if base_url else None
    config = PolicyConfig.from_params(params)
    evaluated = Evaluation.from_xcom(evaluation)
    decision = evaluated.decision
    end, diagnosis = run_after or now, None
    if coordinator is not None and decision.kind in DIAGNOSED:
        start = window_start(end, config.window_minutes)
        diagnosis = diagnose(
            coordinator, project, start, end, timeout_seconds=HEALTH_TIMEOUT_SECONDS, query=WORKER_LOGS_QUERY
        )
    message = message_for(summary, decision, params, run_url=run_url, run_id=run_id, diagnosis=diagnosis)
    card = incident_card(
        decision,
        window_minutes=config.window_minutes,
        threshold=compared_with(decision, config),
        now=now,
        run_url=run_url,
    )
    return deliver(
        message,
        evaluated,
        notify=params["notify"],
        dag_id=dag_id,
        run_id=run_id,
        store=store,
        slack=slack,
        card=card,
        since=end,
        retry=retry,
        posts=posts,
    )


def record_state(
    store: Store,
    summary: dict[str, Any],
    evaluation: dict[str, Any],
    outcome: str | None,
    params: Mapping[str, Any],
    *,
    dag_id: str,
    run_id: str,
    run_after: datetime,
) -> str:
    """Remember the incident for the next run, once Slack accepted what this run posted, and write
    the run's record; says what it did to the state.

    A healthy run changes nothing but its record: one write. A force_alert or notify=false run is
    recorded as a "test" (no severity): it leaves the incident alone, and makes no older run stale.
    """
    evaluated = Evaluation.from_xcom(evaluation)
    said = _save_state(
        store, evaluated, outcome, tested=_tested(params), dag_id=dag_id, run_id=run_id, run_after=run_after
    )
    _write_run(store, summary, evaluated, params, dag_id=dag_id, run_id=run_id, run_after=run_after)
    return said


def record_unfinished_run(
    store: Store,
    summary: dict[str, Any] | None,
    evaluation: dict[str, Any] | None,
    params: Mapping[str, Any],
    *,
    dag_id: str,
    run_id: str,
    run_after: datetime,
) -> str:
    """The record of a run that ended before `record_state` wrote it (its post failed for good, or
    Firestore failed the state's save): the rate and the backtest then still count the batches it
    checked. A teardown calls it, so a failure here is logged as a warning and never fails the run,
    which has failed and paged already. Nothing when the run checked nothing or decided nothing."""
    if summary is None or evaluation is None:
        return _said("No run record: the run never learnt what it checked and decided.")
    try:
        evaluated = Evaluation.from_xcom(evaluation)
        document_id = _write_run(
            store, summary, evaluated, params, dag_id=dag_id, run_id=run_id, run_after=run_after
        )
    except Exception as err:  # a teardown's last word: the run has failed and paged already
        log.warning("The record of this unfinished run could not be written: %s", err)
        return f"Run record not written: {err}"
    return _said(f"Run recorded after record_state did not: {document_id}.")


def _tested(params: Mapping[str, Any]) -> bool:
    """A force_alert or notify=false run: a test, which leaves the incident alone."""
    return params["force_alert"] or not params["notify"]


def _write_run(
    store: Store,
    summary: dict[str, Any],
    evaluated: Evaluation,
    params: Mapping[str, Any],
    *,
    dag_id: str,
    run_id: str,
    run_after: datetime,
) -> str:
    """Write the run's record in `batch_cleanup_runs`; its id."""
    decision, tested = evaluated.decision, _tested(params)
    record = RunRecord(
        run_after,
        summary["batches_checked"],
        summary["stalled_count"],
        kind=Kind.TEST.value if tested else decision.kind.value,
        severity=None if tested else decision.severity,
        dag_id=dag_id,
    )
    document_id, document = run_document(record, run_id=run_id)
    store.write_run(document_id, document)
    log.info("Run recorded: %s (%s).", document_id, record.kind)
    return document_id


def _save_state(
    store: Store,
    evaluated: Evaluation,
    outcome: str | None,
    *,
    tested: bool,
    dag_id: str,
    run_id: str,
    run_after: datetime,
) -> str:
    """Save the state this run decided, if it delivered on it and it moved; says what it did."""
    decision, before, after = evaluated.decision, evaluated.before, evaluated.state
    if tested:
        return _said("State untouched (force_alert or notify=false).")
    if decision.notify and outcome != SENT:
        return _said(f"State unchanged: the {decision.kind} was not posted by this run ({outcome}).")
    if not after.moved_from(before):
        return _said("State unchanged.")
    conflict = store.save_state(
        dag_id,
        after.to_dict(),
        run_id=run_id,
        version=evaluated.version,
        carry=thread_posted,
        incident=incident_record(dag_id, decision, before, after, run_after),
        run_after=run_after,
    )
    if conflict:
        return _said(f"State left as another run wrote it: {conflict}.")
    return _said(f"State saved: {'open, ' + str(after.severity) if after.open else 'no open incident'}.")


def _said(text: str) -> str:
    log.info("%s", text)
    return text


def write_run_metrics(monitoring: Any, figures: RunFigures) -> bool:
    """Write the run's metrics; on any failure log one warning line with the cause and return False.

    Metrics must never fail the cleanup: the missing heartbeat is what tells that writes fail.
    """
    try:
        monitoring.write_run(lambda project: run_series(figures, project_id=project))
    except Exception as err:
        log.warning("%s The cleanup goes on without them.", " ".join(str(err).split()))
        return False
    return True


def run_figures(
    summary: dict[str, Any] | None,
    evaluation: dict[str, Any] | None,
    outcome: str | None,
    params: Mapping[str, Any],
    *,
    dag_id: str,
    end_time: datetime,
) -> RunFigures:
    """What the run did, for Cloud Monitoring; None where a failed task never learnt it (Airflow
    hands the teardown None for a task that failed or was skipped).

    A message counts as failed when the run had one to post and no send task said what became of it.
    """
    decision = Evaluation.from_xcom(evaluation).decision if evaluation else None
    due = decision is not None and decision.notify and params["notify"]
    return RunFigures(
        dag_id=dag_id,
        end_time=end_time,
        batches_checked=summary["batches_checked"] if summary else None,
        batches_auto_completed=summary["stalled_count"] if summary else None,
        cleanups_in_window=decision.count if decision else None,
        messages_sent=int(outcome == SENT),
        messages_failed=int(due and outcome is None),
        kind=decision.kind.value if decision else Kind.NONE.value,
        severity=decision.severity if decision else None,
    )


def read_labels(store: Store, slack: Channel, *, dag_id: str, now: datetime) -> str:
    """Read the responders' labels: in bot-token mode, the reactions on the first Slack message of
    the open incident and of each incident closed in the READ_HOURS before `now` (one
    `reactions.get` each, nothing else), written on the incident only when they changed. Says what
    it did; in webhook mode, that there is nothing to read.

    A call Slack does not answer ends the reading: its error, naming the connection and the method,
    fails the task (the next run reads again). The DAG makes this a teardown without retries or a
    failure callback, so it neither decides the run's state nor pages.
    """
    if not slack.threads:
        return _said(
            "Webhook mode: no reactions to read (a webhook tells no message id); incidents are "
            "labelled on the history page only."
        )
    if REAL_REACTION == NOISE_REACTION:  # every reaction would be read as noise
        raise ValueError(
            f"[batch_cleanup] real_reaction and noise_reaction are both :{REAL_REACTION}:, so a reaction "
            "cannot tell real from noise: set two different emoji. No reaction was read."
        )
    incidents = store.incidents_to_label(dag_id, now - timedelta(hours=labels.READ_HOURS), now)
    changed = []
    for incident in incidents:
        try:
            emoji = slack.reactions({"channel": incident["slack_channel"], "ts": incident["slack_ts"]})
        except ThreadGone as gone:
            log.info("Incident %s: its first Slack message is gone (%s).", incident["id"], gone.error)
            continue
        said = labels.reactions_of(emoji, real=REAL_REACTION, noise=NOISE_REACTION)
        fields = labels.changes(incident, said, now=now)
        if fields:
            store.update_labels(incident["id"], fields)
            label = (fields["label"] if "label" in fields else incident.get("label")) or {}
            value = label.get("value", "no label")
            changed.append(f"{incident['id']} ({value}; real {said['real']}, noise {said['noise']})")
    return _said(
        f"Read the reactions of {len(incidents)} incident(s); changed: {', '.join(changed) or 'none'}."
    )


# --- the weekly digest (dags/batch_cleanup_weekly_digest.py) -------------------------------------

# The week's events read for the repeat offenders, at most: a week of quarter-hour runs is 672.
WEEK_EVENTS = 2_000
# What the record of the digest's post calls it (delivery.post_once).
DIGEST = "digest"


def summarize_week(store: Store, *, run_after: datetime) -> dict[str, Any]:
    """The digest's figures for the seven New York days ending at the run's time, against the week
    before (`digest.summarize`): three bounded reads of the cleanup's records."""
    start = digest.week_start(run_after)
    before = digest.week_start(start)
    runs = store.runs_in(before, run_after, dag_id=DAG_ID)
    incidents = store.incidents_in(before, run_after, dag_id=DAG_ID)
    events = store.events_in(start, run_after, limit=WEEK_EVENTS)
    summary = digest.summarize(runs, events, incidents, end=run_after, events_cut=len(events) >= WEEK_EVENTS)
    log.info(
        "Week %s – %s: %d run records, %d cleanups; %d incidents opened.",
        summary["start"],
        summary["end"],
        summary["week"]["runs"],
        summary["week"]["cleanups"],
        summary["incident_count"],
    )
    return summary


def post_digest(
    summary: dict[str, Any],
    params: Mapping[str, Any],
    *,
    dag_id: str,
    run_id: str,
    run_after: datetime,
    base_url: str | None,
    store: Store,
    slack: Channel,
    posts: PostRecord | None,
    retry: bool = False,
) -> str:
    """Post the digest (marked TEST with `test_digest`) at most once per run: `sent`, or `rendered`
    with notify off. A `retry` finds what an earlier try posted (`delivery.post_once`)."""
    message = digest.message(summary, base_url=base_url, test=params["test_digest"])
    if not params["notify"]:
        log.info("notify=false: nothing sent. The digest would read:\n%s", message.text)
        return RENDERED
    post_once(
        message,
        dag_id=dag_id,
        run_id=run_id,
        kind=DIGEST,
        store=store,
        slack=slack,
        posts=posts,
        since=run_after,
        retry=retry,
    )
    log.info("Slack accepted the digest.")
    metrics.count(metrics.MESSAGES_SENT, severity=metrics.NO_SEVERITY, kind=DIGEST)
    return SENT
