"""The alert policy, as one pure function: (state, what the window shows, now, config) → (decision, state).

An incident opens at WARNING or CRITICAL, reminds at most once per cooldown while unchanged,
escalates at once, says at once when it gets worse (more cleanups, or twice the batches, than any
message told), de-escalates quietly (noted in the next reminder) and ends with one RESOLVED
message. A run older than the state's last evaluation (a cleared or re-run old run) only logs
what it would have said. No I/O and no clock here: `now` is the run's time.

The state stays small however long an incident lasts: counters where lists would grow, the
window's event ids only, short hashes of the batches already seen, and capped lists to show.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ParamSpec

from batch_cleanup import rule_defaults as default
from batch_cleanup.names import RUN_EVERY_MINUTES
from batch_cleanup.rule_defaults import BURN_RATE, COUNT, check_rule, scheduled_runs
from batch_cleanup.rules import CRITICAL, WARNING, RateReading, RateRule
from batch_cleanup.text import duration_text, in_window, unique

log = logging.getLogger(__name__)
P = ParamSpec("P")

_RANK = {None: 0, WARNING: 1, CRITICAL: 2}

# Bounds of the state (and of the incident's document): each list is capped, whatever the ids.
LISTED_IDS = 100  # batch ids kept to show (the incident's, and those new since the last message) ...
LISTED_BYTES = 8_192  # ... within this many bytes each
KNOWN_BATCHES = 1_000  # short hashes of the batches seen, for "new since the last message"; oldest dropped
EVENT_KEYS = 500  # ids of the window's events (as many as `evaluate` reads), to count each cleanup once
MUTED_NOTES = 20  # decisions held back by a mute, named in the next message
# "Getting worse" by batches: at least twice the most told so far, and this many more (not 1 → 2).
WORSE_FACTOR = 2
WORSE_MORE = 3


class Kind(StrEnum):
    NONE = "none"
    ALERT = "alert"
    ESCALATION = "escalation"
    WORSENING = "worsening"
    REMINDER = "reminder"
    RESOLVED = "resolved"
    TEST = "test"


@dataclass(frozen=True)
class PolicyConfig:
    """The count rule's thresholds; the defaults, and why: `rule_defaults`."""

    warning_threshold: int = default.WARNING_THRESHOLD
    critical_threshold: int = default.CRITICAL_THRESHOLD
    window_minutes: int = default.WINDOW_MINUTES
    cooldown_minutes: int = default.COOLDOWN_MINUTES

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

    @property
    def scheduled_runs_in_window(self) -> int:
        """Scheduled runs in a window `(T − window, T]`: each records at most one cleanup."""
        return scheduled_runs(self.window_minutes)

    def unreachable(self) -> tuple[str, ...]:
        """A sentence for each threshold the window can never reach on the schedule alone (only
        manual or cleared runs would add the missing cleanups)."""
        runs = self.scheduled_runs_in_window
        return tuple(
            f"{name} {value} cannot be reached on the schedule alone: the {self.window_minutes}-minute "
            f"window holds {runs} scheduled runs (every {RUN_EVERY_MINUTES} minutes), each recording "
            "at most one cleanup"
            for name, value in (
                ("warning_threshold", self.warning_threshold),
                ("critical_threshold", self.critical_threshold),
            )
            if value > runs
        )


def rate_rule(params: Mapping[str, Any]) -> RateRule | None:
    """The volume-aware rule the run's params choose (`alert_rule`, `rate_objective_pct`), or None
    for the count rule. Params it cannot work with raise a ValueError that names them."""
    rule = params.get("alert_rule", COUNT)
    objective = params.get("rate_objective_pct", default.OBJECTIVE_PCT)
    check_rule(rule, objective)
    return RateRule(objective_pct=objective) if rule == BURN_RATE else None


