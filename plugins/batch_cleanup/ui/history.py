"""The cleanup history the UI shows: hourly and daily buckets, rates, repeat offenders, incidents.

Pure: no Airflow, no Firestore, no clock. Every function takes the time it works for, and the
whole result is JSON-able, so the page and the JSON endpoints show the same numbers.

The auto-completion rate comes from the runs (`RunRecord`: the `batch_cleanup_runs` document each
run writes), so runs that found nothing stalled count in the denominator. Where no run record
covers a span (before the DAG wrote them, or expired), the rate falls back to the cleanups
(events), whose runs all stalled something: an upper bound, and said so by `rate_source`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from batch_cleanup.backtest import RealIncident, Replay, overlapped, score
from batch_cleanup.labels import REAL
from batch_cleanup.policy import CRITICAL, WARNING, Kind, repeat_offenders
from batch_cleanup.ports import RunRecord
from batch_cleanup.text import as_utc, duration_text, utc_z

# Range name → number of hourly buckets; the last bucket is the current (partial) hour.
RANGES: dict[str, int] = {"24h": 24, "7d": 7 * 24, "30d": 30 * 24}
DEFAULT_RANGE = "24h"
# The alert-quality figures and the patterns need longer spans: a day holds too few incidents.
QUALITY_RANGES: dict[str, int] = {"7d": 7 * 24, "30d": 30 * 24, "90d": 90 * 24}
DEFAULT_QUALITY_RANGE = "30d"
# Share of checked batches that may need auto-completion.
RATE_TARGET = 0.01
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Window:
    """Hour-aligned span `(start, end]` of a range, as the DAG reads its window (`events.window_start`):
    `hours` buckets `(hour, hour + 1 h]`, the last one holding `now`. A bucket's count is then what
    a 60-minute window of the run at its end counted."""

    name: str
    start: datetime
    end: datetime
    hours: int

    def __contains__(self, ts: datetime) -> bool:
        return self.start < ts.astimezone(UTC) <= self.end

    @property
    def days(self) -> list[date]:
        first, last = self.start.date(), (self.end - HOUR).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass(frozen=True)
class Event:
    """The fields of a `batch_cleanup_events` document the history needs."""

    timestamp: datetime
    stalled_count: int
    batches_checked: int
    batch_ids: tuple[str, ...] = ()


@dataclass
class Sums:
    """How many runs (or cleanups), and the batches they auto-completed and checked.

    A window's cleanups come from Firestore's aggregation query, so they are exact even when the
    events read are cut; runs and days are added up here, one `add` at a time.
    """

    count: int = 0
    stalled: int = 0
    checked: int = 0

    def add(self, stalled: int, checked: int) -> None:
        self.count += 1
        self.stalled += stalled
        self.checked += checked


@dataclass(frozen=True)
class Incident:
    """A `batch_cleanup_incidents` document."""

    id: str
    opened_at: datetime
    closed_at: datetime | None
    severity: str | None
    peak_severity: str | None
    peak_count: int
    total_cleanups: int
    batch_ids: tuple[str, ...]
    notifications: int
    # labels.py's label (real, noise or disputed; from the page or from reactions), or None.
    label: Mapping[str, Any] | None = None

    @classmethod
    def from_document(cls, data: Mapping[str, Any]) -> Incident:
        """From the document's fields and its `id`."""
        doc_id = data["id"]
        return cls(
            id=doc_id,
            opened_at=as_utc(data["opened_at"], f"{doc_id}.opened_at"),
            closed_at=as_utc(data["closed_at"], f"{doc_id}.closed_at") if data.get("closed_at") else None,
            severity=data.get("severity"),
            peak_severity=data.get("peak_severity") or data.get("severity"),
            peak_count=int(data.get("peak_count") or 0),
            total_cleanups=int(data.get("total_cleanups") or 0),
            batch_ids=tuple(data.get("batch_ids") or ()),
            notifications=int(data.get("notifications") or 0),
            label=data.get("label") if isinstance(data.get("label"), Mapping) else None,
        )


