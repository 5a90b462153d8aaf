"""Slack messages: each a plain-text fallback plus Block Kit blocks within Slack's limits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from batch_cleanup.policy import Decision, Kind
from batch_cleanup.ports import Message
from batch_cleanup.text import ago_text, clock_text, duration_text, in_window, is_absolute_url, plural, unique

MAX_LISTED_BATCHES = 20
# Slack cuts a section's text at 3,000 characters and refuses more than 50 blocks.
MAX_SECTION_CHARS = 3000
MAX_BLOCKS = 50

POSSIBLE_CAUSES = (
    "Workers crashing or timing out",
    "Dependency service failures",
    "Resource limits (CPU/memory)",
)
WHAT_TO_CHECK = "Check the worker logs and the coordinator's `/health/deep` endpoint."


@dataclass(frozen=True)
class Diagnosis:
    """What an alert carries besides the counts (steps.diagnose): `health`, lines already escaped
    for mrkdwn (diagnosis.health_summary); `logs_url`, None without a project."""

    health: tuple[str, ...]
    logs_url: str | None


def dag_run_url(base_url: str, dag_id: str, run_id: str) -> str:
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"


def listed(values: list[str], limit: int = MAX_LISTED_BATCHES, total: int | None = None) -> list[str]:
    """At most `limit` values, then a "+N more" line for the rest (of `total`, when the values
    are only the first of them)."""
    shown = values[:limit]
    total = max(len(values), total or 0)
    if total > len(shown):
        shown.append(f"+{total - len(shown)} more")
    return shown


def _section(markdown: str) -> dict[str, Any]:
    if len(markdown) > MAX_SECTION_CHARS:
        markdown = markdown[: MAX_SECTION_CHARS - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": markdown}}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def _bullets(lines: Iterable[str]) -> str:
    return "\n".join(f"• {line}" for line in lines)


_HEADERS = {
    "alert": ":rotating_light: {severity}: systemic batch stalls",
    "escalation": ":rotating_light: Escalated to {severity}: systemic batch stalls",
    "worsening": ":chart_with_upwards_trend: Getting worse ({severity}): systemic batch stalls",
    "reminder": ":hourglass: Still ongoing ({severity}): systemic batch stalls",
    "resolved": ":white_check_mark: RESOLVED: systemic batch stalls are over",
    "test": ":test_tube: TEST message from the stalled-batch cleanup, not an incident",
}
MAX_SHOWN_ID_CHARS = 100


def escape(text: str) -> str:
    """Slack's mrkdwn treats &, < and > as markup; batch ids and errors are data."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    """A mrkdwn link whose URL and label cannot break out of `<url|label>`."""
    safe_url = url.replace("&", "&amp;")
    for char, encoded in (("<", "%3C"), (">", "%3E"), ("|", "%7C"), (" ", "%20")):
        safe_url = safe_url.replace(char, encoded)
    return f"<{safe_url}|{escape(label)}>"


def _shown(batch_id: str) -> str:
    return batch_id if len(batch_id) <= MAX_SHOWN_ID_CHARS else batch_id[:MAX_SHOWN_ID_CHARS] + "…"


