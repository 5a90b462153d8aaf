"""Slack messages: each a plain-text fallback plus Block Kit blocks within Slack's limits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

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
class Message:
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def dag_run_url(base_url: str, dag_id: str, run_id: str) -> str:
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"


def unique_in_order(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def listed(values: list[str], limit: int = MAX_LISTED_BATCHES) -> list[str]:
    """At most `limit` values, then a "+N more" line for the rest."""
    shown = values[:limit]
    if len(values) > limit:
        shown.append(f"+{len(values) - limit} more")
    return shown


def _section(markdown: str) -> dict[str, Any]:
    if len(markdown) > MAX_SECTION_CHARS:
        markdown = markdown[: MAX_SECTION_CHARS - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": markdown}}


def _bullets(lines: Iterable[str]) -> str:
    return "\n".join(f"• {line}" for line in lines)


def systemic_alert(
    *,
    count: int,
    threshold: int,
    window_minutes: int,
    completed_this_run: int,
    batch_ids_in_window: list[str],
    run_url: str,
) -> Message:
    """The alert for cleanups piling up: what happened, likely causes, what to check, where to look."""
    batches = listed(unique_in_order(batch_ids_in_window))
    headline = (
        f"Systemic batch stall issue: {count} cleanups in the last {window_minutes} minutes "
        f"(threshold: {threshold})"
    )
    text = "\n".join(
        [
            headline,
            f"{completed_this_run} batches auto-completed in this run.",
            "Recently stalled batches: " + (", ".join(batches) or "none recorded"),
            "Possible causes: " + "; ".join(POSSIBLE_CAUSES) + ".",
            WHAT_TO_CHECK,
            f"Airflow run: {run_url}",
        ]
    )
    blocks = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": ":rotating_light: Systemic batch stall issue"},
        },
        _section(
            f"*{count} cleanups* in the last {window_minutes} minutes (threshold: {threshold})\n"
            f"*{completed_this_run} batches* auto-completed in this run"
        ),
        _section("*Recently stalled batches:*\n" + (_bullets(f"`{b}`" for b in batches) or "none recorded")),
        _section("*Possible causes:*\n" + _bullets(POSSIBLE_CAUSES)),
        _section(f"_{WHAT_TO_CHECK}_"),
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open the DAG run"}, "url": run_url}
            ],
        },
    ]
    return Message(text=text, blocks=blocks[:MAX_BLOCKS])


def task_failure(*, dag_id: str, task_id: str, run_id: str, error: str, log_url: str) -> Message:
    """A task failed for good: the cleanup itself is broken, which must never look like a quiet hour."""
    error = error if len(error) <= 1500 else error[:1500] + "…"
    text = (
        f"Stalled-batch cleanup failed: task {task_id} of DAG {dag_id}, run {run_id}.\n"
        f"Error: {error}\nLog: {log_url}"
    )
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": ":x: Stalled-batch cleanup failed"}},
        _section(f"*DAG:* `{dag_id}`\n*Task:* `{task_id}`\n*Run:* `{run_id}`"),
        _section(f"*Error:*\n```{error}```"),
        _section(f"<{log_url}|Task log>"),
    ]
    return Message(text=text, blocks=blocks)
