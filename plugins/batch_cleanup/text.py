"""Small formatting helpers the messages, the policy's reasons and the history page share."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta


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
