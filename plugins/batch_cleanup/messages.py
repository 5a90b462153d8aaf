"""Slack messages: each a plain-text fallback plus Block Kit blocks within Slack's limits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from batch_cleanup.text import duration_text, unique

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


@dataclass(frozen=True)
class Message:
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


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
    decision: dict[str, Any],
    *,
    window_minutes: int,
    threshold: int,
    completed_this_run: int,
    run_url: str,
    diagnosis: Diagnosis | None = None,
) -> Message:
    """The message for a policy decision (`Decision.to_dict()`): alert, escalation, reminder,
    resolved or test. `threshold` is the one the count is compared with; `diagnosis` adds the
    coordinator's health and the worker-logs link."""
    kind = decision["kind"]
    header = _HEADERS[kind].format(severity=decision.get("severity") or "")
    facts = _facts(decision, window_minutes, threshold, completed_this_run)
    sections = _sections(decision)

    text_lines = [header.split(" ", 1)[1], *(fact.replace("*", "") for fact in facts)]
    # Slack reads the fallback as mrkdwn too: a batch id must not become a link or a mention.
    if diagnosis is not None:
        text_lines.append(f"{HEALTH_TITLE} " + "; ".join(diagnosis.health))
    text_lines += [f"{title} " + ", ".join(escape(i) for i in items) for title, items, _ in sections]
    if kind != "resolved":
        text_lines.append(WHAT_TO_CHECK)
    if diagnosis is not None:
        text_lines.append(_logs_line(diagnosis, plain=True))
    text_lines.append(f"Airflow run: {escape(run_url)}")

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:150]}},
        _section("\n".join(facts)),
    ]
    if diagnosis is not None:  # first after the counts: what on-call would look up next
        blocks.append(_section(f"*{HEALTH_TITLE}*\n" + _bullets(diagnosis.health)))
    for title, items, code in sections:
        blocks.append(
            _section(f"*{title}*\n" + _bullets(f"`{escape(i)}`" if code else escape(i) for i in items))
        )
    if kind != "resolved":
        blocks.append(_section(f"_{WHAT_TO_CHECK}_"))
    if diagnosis is not None:
        blocks.append(_section(_logs_line(diagnosis, plain=False)))
    blocks.append(_run_button(run_url))
    return Message(text="\n".join(text_lines), blocks=blocks[:MAX_BLOCKS])


HEALTH_TITLE = "Coordinator health (/health/deep):"
NO_LOGS_LINK = "Worker logs: no link, the Google Cloud connection names no project"


def _logs_line(diagnosis: Diagnosis, *, plain: bool) -> str:
    if diagnosis.logs_url is None:
        return NO_LOGS_LINK
    if plain:
        return f"Worker logs of the window: {escape(diagnosis.logs_url)}"
    return link(diagnosis.logs_url, "Worker logs of the window (Logs Explorer)")


DOUBLE_RECORDED = (
    "*{n} cleanups* were also recorded by the coordinator's own tracking (counted once here): "
    "turn it off, see docs/cutover.md"
)


def _facts(decision: dict[str, Any], window_minutes: int, threshold: int, completed: int) -> list[str]:
    twice = [DOUBLE_RECORDED.format(n=decision["double_recorded"])] if decision.get("double_recorded") else []
    kind, count = decision["kind"], decision["count"]
    if kind == "resolved":
        return [
            f"Lasted *{duration_text(decision.get('duration_seconds'))}*, *{decision['total_cleanups']} "
            f"cleanups* in total, peak severity {decision.get('peak_severity')}",
            f"Now {count} cleanups in the last {window_minutes} minutes (below {threshold})",
            *twice,
        ]
    facts = [f"*{count} cleanups* in the last {window_minutes} minutes (threshold: {threshold})"]
    if kind == "worsening":
        facts.append(f"Worse than the last message said: {decision['worse']}")
    if kind in ("reminder", "worsening"):
        facts.append(f"Open for {duration_text(decision.get('duration_seconds'))}")
        if decision.get("deescalated_from"):
            facts.append(f"De-escalated from {decision['deescalated_from']} to {decision['severity']}")
    if kind == "test":
        facts.append("This only checks the Slack wiring: the incident state was not changed.")
    facts.append(f"*{completed} batches* auto-completed in this run")
    return facts + twice


def _sections(decision: dict[str, Any]) -> list[tuple[str, list[str], bool]]:
    """(title, items, items are batch ids) for each list the message carries."""
    kind = decision["kind"]
    sections = []
    if decision.get("muted_before"):
        sections.append(
            ("While muted, these messages were held back:", list(decision["muted_before"]), False)
        )
    if kind == "resolved":
        title, ids, total = "Batches involved:", decision.get("batch_ids"), decision.get("batch_count")
    elif kind in ("reminder", "worsening"):
        title, ids = "New batches since the last message:", decision.get("new_batch_ids")
        total = decision.get("new_batch_count")
    else:
        title, ids, total = (
            "Recently stalled batches:",
            decision.get("batch_ids"),
            decision.get("batch_count"),
        )
    sections.append((title, listed([_shown(b) for b in unique(ids or [])], total=total) or ["none"], True))
    offenders = [
        f"{_shown(batch)} stalled {times} times in 24 h"
        for batch, times in decision.get("repeat_offenders") or []
    ]
    if offenders:
        sections.append(("Repeat offenders:", listed(offenders), False))
    if kind != "resolved":
        sections.append(("Possible causes:", list(POSSIBLE_CAUSES), False))
    return sections