def alert(
    decision: Decision,
    *,
    window_minutes: int,
    threshold: int,
    completed_this_run: int,
    run_url: str | None,
    run_id: str,
    diagnosis: Diagnosis | None = None,
) -> Message:
    """The message for a policy decision. `threshold` is the one the count is compared with;
    `diagnosis` adds the coordinator's health and the worker-logs link. Without an absolute
    `run_url`, the run's id stands in for its link."""
    kind = decision.kind
    header = _HEADERS[kind].format(severity=decision.severity or "")
    facts = _facts(decision, window_minutes, threshold, completed_this_run)
    sections = _sections(decision)

    # Each part in the fallback text and in the blocks, side by side.
    text_lines = [header.split(" ", 1)[1], *(fact.replace("*", "") for fact in facts)]
    blocks = [_header(header), _section("\n".join(facts))]
    if diagnosis is not None:  # first after the counts: what on-call would look up next
        text_lines.append(f"{HEALTH_TITLE} " + "; ".join(diagnosis.health))
        blocks.append(_section(f"*{HEALTH_TITLE}*\n" + _bullets(diagnosis.health)))
    for title, items, code in sections:
        # Slack reads the fallback as mrkdwn too: a batch id must not become a link or a mention.
        text_lines.append(f"{title} " + ", ".join(escape(i) for i in items))
        blocks.append(
            _section(f"*{title}*\n" + _bullets(f"`{escape(i)}`" if code else escape(i) for i in items))
        )
    if kind is not Kind.RESOLVED:
        text_lines.append(WHAT_TO_CHECK)
        blocks.append(_section(f"_{WHAT_TO_CHECK}_"))
    if diagnosis is not None:
        text_lines.append(_logs_line(diagnosis, plain=True))
        blocks.append(_section(_logs_line(diagnosis, plain=False)))
    text_lines.append(_run_line(run_url, run_id))
    blocks.append(_run_block(run_url, run_id))
    return Message(text="\n".join(text_lines), blocks=blocks[:MAX_BLOCKS])


HEALTH_TITLE = "Coordinator health (/health/deep):"
NO_LOGS_LINK = "Worker logs: no link, the Google Cloud connection names no project"


def _logs_line(diagnosis: Diagnosis, *, plain: bool) -> str:
    if diagnosis.logs_url is None:
        return NO_LOGS_LINK
    if plain:
        return f"Worker logs of the window: {escape(diagnosis.logs_url)}"
    return link(diagnosis.logs_url, "Worker logs of the window (Logs Explorer)")


def _rate(decision: Decision) -> str | None:
    """What the rate rule read, as its words say it ("4.8× the 1 % objective over the last hour
    (22 of 456 batches auto-completed); 9.1× over the last run"); None under the count rule."""
    return None if decision.rate is None else escape(decision.rate["words"])


def _counted(decision: Decision, window_minutes: int, threshold: int) -> str:
    """The window's cleanups, bold, and under the count rule the threshold they are compared with."""
    cleanups, window = in_window(decision.count, window_minutes).split(" in ", 1)
    return f"*{cleanups}* in {window}" + (f" (threshold: {threshold})" if decision.rate is None else "")


def _facts(decision: Decision, window_minutes: int, threshold: int, completed: int) -> list[str]:
    kind, count, n, rate = decision.kind, decision.count, decision.double_recorded, _rate(decision)
    twice = []
    if n:
        twice.append(
            f"*{plural(n, 'cleanup')}* {'was' if n == 1 else 'were'} also recorded by the coordinator's own "
            "tracking (counted once here): turn it off, see docs/cutover.md"
        )
    if kind is Kind.RESOLVED:
        now = [f"Now {rate}", f"Now {in_window(count, window_minutes)}"] if rate else []
        return [
            f"Lasted *{duration_text(decision.duration)}*, "
            f"*{plural(decision.total_cleanups, 'cleanup')}* in total, peak severity "
            f"{decision.peak_severity}",
            *(now or [f"Now {in_window(count, window_minutes)} (below {threshold})"]),
            *twice,
        ]
    facts = [
        *([f"*Auto-completion rate:* {rate}"] if rate else []),
        _counted(decision, window_minutes, threshold),
    ]
    if kind is Kind.WORSENING:
        facts.append(f"Worse than the last message said: {decision.worse}")
    if kind in (Kind.REMINDER, Kind.WORSENING):
        facts.append(f"Open for {duration_text(decision.duration)}")
        if decision.deescalated_from:
            facts.append(f"De-escalated from {decision.deescalated_from} to {decision.severity}")
    if kind is Kind.TEST:
        facts.append("This only checks the Slack wiring: the incident state was not changed.")
    facts.append(f"*{plural(completed, 'batch', 'batches')}* auto-completed in this run")
    return facts + twice