@dataclass(frozen=True)
class Labelled:
    """An incident document with a label: its id, `label.value`, and when it was open."""

    id: str
    label: str
    opened_at: datetime
    closed_at: datetime | None

    @classmethod
    def from_document(cls, data: Mapping[str, Any]) -> Labelled | None:
        """From the document's fields and its `id`; None for a document without a label (or with a
        label that has no value)."""
        doc_id, label = data["id"], data.get("label")
        value = label.get("value") if isinstance(label, Mapping) else None
        if not isinstance(value, str) or not value:
            return None
        closed_at = data.get("closed_at")
        return cls(
            doc_id,
            value,
            as_utc(data["opened_at"], f"{doc_id}.opened_at"),
            as_utc(closed_at, f"{doc_id}.closed_at") if closed_at else None,
        )


def real_incidents(documents: Iterable[Mapping[str, Any]], until: datetime) -> list[RealIncident] | None:
    """The incidents labelled real among `documents` (each with its `id`), oldest first, one still
    open lasting until `until`; None when no incident is labelled at all (then nothing can be scored)."""
    labelled = [found for d in documents if (found := Labelled.from_document(d))]
    if not labelled:
        return None
    real = [RealIncident(i.opened_at, i.closed_at or until, i.id) for i in labelled if i.label == REAL]
    return sorted(real, key=lambda r: r.start)


def window(name: str, now: datetime, ranges: Mapping[str, int] = RANGES) -> Window:
    """The window of range `name` (`24h`, `7d`, `30d`; or one of `ranges`) that ends with the hour
    holding `now`."""
    if name not in ranges:
        raise ValueError(f"range must be one of {', '.join(ranges)}; got {name!r}")
    now = as_utc(now, "now")
    end = now.replace(minute=0, second=0, microsecond=0)
    if end < now:  # the hour holding `now`, which closes it when on the hour
        end += HOUR
    hours = ranges[name]
    return Window(name, end - hours * HOUR, end, hours)


def hourly_cleanups(events: Iterable[Event], win: Window) -> list[int]:
    """Cleanups (events) per UTC hour of the window, oldest hour first; events outside are ignored."""
    counts = [0] * win.hours
    for event in events:
        index = _index(event.timestamp, win.start, HOUR)
        if 0 <= index < win.hours:
            counts[index] += 1
    return counts


def hour_labels(win: Window) -> list[str]:
    return [utc_z(win.start + i * HOUR) for i in range(win.hours)]


def rate(stalled: int, checked: int) -> float | None:
    """Stalled ÷ checked; None when nothing was checked (no rate, rather than a made-up 0)."""
    return stalled / checked if checked else None


def rate_fields(runs: Sums, cleanups: Sums) -> dict[str, Any]:
    """`stalled`, `checked`, `rate` over the run records when there are any; else over the cleanups.

    `rate_source` says which: `"runs"` (every run counts, also those that found nothing stalled),
    `"cleanups"` (only runs that wrote an event: an upper bound of the true rate), or None.
    """
    if runs.count:
        source, sums = "runs", runs
    else:
        source, sums = ("cleanups" if cleanups.count else None), cleanups
    return {
        "stalled": sums.stalled,
        "checked": sums.checked,
        "rate": rate(sums.stalled, sums.checked),
        "runs": runs.count,
        "rate_source": source,
    }


def daily(events: Iterable[Event], win: Window, checks: Iterable[RunRecord] = ()) -> list[dict[str, Any]]:
    """Per UTC day of the window: cleanups, batches auto-completed and checked, the rate, its source."""
    cleanups = {day: Sums() for day in win.days}
    runs = {day: Sums() for day in win.days}
    for event in events:
        if (day := _day_in(event.timestamp, win)) is not None:
            cleanups[day].add(event.stalled_count, event.batches_checked)
    for check in checks:
        if (day := _day_in(check.run_after, win)) is not None:
            runs[day].add(check.stalled_count, check.batches_checked)
    return [
        {"day": day.isoformat(), "cleanups": cleanups[day].count, **rate_fields(runs[day], cleanups[day])}
        for day in win.days
    ]


