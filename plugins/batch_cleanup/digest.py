"""The weekly digest: the cleanup's week against the week before, and the Slack message telling it.

Pure: `summarize` takes what the steps read (run records, the week's events, the incidents) and
the week's end (the run's time, never the clock); `message` turns its summary, as XCom holds it,
into Block Kit and a plain-text fallback. A week is seven days of New York time, so the week
holding a DST change is 167 or 169 hours long. Every string from Firestore is escaped for mrkdwn,
and a link appears only with an absolute `[api] base_url` (config.api_base_url).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from batch_cleanup import quality
from batch_cleanup.messages import (
    bullets,
    button_block,
    escape,
    header_block,
    listed,
    section_block,
    shown_id,
)
from batch_cleanup.names import DAG_ID, RUN_COLLECTION
from batch_cleanup.policy import repeat_offenders
from batch_cleanup.ports import Message, RunRecord, StoredEvent
from batch_cleanup.rules import RateRule
from batch_cleanup.text import as_utc, duration_text, is_absolute_url, plural, utc_z

NEW_YORK = ZoneInfo("America/New_York")
WEEK = timedelta(days=7)
# The design notes' objective (fewer than 1 % of the batches checked need auto-completion), as the
# rate rule holds it.
OBJECTIVE_PCT = RateRule().objective_pct
TOP_OFFENDERS = 5
BUSIEST_HOURS = 3
# The incidents the summary keeps (and the message lists); the count says how many more there were.
MAX_LISTED_INCIDENTS = 10
HISTORY_PATH = "/batch-cleanup/"
# Where a label came from (the label contract's `source`), in words.
SOURCES = {"page": "on the history page", "reactions": "by reactions in Slack"}

_HEADERS = {
    False: ":bar_chart: Weekly digest: stalled-batch cleanup",
    True: ":test_tube: TEST weekly digest: stalled-batch cleanup",
}
TEST_NOTE = (
    "TEST: triggered with `test_digest` to check the digest's wiring. The figures are real; "
    "the weekly digest still comes on Monday."
)


def week_start(end: datetime) -> datetime:
    """The start (UTC) of the seven New York days ending at `end`: the same wall-clock time a week
    earlier, so 168 hours, or 167 or 169 across a DST change."""
    end = as_utc(end, "the week's end")
    # A plain datetime: Python's aware arithmetic is wall-clock arithmetic, whatever class `end` is.
    plain = datetime(*end.timetuple()[:6], end.microsecond, tzinfo=UTC)
    return (plain.astimezone(NEW_YORK) - WEEK).astimezone(UTC)


def summarize(
    runs: Iterable[RunRecord],
    events: Sequence[StoredEvent],
    incidents: Iterable[Mapping[str, Any]],
    *,
    end: datetime,
    events_cut: bool = False,
) -> dict[str, Any]:
    """The digest's figures (JSON-able, for XCom) for the week ending at `end`, and the week before.

    `runs` and `incidents` span both weeks (the rest is ignored); `events` are the week's cleanup
    events, for the repeat offenders (`events_cut`: only the newest of them were read).
    """
    end = as_utc(end, "the week's end")
    start = week_start(end)
    before = week_start(start)
    runs, incidents = list(runs), [i for i in incidents if isinstance(i.get("opened_at"), datetime)]
    this_week = [r for r in runs if start < r.run_after <= end]
    opened = sorted((i for i in incidents if start < i["opened_at"] <= end), key=lambda i: i["opened_at"])
    hours = Counter(r.run_after.astimezone(NEW_YORK).hour for r in this_week if r.stalled_count > 0)
    offenders = repeat_offenders(event.batch_ids for event in events)
    return {
        "start": utc_z(start),
        "end": utc_z(end),
        "week": _totals(this_week),
        "before": _totals(r for r in runs if before < r.run_after <= start),
        "incidents": [_incident(i) for i in opened[:MAX_LISTED_INCIDENTS]],
        "incident_count": len(opened),
        "incidents_before": sum(before < i["opened_at"] <= start for i in incidents),
        "quality": quality.figures(incidents, start=start, end=end)["total"],
        "offenders": [list(offender) for offender in offenders[:TOP_OFFENDERS]],
        "offender_count": len(offenders),
        "offenders_cut": events_cut,
        "busiest_hours": sorted(hours.items(), key=lambda hour_n: (-hour_n[1], hour_n[0]))[:BUSIEST_HOURS],
    }


def _totals(runs: Iterable[RunRecord]) -> dict[str, int]:
    """Runs, cleanups (runs that auto-completed any batch), batches checked and auto-completed."""
    runs = list(runs)
    return {
        "runs": len(runs),
        "cleanups": sum(r.stalled_count > 0 for r in runs),
        "checked": sum(r.batches_checked for r in runs),
        "auto_completed": sum(r.stalled_count for r in runs),
    }


def _incident(incident: Mapping[str, Any]) -> dict[str, Any]:
    """What the digest says of one incident: when, how bad, how long, and its label."""
    label = incident.get("label") if isinstance(incident.get("label"), Mapping) else {}
    closed = incident.get("closed_at")
    cleanups = incident.get("total_cleanups")
    return {
        "opened_at": utc_z(incident["opened_at"]),
        "closed_at": utc_z(closed) if isinstance(closed, datetime) else None,
        "severity": str(incident.get("peak_severity") or incident.get("severity") or "?"),
        "cleanups": cleanups if isinstance(cleanups, int) and not isinstance(cleanups, bool) else None,
        "label": str(label["value"]) if label.get("value") else None,
        "source": str(label["source"]) if label.get("source") else None,
    }


def rate_pct(totals: Mapping[str, int]) -> float | None:
    """Batches auto-completed per 100 checked; None when none were checked (no rate, not a 0)."""
    return 100 * totals["auto_completed"] / totals["checked"] if totals["checked"] else None


def against_objective(rate: float, objective: float = OBJECTIVE_PCT) -> str:
    """`within the 1 % objective`, or `2.4× the 1 % objective`."""
    if rate <= objective:
        return f"within the {objective:g} % objective"
    return f"{rate / objective:.1f}× the {objective:g} % objective"


def message(summary: Mapping[str, Any], *, base_url: str | None, test: bool = False) -> Message:
    """The digest's Slack message; `test` marks it as a TEST (the `test_digest` param)."""
    start, end = (datetime.fromisoformat(summary[key]) for key in ("start", "end"))
    week, before = summary["week"], summary["before"]
    header = _HEADERS[test]
    parts: list[tuple[str, list[str]]] = [
        (f"{_day(start)} – {_day(end)}, New York time", _week_lines(week, before)),
        ("Incidents", _incident_lines(summary)),
    ]
    offenders = [f"`{escape(shown_id(b))}` {plural(n, 'time')}" for b, n in summary["offenders"]]
    if offenders:
        cut = " (of the newest cleanups read)" if summary.get("offenders_cut") else ""
        title = f"Repeat offenders, auto-completed most often{cut}"
        parts.append((title, listed(offenders, limit=TOP_OFFENDERS, total=summary["offender_count"])))
    hours = [f"{h:02d}:00–{(h + 1) % 24:02d}:00: {plural(n, 'cleanup')}" for h, n in summary["busiest_hours"]]
    if hours:
        parts.append(("Busiest hours, New York time", hours))

    blocks = [header_block(header)]
    text = [header.split(" ", 1)[1]]
    if test:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": TEST_NOTE}]})
        text.append(TEST_NOTE)
    for title, lines in parts:
        blocks.append(section_block(f"*{title}*\n" + bullets(lines)))
        text.append(f"{title}:\n" + bullets(lines))  # Slack reads the fallback as mrkdwn too
    history = f"{base_url.rstrip('/')}{HISTORY_PATH}" if base_url and is_absolute_url(base_url) else None
    if history:
        blocks.append(button_block(history, "Open the cleanup history"))
        text.append(f"Cleanup history: {escape(history)}")
    else:
        where = "Cleanup history: Browse → Batch cleanup in Airflow"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": where}]})
        text.append(where)
    return Message(text="\n".join(text), blocks=blocks)


