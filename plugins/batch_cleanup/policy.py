"""The alert policy, as one pure function: (state, what the window shows, now, config) → (decision, state).

An incident opens at WARNING or CRITICAL, reminds at most once per cooldown while unchanged,
escalates at once, de-escalates quietly (noted in the next reminder) and ends with one
RESOLVED message. No I/O and no clock here: `now` is the run's time.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from batch_cleanup.text import duration_text, unique

WARNING = "WARNING"
CRITICAL = "CRITICAL"
_RANK = {None: 0, WARNING: 1, CRITICAL: 2}


class Kind(StrEnum):
    NONE = "none"
    ALERT = "alert"
    ESCALATION = "escalation"
    REMINDER = "reminder"
    RESOLVED = "resolved"
    TEST = "test"


@dataclass(frozen=True)
class PolicyConfig:
    warning_threshold: int = 3
    critical_threshold: int = 5
    window_minutes: int = 60
    cooldown_minutes: int = 60

    def __post_init__(self) -> None:
        for name in ("warning_threshold", "critical_threshold", "window_minutes", "cooldown_minutes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
        if self.critical_threshold <= self.warning_threshold:
            raise ValueError(
                f"critical_threshold ({self.critical_threshold}) must be greater than "
                f"warning_threshold ({self.warning_threshold})"
            )

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PolicyConfig:
        return cls(**{f.name: params[f.name] for f in dataclasses.fields(cls) if f.name in params})

    def severity(self, count: int) -> str | None:
        if count >= self.critical_threshold:
            return CRITICAL
        if count >= self.warning_threshold:
            return WARNING
        return None

    def threshold(self, severity: str | None) -> int:
        return self.critical_threshold if severity == CRITICAL else self.warning_threshold


@dataclass(frozen=True)
class State:
    """The incident as remembered between runs (one Firestore document per DAG)."""

    open: bool = False
    severity: str | None = None
    peak_severity: str | None = None
    opened_at: datetime | None = None
    last_notified_at: datetime | None = None
    last_notified_kind: str | None = None
    last_notified_severity: str | None = None
    last_count: int = 0
    peak_count: int = 0
    deescalated_from: str | None = None
    reported_batch_ids: tuple[str, ...] = ()
    # Seen in a window since the last message: a batch may leave the window before the next one.
    unreported_batch_ids: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    muted: tuple[str, ...] = ()
    notifications: int = 0
    # Bot-token mode: the incident's first Slack message, whose thread holds the later ones.
    slack_channel: str | None = None
    slack_ts: str | None = None
    # Why that thread ended (Slack's answer to an edit of its first message): the next message
    # starts a new thread and says so.
    slack_thread_gone: str | None = None

    @property
    def thread(self) -> dict[str, str] | None:
        """Where the incident's first message is (`{"channel", "ts"}`), if it was posted by a bot
        and its thread has not ended."""
        if self.open and self.slack_channel and self.slack_ts and not self.slack_thread_gone:
            return {"channel": self.slack_channel, "ts": self.slack_ts}
        return None

    def to_dict(self, *, iso: bool = False) -> dict[str, Any]:
        """Plain values for Firestore; with `iso`, datetimes as ISO strings for XCom."""
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
            elif iso and isinstance(value, datetime):
                data[key] = value.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> State:
        if not data:
            return cls()
        values = {}
        for key in _STATE_FIELDS & set(data):
            value = data[key]
            if isinstance(value, list):
                value = tuple(value)
            elif key in _STATE_TIMES and isinstance(value, str):
                value = datetime.fromisoformat(value)
            values[key] = value
        return cls(**values)


_STATE_FIELDS = {f.name for f in dataclasses.fields(State)}
_STATE_TIMES = {"opened_at", "last_notified_at"}


@dataclass(frozen=True)
class Decision:
    kind: Kind
    severity: str | None
    count: int
    reason: str
    batch_ids: tuple[str, ...] = ()
    new_batch_ids: tuple[str, ...] = ()
    repeat_offenders: tuple[tuple[str, int], ...] = ()
    opened_at: datetime | None = None
    duration: timedelta | None = None
    total_cleanups: int = 0
    peak_severity: str | None = None
    deescalated_from: str | None = None
    muted_before: tuple[str, ...] = ()
    suppressed: bool = False
    # Cleanups that the coordinator's own tracking recorded a second time (counted once).
    double_recorded: int = 0

    @property
    def notify(self) -> bool:
        """A message is due and may be posted (not muted)."""
        return self.kind is not Kind.NONE and not self.suppressed

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["kind"] = self.kind.value
        data["duration_seconds"] = self.duration.total_seconds() if self.duration is not None else None
        del data["duration"]
        data["opened_at"] = self.opened_at.isoformat() if self.opened_at else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        values = dict(data)
        values["kind"] = Kind(values["kind"])
        seconds = values.pop("duration_seconds", None)
        values["duration"] = timedelta(seconds=seconds) if seconds is not None else None
        values["opened_at"] = datetime.fromisoformat(values["opened_at"]) if values.get("opened_at") else None
        for key in ("batch_ids", "new_batch_ids", "muted_before"):
            values[key] = tuple(values.get(key) or ())
        values["repeat_offenders"] = tuple((b, n) for b, n in values.get("repeat_offenders") or ())
        return cls(**values)


def repeat_offenders(events_24h: Iterable[Sequence[str]], minimum: int = 2) -> tuple[tuple[str, int], ...]:
    """Batches auto-completed in `minimum` or more events, most often first (then by id)."""
    times = Counter(batch_id for batch_ids in events_24h for batch_id in set(batch_ids))
    ranked = sorted(((b, n) for b, n in times.items() if n >= minimum), key=lambda item: (-item[1], item[0]))
    return tuple(ranked)


def decide(
    state: State,
    *,
    count: int,
    window_events: Mapping[str, Sequence[str]],
    offenders: tuple[tuple[str, int], ...],
    now: datetime,
    config: PolicyConfig,
    muted: bool = False,
    double_recorded: int = 0,
) -> tuple[Decision, State]:
    """What to tell Slack about this run, and the state to remember once that message is accepted.

    `window_events` maps the ids of the events read in the window to their batch ids (it may hold
    fewer events than `count` when the read was capped). While `muted`, the decision is made and
    the state moves on as if delivered, and the decision is remembered in `muted` for the next
    message to name.
    """
    severity = config.severity(count)
    batch_ids = unique(b for ids in window_events.values() for b in ids)
    seen_events = unique((*state.event_ids, *window_events))
    words = f"{count} cleanups in the last {config.window_minutes} minutes"
    common = {
        "count": count,
        "batch_ids": batch_ids,
        "repeat_offenders": offenders,
        "muted_before": state.muted,
        "double_recorded": double_recorded,
    }

    if not state.open:
        if severity is None:
            reason = f"{words} < {config.warning_threshold} → no incident"
            return Decision(Kind.NONE, None, reason=reason, **common), state
        decision = Decision(
            Kind.ALERT,
            severity,
            reason=f"{words} ≥ {config.threshold(severity)} → {severity}",
            new_batch_ids=batch_ids,
            opened_at=now,
            peak_severity=severity,
            **common,
        )
        opened = State(
            open=True,
            severity=severity,
            peak_severity=severity,
            opened_at=now,
            last_count=count,
            peak_count=count,
        )
        return _delivered(decision, opened, now, batch_ids, seen_events, muted)

    unreported = tuple(
        b for b in unique((*state.unreported_batch_ids, *batch_ids)) if b not in state.reported_batch_ids
    )
    tracked = dataclasses.replace(
        state,
        last_count=count,
        peak_count=max(state.peak_count, count),
        event_ids=seen_events,
        unreported_batch_ids=unreported,
    )
    opened_for = now - state.opened_at if state.opened_at else timedelta(0)
    incident = {"opened_at": state.opened_at, "duration": opened_for, "peak_severity": state.peak_severity}

    if severity is None:
        involved = (*state.reported_batch_ids, *unreported)
        decision = Decision(
            Kind.RESOLVED,
            state.peak_severity,
            reason=f"{words} < {config.warning_threshold} → RESOLVED after {duration_text(opened_for)}",
            total_cleanups=len(seen_events),
            **{**common, "batch_ids": involved},
            **incident,
        )
        return _delivered(decision, State(), now, (), (), muted, closing=tracked)

    new_ids = unreported
    if _RANK[severity] > _RANK[state.severity]:
        decision = Decision(
            Kind.ESCALATION,
            severity,
            reason=f"{words} ≥ {config.threshold(severity)} → {state.severity} escalates to {severity}",
            new_batch_ids=new_ids,
            **common,
            **{**incident, "peak_severity": severity},
        )
        escalated = dataclasses.replace(
            tracked,
            severity=severity,
            peak_severity=_higher(state.peak_severity, severity),
            deescalated_from=None,
        )
        return _delivered(decision, escalated, now, unreported, seen_events, muted)

    deescalated_from = state.deescalated_from
    if _RANK[severity] < _RANK[state.severity]:
        deescalated_from = state.severity
    tracked = dataclasses.replace(tracked, severity=severity, deescalated_from=deescalated_from)
    cooled = state.last_notified_at is None or now - state.last_notified_at >= timedelta(
        minutes=config.cooldown_minutes
    )
    mute_just_ended = bool(state.muted) and not muted
    if not cooled and not mute_just_ended:
        quiet = (
            f"{words}: {severity} continues, last message {duration_text(now - state.last_notified_at)} ago"
        )
        quiet += f" < cooldown {config.cooldown_minutes} min → no message"
        if deescalated_from:
            quiet += f" (de-escalated from {deescalated_from}, noted in the next reminder)"
        return Decision(Kind.NONE, severity, reason=quiet, **common, **incident), tracked
    decision = Decision(
        Kind.REMINDER,
        severity,
        reason=f"{words}: {severity} still ongoing after {duration_text(opened_for)} → reminder",
        new_batch_ids=new_ids,
        deescalated_from=deescalated_from,
        **common,
        **incident,
    )
    return _delivered(
        decision, dataclasses.replace(tracked, deescalated_from=None), now, unreported, seen_events, muted
    )


def _delivered(
    decision: Decision,
    state: State,
    now: datetime,
    batch_ids: tuple[str, ...],
    seen_events: tuple[str, ...],
    muted: bool,
    closing: State | None = None,
) -> tuple[Decision, State]:
    """The state once `decision` is delivered (or, while muted, remembered as muted)."""
    if closing is not None:  # RESOLVED: the incident ends; only a muted trail survives.
        after = State()
    else:
        after = dataclasses.replace(
            state,
            last_notified_at=now,
            last_notified_kind=decision.kind.value,
            last_notified_severity=decision.severity,
            reported_batch_ids=unique((*state.reported_batch_ids, *batch_ids)),
            unreported_batch_ids=(),
            event_ids=seen_events,
            notifications=state.notifications + (0 if muted else 1),
        )
    if muted:
        note = (
            f"{decision.kind.value.upper()} {decision.severity or ''} at {now.isoformat(timespec='minutes')}"
        )
        after = dataclasses.replace(after, muted=(*decision.muted_before, note.replace("  ", " ")))
        return dataclasses.replace(decision, suppressed=True, reason=decision.reason + " (muted)"), after
    return decision, dataclasses.replace(after, muted=())


def _higher(a: str | None, b: str | None) -> str | None:
    return a if _RANK[a] >= _RANK[b] else b


def incident_record(
    dag_id: str, decision: Decision, before: State, after: State, now: datetime
) -> dict[str, Any] | None:
    """The alert-timeline entry a decision writes (id included), or None when it changes no incident."""
    if decision.kind in (Kind.NONE, Kind.TEST):
        return None
    opened_at = decision.opened_at or before.opened_at or now
    resolved = decision.kind is Kind.RESOLVED
    tracked = before if resolved else after
    return {
        "id": f"{dag_id}-{opened_at.astimezone(UTC):%Y%m%dT%H%M%SZ}",
        "dag_id": dag_id,
        "opened_at": opened_at,
        "closed_at": now if resolved else None,
        "severity": decision.severity,
        "peak_severity": _higher(before.peak_severity, decision.peak_severity or decision.severity),
        "peak_count": max(before.peak_count, decision.count if not resolved else 0),
        "total_cleanups": decision.total_cleanups if resolved else len(tracked.event_ids),
        "batch_ids": list(decision.batch_ids if resolved else tracked.reported_batch_ids),
        "notifications": before.notifications + (0 if decision.suppressed else 1),
    }


def forced_test_decision(
    count: int, window_events: Mapping[str, Sequence[str]], offenders: tuple[tuple[str, int], ...]
) -> Decision:
    """The `force_alert` message: today's numbers, clearly marked as a test, no incident involved."""
    return Decision(
        Kind.TEST,
        None,
        count,
        reason="force_alert → TEST message",
        batch_ids=unique(b for ids in window_events.values() for b in ids),
        repeat_offenders=offenders,
    )


def mute_until(value: str | None, *, variable: str) -> datetime | None:
    """The end of a silence from the Variable's text (UTC when it has no offset); None when unset."""
    if value is None or not value.strip():
        return None
    try:
        until = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"Variable {variable!r} must be an ISO date-time such as 2026-11-28T18:00:00+00:00, got {value!r}"
        ) from None
    return until if until.tzinfo else until.replace(tzinfo=UTC)