def _day_in(ts: datetime, win: Window) -> date | None:
    """The UTC day of the hour bucket holding `ts` (so midnight closes the day before)."""
    return (win.start + _index(ts, win.start, HOUR) * HOUR).date() if ts in win else None


def offender_rows(events: Iterable[Event], *, minimum: int = 2, limit: int = 10) -> list[dict[str, Any]]:
    """The policy's repeat offenders (auto-completed in at least `minimum` cleanups), most often first,
    then most recently seen, with when each was last seen."""
    events = list(events)
    last_seen: dict[str, datetime] = {}
    for event in events:
        for batch_id in event.batch_ids:
            last_seen[batch_id] = max(event.timestamp, last_seen.get(batch_id, event.timestamp))
    counted = repeat_offenders((event.batch_ids for event in events), minimum=minimum)
    ranked = sorted(counted, key=lambda item: (-item[1], -last_seen[item[0]].timestamp(), item[0]))
    return [
        {"batch_id": batch, "cleanups": times, "last_seen": utc_z(last_seen[batch])}
        for batch, times in ranked[:limit]
    ]


def incident_rows(documents: Iterable[Mapping[str, Any]], win: Window, now: datetime) -> list[dict[str, Any]]:
    """The incidents among `documents` (each with its `id`) that overlap the window, newest first;
    an open one lasts until `now`."""
    now = as_utc(now, "now")
    rows = []
    unique = {d["id"]: Incident.from_document(d) for d in documents}.values()
    for incident in sorted(unique, key=lambda i: i.opened_at, reverse=True):
        if incident.opened_at > win.end or (incident.closed_at and incident.closed_at <= win.start):
            continue
        seconds = int(((incident.closed_at or now) - incident.opened_at).total_seconds())
        rows.append(
            {
                "id": incident.id,
                "open": incident.closed_at is None,
                "severity": incident.severity,
                "peak_severity": incident.peak_severity,
                "opened_at": utc_z(incident.opened_at),
                "closed_at": _z(incident.closed_at),
                "duration_seconds": max(seconds, 0),
                "duration": duration_text(seconds),
                "peak_count": incident.peak_count,
                "total_cleanups": incident.total_cleanups,
                "batches": len(incident.batch_ids),
                "notifications": incident.notifications,
                "label": label_json(incident.label),
            }
        )
    return rows


