"""The run's time budget: every try of `check_stalled` and the back-off between them end before the run's
timeout, with a margin for the tasks after it. Pure arithmetic; the DAG checks its numbers at import."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

# What the rest of the run (evaluate, send, record) may take after check_stalled's last try.
MARGIN_FRACTION = 0.15


@dataclass(frozen=True)
class RetryBudget:
    """How one task tries: each try is stopped after `try_timeout`; Airflow waits between tries."""

    try_timeout: timedelta
    retries: int
    retry_delay: timedelta
    backoff: float
    max_retry_delay: timedelta

    def delay_bound(self, retry: int) -> timedelta:
        """An upper bound of Airflow's wait before retry number `retry` (1-based).

        Airflow waits between base·backoff^(retry−1) and twice that (a deterministic jitter),
        capped by `max_retry_delay`.
        """
        seconds = self.retry_delay.total_seconds() * self.backoff ** (retry - 1) * 2
        return min(self.max_retry_delay, timedelta(seconds=math.ceil(seconds)))

    def worst_case(self) -> timedelta:
        """From the first try's start to the last try's end, when every try runs out of time."""
        waits = sum((self.delay_bound(retry) for retry in range(1, self.retries + 1)), timedelta())
        return self.try_timeout * (self.retries + 1) + waits


def backoff_multiplier(retry_exponential_backoff: bool | float) -> float:
    """What Airflow's scheduler makes of an operator's `retry_exponential_backoff`: True doubles each
    wait (3.1 knows only the bool; 3.2 and later also take a multiplier), False or 0 keeps it flat."""
    if isinstance(retry_exponential_backoff, bool):
        return 2.0 if retry_exponential_backoff else 1.0
    return float(retry_exponential_backoff) or 1.0


def check_fits(budget: RetryBudget, run_timeout: timedelta, what: str = "check_stalled") -> None:
    """ValueError, naming the numbers, unless the tries end before `run_timeout` less the margin."""
    limit = run_timeout * (1 - MARGIN_FRACTION)
    worst = budget.worst_case()
    if worst > limit:
        raise ValueError(
            f"{what}'s {budget.retries + 1} tries of up to {budget.try_timeout.total_seconds():g} s each, "
            f"plus back-off, can take {worst.total_seconds():g} s: more than the "
            f"{limit.total_seconds():g} s that the run's timeout of {run_timeout.total_seconds():g} s "
            f"leaves after a {MARGIN_FRACTION:.0%} margin. Lower the timeout, the retries or the "
            "retry delay, or raise the run's timeout."
        )


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from an HTTP `Retry-After` header (delta-seconds or an HTTP date); None if absent
    or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