def _sections(decision: Decision) -> list[tuple[str, list[str], bool]]:
    """(title, items, items are batch ids) for each list the message carries."""
    kind = decision.kind
    sections = []
    if decision.muted_before:
        sections.append(("While muted, these messages were held back:", list(decision.muted_before), False))
    if kind is Kind.RESOLVED:
        title, ids, total = "Batches involved:", decision.batch_ids, decision.batch_count
    elif kind in (Kind.REMINDER, Kind.WORSENING):
        title, ids, total = (
            "New batches since the last message:",
            decision.new_batch_ids,
            decision.new_batch_count,
        )
    else:
        title, ids, total = "Recently stalled batches:", decision.batch_ids, decision.batch_count
    sections.append((title, listed([_shown(b) for b in unique(ids)], total=total) or ["none"], True))
    offenders = [
        f"{_shown(batch)} stalled {plural(times, 'time')} in 24 h"
        for batch, times in decision.repeat_offenders
    ]
    if offenders:
        sections.append(("Repeat offenders:", listed(offenders), False))
    if kind is not Kind.RESOLVED:
        sections.append(("Possible causes:", list(POSSIBLE_CAUSES), False))
    return sections


def with_note(message: Message, note: str) -> Message:
    """`message` with a context line in front (in italics): why it is not where it would be."""
    note_block = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"_{escape(note)}_"}]}
    head, rest = message.blocks[:1], message.blocks[1:]
    return Message(text=f"{escape(note)}\n{message.text}", blocks=[*head, note_block, *rest][:MAX_BLOCKS])


_CARD_HEADERS = {
    True: ":rotating_light: {severity}, ongoing: systemic batch stalls",
    False: ":white_check_mark: RESOLVED after {lasted}: systemic batch stalls",
}


def incident_card(
    decision: Decision, *, window_minutes: int, threshold: int, now: datetime, run_url: str | None
) -> Message:
    """The incident's first message in bot-token mode, edited after each step: where the incident
    stands at `now`, in a few lines (severity, counts, since when, last update). The lists and the
    diagnosis are in the steps, each a reply in full below it."""
    ongoing = decision.kind is not Kind.RESOLVED
    opened = decision.opened_at or now
    # The incident's length by the runs' times (as the policy measured it); "ago" by the clock.
    ended = opened + decision.duration if decision.duration is not None else now
    lasted = duration_text(ended - opened)
    header = _CARD_HEADERS[ongoing].format(severity=decision.severity or "", lasted=lasted)
    peak = decision.peak_severity or decision.severity
    batches = plural(decision.batch_count or len(unique(decision.batch_ids)), "batch", "batches")
    if ongoing:
        rate = _rate(decision)
        facts = [
            *([f"*Rate:* {rate}"] if rate else []),
            f"{_counted(decision, window_minutes, threshold)}, {batches}",
            f"*Since* {clock_text(opened, now)}, {ago_text(now - opened)}"
            + (f" · peak {peak}" if peak != decision.severity else ""),
        ]
    else:
        facts = [
            f"*From* {clock_text(opened, now)} *to* {clock_text(ended, now)} · peak {peak} · "
            f"{plural(decision.total_cleanups, 'cleanup')} in total, {batches}"
        ]
    context = f"Updated {clock_text(now, now)}. Every step of the incident is in the thread, in full."
    text = "\n".join([header.split(" ", 1)[1], *(fact.replace("*", "") for fact in facts), context])
    blocks = [
        _header(header),
        _section("\n".join(facts)),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        *([_run_block(run_url, "")] if is_absolute_url(run_url) else []),
    ]
    return Message(text=text, blocks=blocks)


def run_label(run_id: str) -> str:
    """How a message names a run: `scheduled for 1 Mar 2026 12:00 UTC`, `manual, 1 Mar 2026 12:00 UTC`
    for Airflow's ids that end in a time (no ISO stamp in Slack), else the id itself (escaped)."""
    kind, _, stamp = run_id.partition("__")
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return escape(run_id)
    if kind == "scheduled":
        return f"scheduled for {clock_text(moment)}"
    return f"{escape(kind.replace('_', ' '))}, {clock_text(moment)}"