def with_note(message: Message, note: str) -> Message:
    """`message` with a context line in front (in italics): why it is not where it would be."""
    note_block = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"_{escape(note)}_"}]}
    head, rest = message.blocks[:1], message.blocks[1:]
    return Message(text=f"{escape(note)}\n{message.text}", blocks=[*head, note_block, *rest][:MAX_BLOCKS])


_CARD_HEADERS = {
    True: ":rotating_light: {severity}, ongoing: systemic batch stalls",
    False: ":white_check_mark: RESOLVED: systemic batch stalls are over",
}


def incident_card(
    decision: dict[str, Any], *, window_minutes: int, threshold: int, updated_at: str, run_url: str
) -> Message:
    """What the incident's first message shows once edited (bot-token mode): where the incident stands
    after `decision`, at a glance; each step's own message is in the thread below it."""
    ongoing = decision["kind"] != "resolved"
    header = _CARD_HEADERS[ongoing].format(severity=decision.get("severity") or "")
    since = escape(str(decision.get("opened_at") or "?"))
    lasted = duration_text(decision.get("duration_seconds"))
    now = f"*Now:* {decision['count']} cleanups in the last {window_minutes} minutes"
    peak = decision.get("peak_severity") or decision.get("severity")
    if ongoing:
        facts = [
            f"{now} (threshold: {threshold})",
            f"*Since:* {since} (open for {lasted})",
            f"*Peak:* {peak}",
        ]
    else:
        facts = [
            f"*Lasted:* {lasted}, from {since}",
            f"*{decision['total_cleanups']} cleanups* in total, peak severity {peak}",
            f"{now} (below {threshold})",
        ]
    shown = [_shown(b) for b in unique(decision.get("batch_ids") or [])]
    batches = listed(shown, total=decision.get("batch_count")) or ["none"]
    context = f"Updated {escape(updated_at)}. Every step of the incident is in the thread."
    text = "\n".join([header.split(" ", 1)[1], *(fact.replace("*", "") for fact in facts), context])
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:150]}},
        _section("\n".join(facts)),
        _section("*Batches involved:*\n" + _bullets(f"`{escape(b)}`" for b in batches)),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        _run_button(run_url),
    ]
    return Message(text=text, blocks=blocks)


def task_failure(*, dag_id: str, task_id: str, run_id: str, error: str, log_url: str) -> Message:
    """A task failed for good: the cleanup itself is broken, which must never look like a quiet hour.

    Every field is data (the error text may come from the coordinator): escaped in the fallback
    text and in the blocks alike.
    """
    error = error if len(error) <= 1500 else error[:1500] + "…"
    dag_id, task_id, run_id, shown_error = escape(dag_id), escape(task_id), escape(run_id), escape(error)
    text = (
        f"Stalled-batch cleanup failed: task {task_id} of DAG {dag_id}, run {run_id}.\n"
        f"Error: {shown_error}\nLog: {escape(log_url)}"
    )
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": ":x: Stalled-batch cleanup failed"}},
        _section(f"*DAG:* `{dag_id}`\n*Task:* `{task_id}`\n*Run:* `{run_id}`"),
        _section(f"*Error:*\n```{shown_error}```"),
        _section(link(log_url, "Task log")),
    ]
    return Message(text=text, blocks=blocks)


def run_overdue(*, dag_id: str, run_id: str, queued_at: str, minutes: int, run_url: str) -> Message:
    """A run missed its deadline: the cleanup is hung, which must not look like a quiet hour either."""
    dag_id, run_id, queued_at = escape(dag_id), escape(run_id), escape(queued_at)
    text = (
        f"Stalled-batch cleanup is overdue: run {run_id} of DAG {dag_id} has not finished "
        f"{minutes} minutes after it was queued (queued at {queued_at}).\nAirflow run: {escape(run_url)}"
    )
    blocks = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": ":alarm_clock: Stalled-batch cleanup is overdue"},
        },
        _section(
            f"*DAG:* `{dag_id}`\n*Run:* `{run_id}`\nNot finished {minutes} minutes after it was "
            f"queued ({queued_at}). Check the scheduler, the workers and the coordinator."
        ),
        _run_button(run_url),
    ]
    return Message(text=text, blocks=blocks)


def run_failed(*, dag_id: str, run_id: str, reason: str, run_url: str) -> Message:
    """A run failed as a whole without a task saying why (timed out, for one)."""
    dag_id, run_id, reason = escape(dag_id), escape(run_id), escape(reason)
    text = (
        f"Stalled-batch cleanup run failed: run {run_id} of DAG {dag_id}: {reason}.\n"
        f"Airflow run: {escape(run_url)}"
    )
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": ":x: Stalled-batch cleanup run failed"}},
        _section(f"*DAG:* `{dag_id}`\n*Run:* `{run_id}`\n*Why:* {reason}"),
        _run_button(run_url),
    ]
    return Message(text=text, blocks=blocks)


def _run_button(run_url: str) -> dict[str, Any]:
    button = {"type": "button", "text": {"type": "plain_text", "text": "Open the DAG run"}, "url": run_url}
    return {"type": "actions", "elements": [button]}