@dataclass(frozen=True)
class State:
    """The incident as remembered between runs (one Firestore document per DAG)."""

    open: bool = False
    severity: str | None = None
    peak_severity: str | None = None
    opened_at: datetime | None = None
    # The newest run time that evaluated: an older run (cleared, re-run) neither posts nor moves the state.
    evaluated_at: datetime | None = None
    last_notified_at: datetime | None = None
    last_notified_kind: str | None = None
    last_notified_severity: str | None = None
    last_count: int = 0
    peak_count: int = 0
    # The most cleanups and window batches a message of this incident told (for "getting worse").
    told_count: int = 0
    told_batches: int = 0
    deescalated_from: str | None = None
    # The incident's batches: how many, the first ones (to show), and short hashes of those seen.
    batch_count: int = 0
    batch_ids: tuple[str, ...] = ()
    known_batches: tuple[str, ...] = ()
    # Seen in a window since the last message (a batch may leave the window before the next one):
    # the first ones to show, and how many more.
    unreported_batch_ids: tuple[str, ...] = ()
    unreported_more: int = 0
    # The window's events at the last evaluation (each cleanup is counted once) and the total so far.
    event_ids: tuple[str, ...] = ()
    total_cleanups: int = 0
    muted: tuple[str, ...] = ()
    notifications: int = 0
    # Bot-token mode: the incident's first Slack message, whose thread holds the later ones.
    slack_channel: str | None = None
    slack_ts: str | None = None
    # Why that thread ended (Slack's answer to an edit of its first message): the next message
    # starts a new thread and says so.
    slack_thread_gone: str | None = None

    def moved_from(self, before: State) -> bool:
        """Whether this state differs from `before` in more than `evaluated_at`: the run records
        keep that (`steps.evaluate` reads the newest), so a run that moves nothing else, a healthy
        one, saves no state."""
        return _with(self, {"evaluated_at": before.evaluated_at}) != before

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
        """The state in `data`; a field of the wrong type is logged by name and left at its default,
        and a document of the earlier, unbounded form is brought into the bounded one."""
        if not data:
            return cls()
        values = {}
        for key in _STATE_FIELDS.keys() & set(data):
            value = _checked(key, data[key])
            if value is not _BAD:
                values[key] = value
        values.update(_from_unbounded(data, values))
        return cls(**values)


_STATE_FIELDS = {f.name: f.default for f in dataclasses.fields(State)}
_STATE_TIMES = {"opened_at", "evaluated_at", "last_notified_at"}
_BAD = object()


def _checked(key: str, value: Any) -> Any:
    """`value` as field `key` holds it, or `_BAD` (logged) when it is of the wrong type."""
    default = _STATE_FIELDS[key]
    if key in _STATE_TIMES:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # not a time: refused below
                value = datetime.fromisoformat(value)
        ok = value is None or (isinstance(value, datetime) and value.tzinfo is not None)
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    elif isinstance(default, tuple):
        ok = isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)
        value = tuple(value) if ok else value
    else:  # str or None
        ok = value is None or isinstance(value, str)
    if ok:
        return value
    log.warning(
        "Alert state field %r has a value of the wrong type (%s): ignored.", key, type(value).__name__
    )
    return _BAD


def _from_unbounded(data: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The bounded fields of a document written before they existed: every reported batch id and
    every event id of the incident, and no record of what the messages told."""
    old: dict[str, Any] = {}
    reported = _checked("batch_ids", data["reported_batch_ids"]) if "reported_batch_ids" in data else _BAD
    if reported is not _BAD and "known_batches" not in data:
        seen = unique((*reported, *values.get("unreported_batch_ids", ())))
        old["batch_ids"] = _shown(seen)
        old["batch_count"] = len(seen)
        old["known_batches"] = tuple(_hash(b) for b in seen)[-KNOWN_BATCHES:]
    if "total_cleanups" not in data and "event_ids" in values:
        old["total_cleanups"] = len(values["event_ids"])
    if "event_ids" in values:
        old["event_ids"] = values["event_ids"][-EVENT_KEYS:]
    if "unreported_batch_ids" in values and len(values["unreported_batch_ids"]) > LISTED_IDS:
        shown = _shown(values["unreported_batch_ids"])
        old["unreported_batch_ids"] = shown
        old["unreported_more"] = len(values["unreported_batch_ids"]) - len(shown)
    if "told_count" not in data and values.get("open"):
        old["told_count"] = values.get("peak_count", 0)  # no WORSENING for what was already said
    return old


@functools.lru_cache(maxsize=4096)  # a batch is hashed at every run while in the window
def _hash(batch_id: str) -> str:
    return hashlib.sha256(batch_id.encode()).hexdigest()[:12]


def _event_key(event_id: str) -> str:
    """The event's id, or a hash of it when it is longer than the DAG's own (40 characters)."""
    return event_id if len(event_id) <= 40 else "#" + hashlib.sha256(event_id.encode()).hexdigest()[:39]


def _shown(batch_ids: Sequence[str], room: int = LISTED_IDS) -> tuple[str, ...]:
    """The first of `batch_ids` that fit the list caps (each string is its UTF-8 bytes + 1 in Firestore)."""
    if len(batch_ids) <= room and sum(map(len, batch_ids)) * 4 + len(batch_ids) <= LISTED_BYTES:
        return tuple(batch_ids)  # short enough whatever the characters (at most 4 bytes each)
    used = 0
    for index, batch_id in enumerate(batch_ids[:room]):
        used += len(batch_id.encode()) + 1
        if used > LISTED_BYTES:
            return tuple(batch_ids[:index])
    return tuple(batch_ids[:room])


@dataclass(frozen=True)
class Decision:
    kind: Kind
    severity: str | None
    count: int
    reason: str
    # The batches to name (capped) and how many there are in all (`batch_count` ≥ len(batch_ids)).
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
    batch_count: int = 0
    new_batch_count: int = 0
    # Batches auto-completed by the window's cleanups, and for a WORSENING what got worse.
    auto_completed: int = 0
    worse: str | None = None
    # Under the rate rule, its reading's figures (`RateReading.to_dict()`) and `words`; else None.
    rate: dict[str, Any] | None = None

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


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate` decided: the one value that crosses XCom to the tasks after it. The decision,
    the state before and after it, and the state's version (which the lease and the save check)."""

    decision: Decision
    before: State
    state: State
    version: int

    def to_xcom(self) -> dict[str, Any]:
        """JSON values only, and no secret: counts, batch ids, times, where the Slack thread is."""
        return {
            "decision": self.decision.to_dict(),
            "before": self.before.to_dict(iso=True),
            "state": self.state.to_dict(iso=True),
            "version": self.version,
        }

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any]) -> Evaluation:
        return cls(
            Decision.from_dict(value["decision"]),
            State.from_dict(value["before"]),
            State.from_dict(value["state"]),
            value["version"],
        )


