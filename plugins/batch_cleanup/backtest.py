"""The threshold backtest: recorded cleanups replayed through the alert policy, one scheduled run at a time.

At each run time it does what `steps.evaluate` does: it counts the events of the window ending at
the run's time (start exclusive, `events.window_start`), reads the events of the last
`OFFENDER_HOURS` when the count reaches the warning threshold or an incident is open, counts a
cleanup the coordinator recorded a second time once, and asks the same `policy.decide`. It names no
repeat offenders: who they are changes no incident, message or page, and counting them would cost
each run a pass over a day of events. The state then moves on as `record_state` saves it after Slack
accepted the message: no mute, no `force_alert`, every message delivered.

Under the rate rule (`rules.BURN_RATE`), each run's severity comes from the run records of the
rule's span ending at its time (the record of the run itself included, as `evaluate` counts its
own figures), and the events are read when that reading has a severity or an incident is open.

Pure: the events, the run records, the run times and the end of the span are arguments. The
events and the records are sorted once, and each run finds its slices by bisection, so a run
costs a few bisections unless it reads.

`score` holds a replay's incidents against the incidents people labelled real: which of those it
caught, how soon, and how often it paged for nothing.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from batch_cleanup.events import window_start
from batch_cleanup.names import OFFENDER_HOURS, RUN_EVERY_MINUTES
from batch_cleanup.policy import CRITICAL, WARNING, Kind, PolicyConfig, State, decide
from batch_cleanup.ports import RunRecord, StoredEvent
from batch_cleanup.rules import COUNT, RULES, RateReading, RateRule, reading
from batch_cleanup.text import as_utc

# The DAG's schedule (names.SCHEDULE), as the same quarter-hours in UTC.
RUN_EVERY = timedelta(minutes=RUN_EVERY_MINUTES)
OFFENDER_SPAN = timedelta(hours=OFFENDER_HOURS)


def scheduled_runs(start: datetime, end: datetime) -> list[datetime]:
    """The DAG's scheduled run times `t` with `start` ≤ `t` ≤ `end`, in UTC, oldest first."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    late = (start - start.replace(hour=0, minute=0, second=0, microsecond=0)) % RUN_EVERY
    first = start + (RUN_EVERY - late) % RUN_EVERY
    if first > end:
        return []
    return [first + i * RUN_EVERY for i in range((end - first) // RUN_EVERY + 1)]


def replayed_runs(start: datetime, end: datetime, evaluated: Iterable[datetime]) -> list[datetime]:
    """The run times to replay in `[start, end]`, oldest first: those at which the DAG evaluated
    (Airflow's metadata: manual and cleared runs too, off the schedule's ticks), and before the
    first of them the schedule's ticks (history older than the metadata keeps, or none at all).

    Replaying only the ticks missed what the DAG decided between them: a WARNING opened by a run
    after the last tick showed as no incident.
    """
    start, end = as_utc(start, "start"), as_utc(end, "end")
    actual = sorted({at for at in (as_utc(t, "a run time") for t in evaluated) if start <= at <= end})
    if not actual:
        return scheduled_runs(start, end)
    return [tick for tick in scheduled_runs(start, actual[0]) if tick < actual[0]] + actual


class Read(NamedTuple):
    """A run's read of the events: the copies its count leaves out, the window's events (newest
    first), the copies among all it read (the decision says how many), and the batches the
    window's events auto-completed."""

    left_out: int
    window_events: dict[str, list[str]]
    copies: int
    auto_completed: int = 0


class Recorded:
    """The events of a span, sorted by time, and what each run's `evaluate` would read of them.

    `within` is the run's timeout (`config.RUN_TIMEOUT`): how long after a DAG event the
    coordinator's copy of the same cleanup may be stamped (`events.double_recorded`).
    """

    def __init__(self, events: Iterable[StoredEvent], *, within: timedelta) -> None:
        self.events = sorted(events, key=lambda event: event.timestamp)
        self.times = [event.timestamp for event in self.events]
        self.within = within
        # Each coordinator-written copy → the newest DAG event it copies: the run counts it once
        # while that DAG event is among the events it reads (`double_recorded` of the same read).
        recorded: dict[frozenset[str], list[datetime]] = {}
        for event in self.events:
            if event.dag_id:
                recorded.setdefault(frozenset(event.batch_ids), []).append(event.timestamp)
        self.copies: list[tuple[datetime, str, datetime]] = []  # (its time, its id, the original's)
        for event in self.events:
            if event.dag_id:
                continue
            times = recorded.get(frozenset(event.batch_ids), [])
            newest = bisect_right(times, event.timestamp) - 1  # the newest DAG event at or before it
            if newest >= 0 and event.timestamp < times[newest] + within:
                self.copies.append((event.timestamp, event.id, times[newest]))
        self.copy_times = [at for at, _, _ in self.copies]

    def count(self, start: datetime, end: datetime) -> int:
        """Events with `start` < `timestamp` ≤ `end`, as `count_in` counts them (copies included)."""
        return bisect_right(self.times, end) - bisect_right(self.times, start)

    def read(self, run_after: datetime, start: datetime) -> Read:
        """What `evaluate` reads at `run_after` for the window opening after `start`."""
        since = run_after - OFFENDER_SPAN
        first, last = bisect_right(self.times, since), bisect_right(self.times, run_after)
        in_window = bisect_right(self.times, start, lo=first)
        # Up to the run's timeout: a copy of this run's own cleanup is stamped after the run's time.
        read = self.copies[
            bisect_right(self.copy_times, since) : bisect_right(self.copy_times, run_after + self.within)
        ]
        copied = {copy_id for at, copy_id, original in read if original > since and at <= run_after}
        left_out = sum(1 for at, copy_id, _ in read if copy_id in copied and at > start)
        counted = [e for e in reversed(self.events[in_window:last]) if e.id not in copied]
        window = {e.id: e.batch_ids for e in counted}
        copies = sum(1 for _, _, original in read if original > since)
        return Read(left_out, window, copies, sum(e.auto_completed for e in counted))


NOTHING_READ = Read(0, {}, 0)  # a healthy run reads no event


class Sent(NamedTuple):
    """One message of a replayed incident: when, which kind (`Kind` value), at which severity."""

    at: datetime
    kind: str
    severity: str | None

    @property
    def pages(self) -> bool:
        """A CRITICAL page: an ALERT or an ESCALATION at CRITICAL."""
        return self.severity == CRITICAL and self.kind in (Kind.ALERT, Kind.ESCALATION)

    @property
    def says_open(self) -> bool:
        """Tells of an open incident (all but the RESOLVED): what can catch a real incident."""
        return self.kind != Kind.RESOLVED


@dataclass(frozen=True)
class Incident:
    """One incident of a replay: from its ALERT to its RESOLVED (`closed_at` None while still open),
    with its messages (`sent`, oldest first)."""

    opened_at: datetime
    closed_at: datetime | None
    peak_severity: str | None
    peak_count: int
    messages: int
    sent: tuple[Sent, ...] = ()

    def end(self, until: datetime) -> datetime:
        return self.closed_at or until

    def overlaps(self, other: Incident, until: datetime) -> bool:
        return self.opened_at < other.end(until) and other.opened_at < self.end(until)


@dataclass(frozen=True)
class Replay:
    """What one set of thresholds would have done: incidents, messages, and time at each severity.
    `runs` are the replayed run times; `rate_rule` is the rate rule's settings (None under `count`)."""

    config: PolicyConfig
    runs: Sequence[datetime]
    until: datetime
    incidents: tuple[Incident, ...]
    messages: Mapping[str, int]
    critical_pages: int
    time_at: Mapping[str, timedelta]
    rule: str = COUNT
    rate_rule: RateRule | None = None

    @property
    def messages_sent(self) -> int:
        return sum(self.messages.values())

    def missed(self, other: Replay) -> tuple[Incident, ...]:
        """The incidents of `other` during which this replay had no incident open."""
        return tuple(
            i for i in other.incidents if not any(i.overlaps(mine, self.until) for mine in self.incidents)
        )


class Readings:
    """The rate rule's reading at any run time, from run records sorted once."""

    def __init__(self, runs: Iterable[RunRecord], rule: RateRule) -> None:
        self.runs = sorted(runs, key=lambda run: run.run_after)
        self.times = [run.run_after for run in self.runs]
        self.rule = rule

    def at(self, run_after: datetime) -> RateReading:
        """`rules.reading` of the records with `run_after − span` < their time ≤ `run_after`."""
        first = bisect_right(self.times, run_after - self.rule.span)
        return reading(self.runs[first : bisect_right(self.times, run_after, lo=first)], run_after, self.rule)


def replay(
    recorded: Recorded,
    times: Sequence[datetime],
    config: PolicyConfig,
    /,
    *,
    until: datetime | None = None,
    runs: Sequence[RunRecord] = (),
    rule: str = COUNT,
    rate_rule: RateRule | None = None,
) -> Replay:
    """`config`'s decisions at each of the run `times` (oldest first), starting with no incident open.

    Under `rule` `burn_rate`, the severity is `rate_rule`'s (by default `RateRule()`) reading of the
    run records `runs`; `config` still sets the window the count is read in, and the cooldown.
    Each run's state lasts until the next run, the last one's until `until` (by default one
    schedule interval after it); an incident still open then is reported open.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if until is None:
        if not times:
            raise ValueError("replay needs `until` when there are no runs")
        until = times[-1] + RUN_EVERY
    rate_rule = (rate_rule or RateRule()) if rule != COUNT else None
    readings = Readings(runs, rate_rule) if rate_rule is not None else None
    state = State()
    incidents: list[Incident] = []
    messages: Counter[str] = Counter()
    pages = 0
    sent: list[Sent] = []  # the open incident's messages
    time_at = {WARNING: timedelta(0), CRITICAL: timedelta(0)}
    for index, run_after in enumerate(times):
        start = window_start(run_after, config.window_minutes)
        count = recorded.count(start, run_after)
        rate = readings.at(run_after) if readings is not None else None
        alarming = count >= config.warning_threshold if rate is None else rate.severity is not None
        read = NOTHING_READ
        if alarming or state.open:  # when evaluate reads the events
            read = recorded.read(run_after, start)
        decision, after = decide(
            state,
            count=count - read.left_out,
            window_events=read.window_events,
            offenders=(),
            now=run_after,
            config=config,
            double_recorded=read.copies,
            auto_completed=read.auto_completed,
            rate=rate,
        )
        if decision.kind is Kind.ALERT:
            sent = []
        if decision.notify:
            messages[decision.kind.value] += 1
            sent.append(Sent(run_after, decision.kind.value, decision.severity))
            pages += sent[-1].pages
        if decision.kind is Kind.RESOLVED:
            incidents.append(_incident(state, closed_at=run_after, sent=sent))
        state = after
        if state.open:
            following = times[index + 1] if index + 1 < len(times) else until
            time_at[state.severity] += max(following - run_after, timedelta(0))
    if state.open:
        incidents.append(_incident(state, closed_at=None, sent=sent))
    return Replay(config, times, until, tuple(incidents), dict(messages), pages, time_at, rule, rate_rule)


def _incident(state: State, *, closed_at: datetime | None, sent: Sequence[Sent]) -> Incident:
    """The incident `state` tracks, its peak as `incident_record` writes it (not the RESOLVED run's count)."""
    return Incident(state.opened_at, closed_at, state.peak_severity, state.peak_count, len(sent), tuple(sent))


# --- scoring against labelled incidents -----------------------------------------------------------


@dataclass(frozen=True)
class RealIncident:
    """An incident people labelled real: from `start` to `end` (the span's end while still open);
    `id` names its document."""

    start: datetime
    end: datetime
    id: str | None = None


def overlapped(incident: Incident, real: Iterable[RealIncident]) -> tuple[RealIncident, ...]:
    """The real incidents during which `incident` was open (one still open lasts on), in `real`'s order."""
    closed = incident.closed_at
    return tuple(r for r in real if incident.opened_at < r.end and (closed is None or r.start < closed))


def score(incidents: Iterable[Incident], real: Sequence[RealIncident] | None) -> dict[str, Any] | None:
    """How a replay's `incidents` fared against the `real` ones; None when nothing was labelled
    (`real` None: no score, rather than zeros that read as a perfect one).

    A real incident is caught by the first message that told of an open incident (not a RESOLVED)
    sent while it went on (`start` ≤ sent < `end`): an incident opened before it, for something
    else, catches it only with a reminder, an escalation or a "getting worse" sent during it.
    `detection_delay_minutes` is the median, over the real incidents caught, from `start` to that
    message (None when none was). `noise_pages`: incidents open during no real incident.
    """
    if real is None:
        return None
    incidents = list(incidents)
    told = sorted(message.at for incident in incidents for message in incident.sent if message.says_open)
    delays = []
    for incident in real:
        first = bisect_left(told, incident.start)
        if first < len(told) and told[first] < incident.end:
            delays.append((told[first] - incident.start) / timedelta(minutes=1))
    return {
        "real_caught": len(delays),
        "real_missed": len(real) - len(delays),
        "noise_pages": sum(1 for incident in incidents if not overlapped(incident, real)),
        "critical_pages": sum(message.pages for incident in incidents for message in incident.sent),
        "detection_delay_minutes": round(statistics.median(delays), 1) if delays else None,
    }
