"""The volume-aware alert rule: the auto-completion rate against its objective, over short windows.

The count rule (`policy.PolicyConfig`) counts runs that auto-completed anything. At busy hours a
baseline well inside the objective puts a stall in most runs, and a short outage at a quiet hour
fills too few runs to count. This rule reads what the design notes' objective is about: batches
auto-completed ÷ batches checked, from the run records, as a multiple ("factor") of the objective.

- CRITICAL: `critical_factor`× over the last `critical_minutes` (an outage: tens of percent, now);
- WARNING: `warning_factor`× over the runs reaching back from now to at least `warning_minutes` and
  until `warning_batches` batches were checked, at most `warning_max_minutes` (a slowdown of a few
  percent at a quiet hour needs a longer look than at a busy one);
- either needs `min_batches` auto-completed in its window: a handful of batches never pages;
- an open incident holds while the last `hold_minutes` stay at `hold_factor`× or above (it does not
  flap at the WARNING line), and resolves below it.

Windows end at the run's time and start exclusive, like the count's (`events.window_start`). Why
these defaults, and how they score against the count rule: docs/alert-rules.md. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Protocol

from batch_cleanup import rule_defaults as default
from batch_cleanup.names import RUN_EVERY_MINUTES
from batch_cleanup.rule_defaults import BURN_RATE, COUNT, RULES

# The rules' names live in `rule_defaults` (the DAG's params read them at parse time); here for callers.
__all__ = [
    "BURN_RATE",
    "COUNT",
    "CRITICAL",
    "RULES",
    "WARNING",
    "RateReading",
    "RateRule",
    "RunLike",
    "Window",
    "reading",
]

CRITICAL = "CRITICAL"
WARNING = "WARNING"


class RunLike(Protocol):
    """What the rule reads of a run record (`ports.RunRecord`)."""

    @property
    def run_after(self) -> datetime: ...
    @property
    def batches_checked(self) -> int: ...
    @property
    def stalled_count(self) -> int: ...


@dataclass(frozen=True)
class RateRule:
    """The defaults, and why each: `rule_defaults`."""

    objective_pct: float = default.OBJECTIVE_PCT
    critical_factor: float = default.CRITICAL_FACTOR
    critical_minutes: int = default.CRITICAL_MINUTES
    warning_factor: float = default.WARNING_FACTOR
    warning_minutes: int = default.WARNING_MINUTES
    warning_batches: int = default.WARNING_BATCHES
    warning_max_minutes: int = default.WARNING_MAX_MINUTES
    min_batches: int = default.MIN_BATCHES
    hold_factor: float = default.HOLD_FACTOR
    hold_minutes: int = default.HOLD_MINUTES

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{f.name} must be a number > 0, got {value!r}")
        if self.objective_pct > 100:
            raise ValueError(f"objective_pct must be at most 100, got {self.objective_pct!r}")
        if self.critical_factor <= self.warning_factor:
            raise ValueError(
                f"critical_factor ({self.critical_factor}) must be greater than "
                f"warning_factor ({self.warning_factor})"
            )
        if self.warning_max_minutes < self.warning_minutes:
            raise ValueError(
                f"warning_max_minutes ({self.warning_max_minutes}) must be at least "
                f"warning_minutes ({self.warning_minutes})"
            )

    @property
    def span(self) -> timedelta:
        """How far back any window of the rule reaches: the run records a reading needs."""
        return timedelta(minutes=max(self.critical_minutes, self.warning_max_minutes, self.hold_minutes))


@dataclass(frozen=True)
class Window:
    """Batches auto-completed and checked by the runs of a window, and how long it reached back."""

    auto_completed: int = 0
    checked: int = 0
    minutes: int = 0

    def factor(self, objective_pct: float) -> float | None:
        """The rate as a multiple of the objective; None when no batch was checked."""
        if self.checked <= 0:
            return None
        return self.auto_completed / self.checked * 100 / objective_pct


@dataclass(frozen=True)
class RateReading:
    severity: str | None
    holds: bool
    objective_pct: float
    hour: Window
    last: Window
    warning: Window
    critical: Window

    @property
    def hour_factor(self) -> float | None:
        return self.hour.factor(self.objective_pct)

    @property
    def last_factor(self) -> float | None:
        return self.last.factor(self.objective_pct)

    def words(self) -> str:
        """What a message and a reason say of the rate: "4.8× the 1 % objective over the last hour
        (22 of 456 batches auto-completed); 9.1× over the last run"."""
        objective = f"{self.objective_pct:g} %"
        return (
            f"{_times(self.hour_factor)} the {objective} objective over the last hour "
            f"({self.hour.auto_completed} of {self.hour.checked} batches auto-completed); "
            f"{_times(self.last_factor)} over the last run"
        )

    def to_dict(self) -> dict[str, Any]:
        """The figures a message shows, as JSON values."""
        return {
            "objective_pct": self.objective_pct,
            "hour_factor": self.hour_factor,
            "hour_auto_completed": self.hour.auto_completed,
            "hour_checked": self.hour.checked,
            "last_factor": self.last_factor,
            "last_auto_completed": self.last.auto_completed,
            "last_checked": self.last.checked,
        }