def repeat_offenders(events_24h: Iterable[Sequence[str]], minimum: int = 2) -> tuple[tuple[str, int], ...]:
    """Batches auto-completed in `minimum` or more events, most often first (then by id)."""
    times = Counter(batch_id for batch_ids in events_24h for batch_id in set(batch_ids))
    ranked = sorted(((b, n) for b, n in times.items() if n >= minimum), key=lambda item: (-item[1], item[0]))
    return tuple(ranked)


def _older_runs_post_nothing(
    decide: Callable[P, tuple[Decision, State]],
) -> Callable[P, tuple[Decision, State]]:
    """A run older than `state.evaluated_at` (a cleared or re-run old run) decides NONE, leaves the
    state as it is and says in its reason what it would have said."""

    @functools.wraps(decide)
    def checked(*args: P.args, **kwargs: P.kwargs) -> tuple[Decision, State]:
        would, after = decide(*args, **kwargs)
        state, now = args[0], kwargs["now"]
        if state.evaluated_at is None or now >= state.evaluated_at:
            return would, after
        said = would.kind.value.upper() + (" (muted)" if would.suppressed else "")
        reason = (
            f"this run ({_hhmm(now)}) is older than the last evaluation ({_hhmm(state.evaluated_at)}): "
            f"a cleared or re-run old run posts nothing and leaves the incident as it is. "
            f"It would have said {said}: {would.reason}"
        )
        return dataclasses.replace(would, kind=Kind.NONE, suppressed=False, reason=reason), state

    return checked


