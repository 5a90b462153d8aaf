"""The volume-aware rule's arithmetic (`batch_cleanup.rules`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pytest

from batch_cleanup.rules import CRITICAL, WARNING, RateRule, reading

NOW = datetime(2026, 12, 3, 20, 0, tzinfo=UTC)
RULE = RateRule()


class Run(NamedTuple):
    run_after: datetime
    batches_checked: int
    stalled_count: int


def runs(*per_run: tuple[int, int]) -> list[Run]:
    """(checked, auto-completed) per run, newest first, one every 15 minutes ending at NOW."""
    return [Run(NOW - timedelta(minutes=15 * i), c, s) for i, (c, s) in enumerate(per_run)]


@pytest.mark.parametrize(
    ("history", "severity", "holds"),
    [
        (runs(*[(300, 1)] * 16), None, False),  # 0.33 %: the baseline, inside the objective
        (runs((300, 30), (300, 30)), CRITICAL, True),  # 10 % over 30 minutes: 10×
        (runs((300, 15), (300, 15)), WARNING, True),  # 5 %: a slowdown, below CRITICAL's 6×
        (runs((40, 40)), CRITICAL, True),  # one run of an outage at a quiet hour
        (runs(*[(300, 9)] * 4), WARNING, True),  # 3 % over the last half hour: 3×
        (runs((2, 2)), None, True),  # 100 %, but 2 batches: the guard keeps it from opening
        (runs((0, 0), (0, 0)), None, False),  # no batch checked: no factor, no severity
        (runs(*[(300, 4)] * 4), None, True),  # 1.3×: below WARNING, but an open incident holds
        (runs(*[(20, 1)] * 16), WARNING, True),  # 5 % at 20 batches a run: reaches back 2 hours
        (runs(*[(20, 1)] * 2), None, True),  # the same 5 % over 30 minutes: 2 batches, guarded
    ],
    ids=[
        "baseline",
        "outage",
        "bad-slowdown",
        "quiet-outage",
        "slowdown",
        "guard",
        "empty",
        "hold",
        "reach",
        "short",
    ],
)
def test_the_rule_reads_the_rate_against_the_objective(history, severity, holds):
    got = reading(history, NOW, RULE)
    assert (got.severity, got.holds) == (severity, holds)


def test_the_warning_window_reaches_back_until_enough_batches_were_checked_and_no_further():
    busy = reading(runs(*[(300, 1)] * 16), NOW, RULE).warning
    assert (busy.checked, busy.minutes) == (300, 15)  # the last run alone holds 150 batches
    quiet = reading(runs(*[(5, 0)] * 20), NOW, RULE).warning
    assert (quiet.checked, quiet.minutes) == (80, 240)  # the 16 runs of 4 hours, never further


def test_runs_outside_the_span_or_after_now_are_ignored_and_garbage_counts_nothing():
    later = Run(NOW + timedelta(minutes=15), 100, 100)
    old = Run(NOW - RULE.span, 100, 100)
    garbage = Run(NOW - timedelta(minutes=15), "12", None)  # a bad document
    got = reading([later, old, garbage, Run(NOW, 100, 1)], NOW, RULE)
    assert (got.hour.checked, got.hour.auto_completed, got.severity) == (100, 1, None)


def test_the_words_give_the_factor_and_the_counts_over_the_hour_and_the_last_run():
    got = reading(runs((96, 9), (120, 5), (120, 4), (120, 4)), NOW, RULE)
    assert got.words() == (
        "4.8× the 1 % objective over the last hour (22 of 456 batches auto-completed); 9.4× over the last run"
    )
    assert reading([], NOW, RULE).words().startswith("no batch checked: the 1 % objective")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"objective_pct": 0}, "objective_pct"),
        ({"objective_pct": 101}, "objective_pct"),
        ({"critical_factor": 2.0}, "critical_factor"),
        ({"warning_max_minutes": 10}, "warning_max_minutes"),
        ({"min_batches": True}, "min_batches"),
    ],
)
def test_a_rule_that_cannot_work_is_refused_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        RateRule(**changes)
