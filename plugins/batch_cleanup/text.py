"""Small formatting helpers the messages, the policy's reasons and the history page share, and the
package's one convention for times: aware, in UTC, written with a `Z`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit


def duration_text(duration: float | timedelta | None) -> str:
    """`45 min`, `2 h 05 min`, `3 d 4 h` for seconds or a timedelta: what on-call reads at a glance."""
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration or 0
    minutes = max(int(seconds // 60), 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


def unique(values: Iterable[str]) -> tuple[str, ...]:
    """`values` without repeats, in the order first seen."""
    return tuple(dict.fromkeys(values))


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 batch`, `2 batches`: the count with its noun, singular or plural."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def in_window(count: int, window_minutes: int) -> str:
    """`1 cleanup in the last minute`, `3 cleanups in the last 60 minutes`."""
    window = "minute" if window_minutes == 1 else f"{window_minutes} minutes"
    return f"{plural(count, 'cleanup')} in the last {window}"


def clock_text(moment: datetime, now: datetime | None = None) -> str:
    """`14:39 UTC` on `now`'s day, `1 Mar 14:39 UTC` in its year, else `1 Mar 2025 14:39 UTC`
    (always the full date without `now`): a time on-call reads, never an ISO stamp."""
    moment = moment.astimezone(UTC)
    today = now.astimezone(UTC) if now is not None else None
    if today is not None and moment.date() == today.date():
        return f"{moment:%H:%M} UTC"
    if today is not None and moment.year == today.year:
        return f"{moment.day} {moment:%b %H:%M} UTC"
    return f"{moment.day} {moment:%b %Y %H:%M} UTC"


def as_utc(moment: datetime, name: str) -> datetime:
    """`moment` in UTC. A naive time (no zone, or a zone without an offset) is refused with a
    ValueError naming `name`: Python would read it as the host's local time."""
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def utc_z(moment: datetime, *, name: str = "the time", timespec: str = "auto") -> str:
    """`2026-03-10T12:00:00Z`: `moment` (aware, see `as_utc`) as ISO 8601 in UTC with a `Z`."""
    return as_utc(moment, name).isoformat(timespec=timespec).replace("+00:00", "Z")


def ago_text(duration: timedelta) -> str:
    """`just now`, `12 min ago`, `2 h 05 min ago`."""
    return "just now" if duration < timedelta(minutes=1) else f"{duration_text(duration)} ago"


def is_absolute_url(url: str | None) -> bool:
    """Whether Slack takes `url` in a button or link: http(s) with a host. Slack refuses a whole
    message (`invalid_blocks`) for one relative URL, such as Airflow's links without `[api] base_url`."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