@_older_runs_post_nothing
def decide(
    state: State,
    /,
    *,
    count: int,
    window_events: Mapping[str, Sequence[str]],
    offenders: tuple[tuple[str, int], ...],
    now: datetime,
    config: PolicyConfig,
    muted: bool = False,
    double_recorded: int = 0,
    auto_completed: int | None = None,
    rate: RateReading | None = None,
) -> tuple[Decision, State]:
    """What to tell Slack about this run, and the state to remember once that message is accepted.

    `window_events` maps the ids of the events read in the window to their batch ids (it may hold
    fewer events than `count` when the read was capped), newest first; `auto_completed` is the
    batches those events auto-completed (their `stalled_count`s; by default their batch ids). While
    `muted`, the decision is made and the state moves on as if delivered, and the decision is
    remembered in `muted` for the next message to name.

    With a `rate` (the rate rule's reading), the severity is the reading's, not the count's: an
    open incident whose reading has none stays open as a WARNING while the reading `holds`.
    """
    if auto_completed is None:
        auto_completed = sum(len(ids) for ids in window_events.values())
    batch_ids = unique(b for ids in window_events.values() for b in ids)
    if rate is None:
        severity, words, figures = config.severity(count), in_window(count, config.window_minutes), None
    else:
        severity, words = rate.severity, rate.words()
        figures = {**rate.to_dict(), "words": words}
        if severity is None and state.open and rate.holds:  # no flapping at the WARNING line
            severity, words = WARNING, f"{words} (below WARNING, but the incident holds)"
    common = {
        "count": count,
        "batch_ids": _shown(batch_ids),
        "batch_count": len(batch_ids),
        "repeat_offenders": offenders,
        "muted_before": state.muted,
        "double_recorded": double_recorded,
        "auto_completed": auto_completed,
        "rate": figures,
    }
    keys = tuple(_event_key(e) for e in window_events)
    # What the count is compared with (the rate's words say it themselves).
    below = f" < {config.warning_threshold}" if rate is None else ""
    at_least = f" ≥ {config.threshold(severity)}" if rate is None else ""

    if not state.open:
        if severity is None:
            reason = f"{words}{below} → no incident"
            return Decision(Kind.NONE, None, reason=reason, **common), _with(state, {"evaluated_at": now})
        decision = Decision(
            Kind.ALERT,
            severity,
            reason=f"{words}{at_least} → {severity}",
            new_batch_ids=common["batch_ids"],
            new_batch_count=len(batch_ids),
            opened_at=now,
            peak_severity=severity,
            **common,
        )
        opened = State(open=True, severity=severity, peak_severity=severity, opened_at=now, muted=state.muted)
        tracked = _tracked(opened, count=count, batch_ids=batch_ids, keys=keys, now=now)
        return _delivered(decision, opened, now, muted, tracked)

    # One `replace` per path, at most two with a message: the backtest runs this thousands of times.
    changes = _tracked(state, count=count, batch_ids=batch_ids, keys=keys, now=now)
    unreported = changes.get("unreported_batch_ids", state.unreported_batch_ids)
    opened_for = now - state.opened_at if state.opened_at else timedelta(0)
    incident = {"opened_at": state.opened_at, "duration": opened_for, "peak_severity": state.peak_severity}
    new = {
        "new_batch_ids": unreported,
        "new_batch_count": len(unreported) + changes.get("unreported_more", state.unreported_more),
    }

    if severity is None:
        decision = Decision(
            Kind.RESOLVED,
            state.peak_severity,
            reason=f"{words}{below or ', below the hold'} → RESOLVED after {duration_text(opened_for)}",
            total_cleanups=changes["total_cleanups"],
            batch_ids=changes.get("batch_ids", state.batch_ids),
            batch_count=changes.get("batch_count", state.batch_count),
            **{key: value for key, value in common.items() if key not in ("batch_ids", "batch_count")},
            **incident,
        )
        return _delivered(decision, State(evaluated_at=now, muted=state.muted), now, muted)

    if _RANK[severity] > _RANK[state.severity]:
        decision = Decision(
            Kind.ESCALATION,
            severity,
            reason=f"{words}{at_least} → {state.severity} escalates to {severity}",
            **new,
            **common,
            **{**incident, "peak_severity": severity},
        )
        escalated = {
            "severity": severity,
            "peak_severity": _higher(state.peak_severity, severity),
            "deescalated_from": None,
        }
        return _delivered(decision, state, now, muted, {**changes, **escalated})

    deescalated_from = state.deescalated_from
    if _RANK[severity] < _RANK[state.severity]:
        deescalated_from = state.severity
    changes["severity"] = severity
    worse = _worse(state, count, auto_completed)
    if worse:
        decision = Decision(
            Kind.WORSENING,
            severity,
            reason=f"{words}: {severity} is getting worse ({worse}) → message at once",
            worse=worse,
            deescalated_from=deescalated_from,
            **new,
            **common,
            **incident,
        )
        return _delivered(decision, state, now, muted, {**changes, "deescalated_from": None})
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
        quiet_state = _with(state, {**changes, "deescalated_from": deescalated_from})
        return Decision(Kind.NONE, severity, reason=quiet, **common, **incident), quiet_state
    decision = Decision(
        Kind.REMINDER,
        severity,
        reason=f"{words}: {severity} still ongoing after {duration_text(opened_for)} → reminder",
        deescalated_from=deescalated_from,
        **new,
        **common,
        **incident,
    )
    return _delivered(decision, state, now, muted, {**changes, "deescalated_from": None})