def _week_lines(week: Mapping[str, int], before: Mapping[str, int]) -> list[str]:
    """The week's cleanups, batches auto-completed and rate, each against the week before."""
    if not week["runs"]:
        lines = [
            f"*No cleanups this week, and no run of the cleanup recorded either* (`{RUN_COLLECTION}`): "
            f"check that `{DAG_ID}` is running and unpaused"
        ]
    elif not week["cleanups"]:
        lines = [
            f"*No cleanups this week*: {plural(week['runs'], 'run')} checked "
            f"{week['checked']:,} batches, and none needed auto-completing "
            f"(week before: {plural(before['cleanups'], 'cleanup')})"
        ]
    else:
        lines = [
            f"*Cleanups:* {week['cleanups']:,} (week before: {before['cleanups']:,})",
            f"*Batches auto-completed:* {week['auto_completed']:,} "
            f"(week before: {before['auto_completed']:,})",
        ]
    rate, earlier = rate_pct(week), rate_pct(before)
    if rate is not None:
        was = f"{earlier:.2f} %" if earlier is not None else "no batches checked"
        lines.append(
            f"*Auto-completion rate:* {rate:.2f} % of {week['checked']:,} batches checked, "
            f"{against_objective(rate)} (week before: {was})"
        )
    return lines


def _incident_lines(summary: Mapping[str, Any]) -> list[str]:
    """How many incidents opened, each (the first few) with its label, then the labels' figures."""
    count, before = summary["incident_count"], summary["incidents_before"]
    if not count:
        return [f"None opened (week before: {before})"]
    lines = [f"*{plural(count, 'incident')} opened* (week before: {before})"]
    shown = [_incident_line(incident) for incident in summary["incidents"]]
    lines += listed(shown, limit=MAX_LISTED_INCIDENTS, total=count)
    figures = summary["quality"]
    said = f"*Labels:* {escape(str(figures['said']))}"
    precision = figures.get("precision")
    if precision:
        value, low, high = (round(100 * precision[key]) for key in ("value", "low", "high"))
        said += f"; precision {value} % (95 % interval {low}–{high} %)"
    lines.append(said)
    resolve = figures.get("resolve_minutes") or {}
    if resolve.get("median") is not None:
        lines.append(
            f"*Time to resolve:* median {duration_text(resolve['median'] * 60)}, "
            f"p90 {duration_text(resolve['p90'] * 60)}"
        )
    return lines


def _incident_line(incident: Mapping[str, Any]) -> str:
    opened = datetime.fromisoformat(incident["opened_at"])
    closed = incident["closed_at"]
    lasted = "still open"
    if closed:
        lasted = f"resolved after {duration_text(datetime.fromisoformat(closed) - opened)}"
    cleanups = f", {plural(incident['cleanups'], 'cleanup')}" if incident["cleanups"] is not None else ""
    label = "not labelled"
    if incident["label"]:
        source = incident["source"]
        source = f" ({SOURCES.get(source) or escape(source)})" if source else ""
        label = f"labelled *{escape(incident['label'])}*{source}"
    return f"{escape(incident['severity'])}, opened {_day(opened)}, {lasted}{cleanups}: {label}"


def _day(moment: datetime) -> str:
    """`Mon 2 Mar 09:00` in New York time."""
    local = moment.astimezone(NEW_YORK)
    return f"{local:%a} {local.day} {local:%b %H:%M}"