def label_json(label: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """An incident's label as the page and the API show it: value, source, who (Slack user ids or an
    Airflow user name), when, and the note (text as written: escaped where shown)."""
    if not label:
        return None
    at = label.get("at")
    return {
        "value": str(label.get("value")),
        "source": str(label.get("source")),
        "by": [str(who) for who in label.get("by") or ()],
        "at": _z(at) if isinstance(at, datetime) else None,
        "note": label.get("note") if isinstance(label.get("note"), str) else None,
    }


def current_state(state: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The alert state document as the page shows it; an empty document means no incident ever."""
    opened_at = state.get("opened_at")
    is_open = bool(state.get("open"))
    return {
        "open": is_open,
        "severity": state.get("severity") if is_open else None,
        "peak_severity": state.get("peak_severity") if is_open else None,
        "opened_at": _z(opened_at, "state.opened_at") if is_open else None,
        "open_for": duration_text((now - opened_at).total_seconds()) if is_open and opened_at else None,
        "last_count": int(state.get("last_count") or 0),
        "peak_count": int(state.get("peak_count") or 0),
        "last_notified_at": _z(state.get("last_notified_at"), "state.last_notified_at"),
        "last_notified_kind": state.get("last_notified_kind"),
        "muted_decisions": len(state.get("muted") or ()),
        "updated_at": _z(state.get("updated_at"), "state.updated_at"),
    }


def run_outcome(run: Mapping[str, Any] | None, run_event: Event | None) -> dict[str, Any] | None:
    """The last DAG run and what it cleaned up: its event's count, 0 when it succeeded without one."""
    if run is None:
        return None
    if run_event is not None:
        stalled: int | None = run_event.stalled_count
    else:
        # `record_event` writes whenever something stalled, so a successful run without an event
        # cleaned up nothing; for a run still going or failed, it is not known yet.
        stalled = 0 if run.get("state") == "success" else None
    return {
        "run_id": run["run_id"],
        "state": run.get("state"),
        "run_type": run.get("run_type"),
        **{key: _z(run.get(key), f"run.{key}") for key in ("run_after", "start_date", "end_date")},
        "stalled_count": stalled,
    }


def cleanups(
    events: Sequence[Event],
    totals: Sums,
    win: Window,
    *,
    truncated: bool,
    warning: int,
    critical: int,
    checks: Iterable[RunRecord] = (),
    checks_truncated: bool = False,
) -> dict[str, Any]:
    """The hourly chart's data, the window's totals, and how many hours reached each threshold.

    `totals` are the window's cleanups (Firestore's aggregation: every event); the rate is over
    `checks`, the run records of the window, or over the cleanups when there are none (`rate_fields`).
    """
    counts = hourly_cleanups(events, win)
    runs = Sums()
    for check in checks:
        if check.run_after in win:
            runs.add(check.stalled_count, check.batches_checked)
    return {
        "hours": hour_labels(win),
        "cleanups": counts,
        "peak": max(counts, default=0),
        "hours_at_warning": sum(1 for count in counts if warning <= count < critical),
        "hours_at_critical": sum(1 for count in counts if count >= critical),
        "totals": {"cleanups": totals.count, **rate_fields(runs, totals), "runs_truncated": checks_truncated},
        "events_read": len(events),
        "events_truncated": truncated,
    }


def backtest_comparison(
    current: Replay,
    candidate: Replay,
    *,
    events_read: int,
    events_truncated: bool,
    real: Sequence[RealIncident] | None = None,
    records_read: int = 0,
    records_truncated: bool = False,
) -> dict[str, Any]:
    """The two replays of the same runs side by side: rule, settings, totals, incidents (newest
    first), and where incidents are labelled (`real` not None) each side's score and the answer.

    `missed` counts the other side's incidents during which this side had none open; an incident's
    `matched` says whether the other side had one open at some time during it, its `real` which
    incidents labelled real it was open during.
    """
    runs = current.runs
    sides = {
        "current": _replay_json(current, candidate, real),
        "candidate": _replay_json(candidate, current, real),
    }
    return {
        "runs": len(runs),
        "first_run": utc_z(runs[0]) if runs else None,
        "last_run": utc_z(runs[-1]) if runs else None,
        "until": utc_z(current.until),
        "events_read": events_read,
        "events_truncated": events_truncated,
        "run_records_read": records_read,
        "run_records_truncated": records_truncated,
        "real_incidents": None if real is None else [_real_json(r, current.until) for r in reversed(real)],
        "answer": answer(sides["current"], sides["candidate"]),
        **sides,
    }


MESSAGE_KINDS = (Kind.ALERT, Kind.ESCALATION, Kind.WORSENING, Kind.REMINDER, Kind.RESOLVED)


def _replay_json(replay: Replay, other: Replay, real: Sequence[RealIncident] | None) -> dict[str, Any]:
    until = replay.until
    incidents = sorted(replay.incidents, key=lambda i: i.opened_at, reverse=True)
    return {
        "rule": replay.rule,
        "rate": dataclasses.asdict(replay.rate_rule) if replay.rate_rule else None,
        "settings": dataclasses.asdict(replay.config),
        # A threshold above the window's scheduled runs fires only with manual or cleared runs.
        "unreachable": _unreachable(replay),
        "totals": {
            "incidents": len(incidents),
            "messages_sent": replay.messages_sent,
            "critical_pages": replay.critical_pages,
            "hours_at_warning": round(replay.time_at[WARNING] / HOUR, 2),
            "hours_at_critical": round(replay.time_at[CRITICAL] / HOUR, 2),
            "missed": len(replay.missed(other)),
        },
        "messages": {kind.value: replay.messages.get(kind.value, 0) for kind in MESSAGE_KINDS},
        "score": score(replay.incidents, real),
        "incidents": [
            {
                "opened_at": utc_z(incident.opened_at),
                "closed_at": _z(incident.closed_at),
                "open": incident.closed_at is None,
                "peak_severity": incident.peak_severity,
                "peak_count": incident.peak_count,
                "duration_seconds": int((incident.end(until) - incident.opened_at).total_seconds()),
                "duration": duration_text(incident.end(until) - incident.opened_at),
                "messages": incident.messages,
                "matched": any(incident.overlaps(theirs, until) for theirs in other.incidents),
                "real": [r.id for r in overlapped(incident, real or ())],
            }
            for incident in incidents
        ],
    }


def _unreachable(replay: Replay) -> list[str]:
    """A sentence for each severity the side's rule can never reach: a count threshold above the
    window's scheduled runs, a rate objective whose CRITICAL would need more than every batch."""
    rate = replay.rate_rule
    if rate is None:
        return list(replay.config.unreachable())
    needed = rate.critical_factor * rate.objective_pct
    if needed <= 100:
        return []
    return [
        f"rate_objective_pct {rate.objective_pct:g} cannot page CRITICAL: {rate.critical_factor:g}× it is "
        f"{needed:g} % of the batches checked"
    ]


def _real_json(incident: RealIncident, until: datetime) -> dict[str, Any]:
    return {
        "id": incident.id,
        "start": utc_z(incident.start),
        "end": utc_z(incident.end),
        "open": incident.end >= until,
    }


def answer(current: Mapping[str, Any], candidate: Mapping[str, Any]) -> str | None:
    """The backtest's question, "would the candidate have paged less without missing the real
    incidents?", answered in one sentence from the two sides' scores; None without scores."""
    now, then = current["score"], candidate["score"]
    if now is None or then is None:
        return None
    ours, theirs = f"the candidate ({candidate['rule']})", f"the current settings ({current['rule']})"
    real = _count(now["real_caught"] + now["real_missed"], "real incident")
    missed, was_missed = then["real_missed"], now["real_missed"]
    if missed > was_missed:
        return f"No: {ours} would have missed {missed} of the {real}, {theirs} {was_missed}."
    if not now["real_caught"] + now["real_missed"]:
        caught = "; no incident of the range was labelled real"
    elif missed == was_missed:
        caught = f", and missed as many of the {real} ({missed})"
    else:
        caught = f", and missed fewer of the {real} ({missed}, against {was_missed})"
    noise, was_noise = then["noise_pages"], now["noise_pages"]
    if noise == was_noise:
        return (
            f"No: {ours} would have paged for noise as often as {theirs} ({_count(noise, 'time')}){caught}."
        )
    verdict = "Yes" if noise < was_noise else "No"
    paged = f"paged {_count(noise, 'time')} for noise instead of {was_noise} with {theirs}"
    return f"{verdict}: {ours} would have {paged}{caught}."


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _z(moment: datetime | None, name: str = "the time") -> str | None:
    return utc_z(moment, name=name) if moment else None


def window_json(win: Window) -> dict[str, Any]:
    return {"range": win.name, "start": utc_z(win.start), "end": utc_z(win.end), "hours": win.hours}


def _index(ts: datetime, start: datetime, step: timedelta) -> int:
    """The bucket `(start + i·step, start + (i + 1)·step]` that holds `ts`: `i`."""
    return -((start - ts.astimezone(UTC)) // step) - 1