def _tracked(
    state: State, *, count: int, batch_ids: tuple[str, ...], keys: tuple[str, ...], now: datetime
) -> dict[str, Any]:
    """What this run's window changes in the open incident: counts, the window's events, the batches."""
    seen_events = set(state.event_ids)
    known = set(state.known_batches)
    new = [(b, h) for b, h in ((b, _hash(b)) for b in batch_ids) if h not in known]
    values: dict[str, Any] = {
        "evaluated_at": now,
        "last_count": count,
        "peak_count": max(state.peak_count, count),
        "event_ids": keys[:EVENT_KEYS],
        "total_cleanups": state.total_cleanups + sum(1 for key in keys if key not in seen_events),
    }
    if new:
        ids = [b for b, _ in new]
        unreported = _shown((*state.unreported_batch_ids, *ids))
        values |= {
            "batch_count": state.batch_count + len(new),
            "batch_ids": _shown((*state.batch_ids, *ids))
            if len(state.batch_ids) < LISTED_IDS
            else state.batch_ids,
            "known_batches": (*state.known_batches, *(h for _, h in new))[-KNOWN_BATCHES:],
            "unreported_batch_ids": unreported,
            "unreported_more": state.unreported_more
            + len(state.unreported_batch_ids)
            + len(ids)
            - len(unreported),
        }
    return values


def _worse(state: State, count: int, auto_completed: int) -> str | None:
    """What got worse since the messages told: more cleanups in the window than any of them said,
    or at least twice the batches (and `WORSE_MORE` more); None when nothing did."""
    if count > state.told_count:
        return f"{count} cleanups in the window, up from {state.told_count}"
    told = state.told_batches
    if told and auto_completed >= WORSE_FACTOR * told and auto_completed >= told + WORSE_MORE:
        return f"{auto_completed} batches auto-completed in the window, up from {told}"
    return None


def _delivered(
    decision: Decision, state: State, now: datetime, muted: bool, changes: Mapping[str, Any] | None = None
) -> tuple[Decision, State]:
    """`state` with `changes`, once `decision` is delivered (or, while muted, remembered as muted)."""
    values = {**(changes or {}), "muted": ()}
    if decision.kind is not Kind.RESOLVED:  # RESOLVED: the incident ends; only a muted trail survives.
        values |= {
            "last_notified_at": now,
            "last_notified_kind": decision.kind.value,
            "last_notified_severity": decision.severity,
            "told_count": max(state.told_count, decision.count),
            "told_batches": max(state.told_batches, decision.auto_completed),
            "unreported_batch_ids": (),
            "unreported_more": 0,
            "notifications": state.notifications + (0 if muted else 1),
        }
    if muted:
        note = f"{decision.kind.value.upper()} {decision.severity or ''} at {_hhmm(now)}".replace("  ", " ")
        values["muted"] = _noted(decision.muted_before, note)
        decision = dataclasses.replace(decision, suppressed=True, reason=decision.reason + " (muted)")
    return decision, _with(state, values)


def _with(state: State, changes: Mapping[str, Any]) -> State:
    """`dataclasses.replace`, at a third of its cost (the backtest makes one or two a run)."""
    return State(**{**state.__dict__, **changes})


def _hhmm(at: datetime) -> str:
    return f"{at.astimezone(UTC):%H:%M} UTC"


def _noted(notes: tuple[str, ...], note: str) -> tuple[str, ...]:
    """`notes` and `note`, at most `MUTED_NOTES` of them: the oldest become one "N earlier" line."""
    notes = (*notes, note)
    if len(notes) <= MUTED_NOTES:
        return notes
    earlier = 0
    if notes[0].endswith(_EARLIER):
        earlier, notes = int(notes[0].split()[0]), notes[1:]
    dropped = len(notes) - (MUTED_NOTES - 1)
    return (f"{earlier + dropped}{_EARLIER}", *notes[dropped:])


_EARLIER = " earlier messages"


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
        "total_cleanups": decision.total_cleanups if resolved else tracked.total_cleanups,
        "batch_count": decision.batch_count if resolved else tracked.batch_count,
        "batch_ids": list(decision.batch_ids if resolved else tracked.batch_ids),
        "notifications": before.notifications + (0 if decision.suppressed else 1),
    }


def forced_test_decision(
    count: int,
    window_events: Mapping[str, Sequence[str]],
    offenders: tuple[tuple[str, int], ...],
    rate: dict[str, Any] | None = None,
) -> Decision:
    """The `force_alert` message: today's numbers (and the rate rule's, as `Decision.rate` holds
    them), clearly marked as a test, no incident involved."""
    batch_ids = unique(b for ids in window_events.values() for b in ids)
    return Decision(
        Kind.TEST,
        None,
        count,
        reason="force_alert → TEST message",
        batch_ids=_shown(batch_ids),
        batch_count=len(batch_ids),
        repeat_offenders=offenders,
        rate=rate,
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