def _times(factor: float | None) -> str:
    return "no batch checked:" if factor is None else f"{factor:.1f}×"


def reading(runs: Sequence[RunLike], now: datetime, rule: RateRule) -> RateReading:
    """The rule's reading at `now` from the run records with `now − rule.span` < run_after ≤ `now`
    (older or later ones are ignored, in any order)."""
    since = now - rule.span  # once: the backtest reads at every one of 2,880 runs
    recent = sorted(
        (run for run in runs if since < run.run_after <= now),
        key=lambda run: run.run_after,
        reverse=True,
    )
    critical = _sum(recent, now, timedelta(minutes=rule.critical_minutes))
    hour = _sum(recent, now, timedelta(minutes=rule.hold_minutes))
    warning = _reaching_back(recent, now, rule)
    last = _sum(recent[:1], now, rule.span)
    severity = None
    if _over(critical, rule.critical_factor, rule):
        severity = CRITICAL
    elif _over(warning, rule.warning_factor, rule) or _over(critical, rule.warning_factor, rule):
        severity = WARNING
    holds = severity is not None or (hour.factor(rule.objective_pct) or 0) >= rule.hold_factor
    return RateReading(severity, holds, rule.objective_pct, hour, last, warning, critical)


def _over(window: Window, factor: float, rule: RateRule) -> bool:
    at = window.factor(rule.objective_pct)
    return at is not None and at >= factor and window.auto_completed >= rule.min_batches


def _sum(recent: Sequence[RunLike], now: datetime, length: timedelta) -> Window:
    inside = [run for run in recent if run.run_after > now - length]
    return Window(
        sum(_count(run.stalled_count) for run in inside),
        sum(_count(run.batches_checked) for run in inside),
        int(length.total_seconds() // 60),
    )


def _reaching_back(recent: Sequence[RunLike], now: datetime, rule: RateRule) -> Window:
    """The newest runs covering at least `warning_minutes`, then older ones until `warning_batches`
    were checked, never older than `warning_max_minutes`."""
    least, most = timedelta(minutes=rule.warning_minutes), timedelta(minutes=rule.warning_max_minutes)
    auto_completed = checked = 0
    reach = least
    for run in recent:
        age = now - run.run_after
        if age >= most or (age >= least and checked >= rule.warning_batches):
            break
        auto_completed += _count(run.stalled_count)
        checked += _count(run.batches_checked)
        reach = max(reach, age + timedelta(minutes=RUN_EVERY_MINUTES))
    return Window(auto_completed, checked, int(min(reach, most).total_seconds() // 60))


def _count(value: Any) -> int:
    """A run record's count; a missing or garbage one (a bad document) counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