def _time_label(value: str) -> str:
    """An ISO time as `1 Mar 2026 12:00 UTC`; anything else as it is (escaped)."""
    try:
        return clock_text(datetime.fromisoformat(value))
    except (ValueError, TypeError):
        return escape(value)


def task_failure(*, dag_id: str, task_id: str, run_id: str, error: str, log_url: str | None) -> Message:
    """A task failed for good: the cleanup itself is broken, which must never look like a quiet hour.

    Every field is data (the error text may come from the coordinator): escaped in the fallback
    text and in the blocks alike. A `log_url` that is not absolute is left out; the ids remain.
    """
    error = escape(error if len(error) <= 1500 else error[:1500] + "…")
    dag, task, run = escape(dag_id), escape(task_id), run_label(run_id)
    text = f"Stalled-batch cleanup failed: task {task} of DAG {dag}, run {run}.\nError: {error}"
    blocks = [
        _header(":x: Stalled-batch cleanup failed"),
        _section(f"*DAG:* `{dag}`\n*Task:* `{task}`\n*Run:* {run}"),
        _section(f"*Error:*\n```{error}```"),
    ]
    if is_absolute_url(log_url):
        text += f"\nLog: {escape(log_url)}"
        blocks.append(_section(link(log_url, "Task log")))
    else:
        text += f"\n{_run_line(None, run_id)}"
        blocks.append(_run_block(None, run_id))
    return Message(text=text, blocks=blocks)


def run_overdue(
    *, dag_id: str, run_id: str, queued_at: str, minutes: int, run_url: str | None, state_note: str = ""
) -> Message:
    """A run missed its deadline: the cleanup is hung, which must not look like a quiet hour either.

    `state_note` says so when the run's current state could not be read (it may have ended since)."""
    dag, run, queued, note = escape(dag_id), run_label(run_id), _time_label(queued_at), escape(state_note)
    text = (
        f"Stalled-batch cleanup is overdue: run {run} of DAG {dag} has not finished "
        f"{plural(minutes, 'minute')} after it was queued (queued at {queued})."
        + (f"\n{note}" if note else "")
        + f"\n{_run_line(run_url, run_id)}"
    )
    blocks = [
        _header(":alarm_clock: Stalled-batch cleanup is overdue"),
        _section(
            f"*DAG:* `{dag}`\n*Run:* {run}\nNot finished {plural(minutes, 'minute')} after it was "
            f"queued ({queued}). Check the scheduler, the workers and the coordinator."
            + (f"\n_{note}_" if note else "")
        ),
        _run_block(run_url, run_id),
    ]
    return Message(text=text, blocks=blocks)


def run_failed(*, dag_id: str, run_id: str, reason: str, run_url: str | None) -> Message:
    """A run failed as a whole without a task saying why (timed out, for one)."""
    dag, run, reason = escape(dag_id), run_label(run_id), escape(reason)
    text = (
        f"Stalled-batch cleanup run failed: run {run} of DAG {dag}: {reason}.\n{_run_line(run_url, run_id)}"
    )
    blocks = [
        _header(":x: Stalled-batch cleanup run failed"),
        _section(f"*DAG:* `{dag}`\n*Run:* {run}\n*Why:* {reason}"),
        _run_block(run_url, run_id),
    ]
    return Message(text=text, blocks=blocks)


def _run_line(run_url: str | None, run_id: str) -> str:
    """The fallback text's line leading to the run: its link, or without an absolute URL its exact id
    (an identifier to search the UI for, not a time to read)."""
    return f"Airflow run: {escape(run_url if is_absolute_url(run_url) else run_id)}"


def _run_block(run_url: str | None, run_id: str) -> dict[str, Any]:
    """The "Open the DAG run" button; without an absolute URL (Slack would refuse the whole
    message), a line naming the run instead."""
    if is_absolute_url(run_url):
        button = {
            "type": "button",
            "text": {"type": "plain_text", "text": "Open the DAG run"},
            "url": run_url,
        }
        return {"type": "actions", "elements": [button]}
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Airflow run: `{escape(run_id)}`"}]}
