"""Cleanup patterns (`patterns.py`): the heatmap's New York buckets (across both DST changes), the
rate against volume, and the sentence's rules for "cluster" and "grows" (docs/ui.md, "Patterns")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from batch_cleanup.patterns import patterns, volume_bins
from batch_cleanup.ports import RunRecord

NEW_YORK = ZoneInfo("America/New_York")
MON, SAT, SUN = 0, 5, 6
QUARTER = timedelta(minutes=15)


def every_15_minutes(
    start: datetime, end: datetime, found: Callable[[datetime], tuple[int, int]] = lambda at: (100, 0)
) -> list[RunRecord]:
    """A run every 15 minutes in `(start, end]` (UTC); `found(local time)` → (checked, stalled)."""
    runs, at = [], start + QUARTER
    while at <= end:
        checked, stalled = found(at.astimezone(NEW_YORK))
        runs.append(RunRecord(at, checked, stalled))
        at += QUARTER
    return runs


def cell(got: dict, day: int, hour: int) -> dict:
    return got["heatmap"]["cells"][day][hour]


def figures(runs: int, cleanups: int, auto_completed: int, checked: int) -> dict:
    """A heatmap cell, all of it: its counts and its rate."""
    return {
        "runs": runs,
        "cleanups": cleanups,
        "auto_completed": auto_completed,
        "checked": checked,
        "rate": auto_completed / checked,
    }


# Two days around a change of New York's clocks, a run every 15 minutes (100 checked, none stalled)
# and two more runs placed around the hour that changed. `cells` are whole cells; `runs` the runs
# of others.
@pytest.mark.parametrize(
    ("start", "extra", "cells", "runs"),
    [
        # 8 March 2026: the clocks jump from 02:00 to 03:00 (07:00 UTC).
        pytest.param(
            datetime(2026, 3, 7, 12, tzinfo=UTC),
            [
                RunRecord(datetime(2026, 3, 8, 6, 45, tzinfo=UTC), 50, 2),  # 01:45 EST
                RunRecord(datetime(2026, 3, 8, 7, 0, tzinfo=UTC), 70, 3),  # 03:00 EDT
            ],
            {(SUN, 1): figures(5, 1, 2, 450), (SUN, 3): figures(5, 1, 3, 470)},
            # Sunday's 02:00 did not happen; Monday's is 06:00 UTC, in EDT.
            {(SUN, 2): 0, (MON, 2): 4},
            id="spring-forward-leaves-sunday-2am-empty",
        ),
        # 1 November 2026: 01:00–02:00 happens twice (05:00 EDT and 06:00 EST in UTC).
        pytest.param(
            datetime(2026, 10, 31, 12, tzinfo=UTC),
            [
                RunRecord(datetime(2026, 11, 1, 5, 15, tzinfo=UTC), 10, 1),  # 01:15 EDT
                RunRecord(datetime(2026, 11, 1, 6, 15, tzinfo=UTC), 10, 1),  # 01:15 EST
            ],
            {(SUN, 1): figures(10, 2, 2, 820)},
            # Monday's 01:00 is 06:00 UTC, in EST.
            {(SUN, 0): 4, (SUN, 2): 4, (MON, 1): 4},
            id="fall-back-puts-both-1ams-in-one-cell",
        ),
    ],
)
def test_the_heatmap_buckets_runs_by_new_york_time_across_a_clock_change(start, extra, cells, runs):
    end = start + timedelta(days=2)

    got = patterns(every_15_minutes(start, end) + extra, start=start, end=end)

    assert {at: cell(got, *at) for at in cells} == cells
    assert {at: cell(got, *at)["runs"] for at in runs} == runs
    assert got["runs"] == 2 * 96 + 2
    assert sum(c["runs"] for row in got["heatmap"]["cells"] for c in row) == got["runs"]


def test_the_range_is_start_exclusive_end_inclusive():
    start = datetime(2026, 6, 1, 12, tzinfo=UTC)
    runs = [
        RunRecord(start, 100, 9),
        RunRecord(start + QUARTER, 100, 1),
        RunRecord(start + 2 * QUARTER, 100, 9),
    ]
    got = patterns(runs, start=start, end=start + QUARTER)
    assert (got["runs"], got["auto_completed"], got["checked"]) == (1, 1, 100)


def test_an_empty_range():
    start = datetime(2026, 6, 1, tzinfo=UTC)
    got = patterns([], start=start, end=start + timedelta(days=7))
    assert (got["runs"], got["cleanups"], got["rate"], got["volume"]) == (0, 0, None, [])
    assert (got["cluster"], got["trend"], got["heatmap"]["max_cleanups"]) == (None, None, 0)
    assert len(got["heatmap"]["cells"]) == 7 and {len(row) for row in got["heatmap"]["cells"]} == {24}
    assert got["sentence"] == "No runs recorded in this range."


def test_runs_that_checked_no_batch_have_no_rate():
    start = datetime(2026, 6, 1, tzinfo=UTC)
    runs = every_15_minutes(start, start + timedelta(days=1), lambda at: (0, 0))
    got = patterns(runs, start=start, end=start + timedelta(days=1))
    assert (got["runs"], got["checked"], got["rate"], got["trend"]) == (96, 0, None, None)
    assert {c["rate"] for row in got["heatmap"]["cells"] for c in row} == {None}
    assert got["volume"] == [
        {"low": 0, "high": 0, "runs": 96, "cleanups": 0, "auto_completed": 0, "checked": 0, "rate": None,
         "interval": None}
    ]  # fmt: skip
    assert got["sentence"] == ("No cleanups; the volume checked per run varied too little to compare rates.")


def test_volume_bins_split_at_the_quartiles_and_keep_ties_together():
    at = datetime(2026, 6, 1, tzinfo=UTC)
    runs = [RunRecord(at, checked, 0) for checked in (10, 20, 20, 20, 20, 30, 40, 50)]
    assert [(b.low, b.high, b.cell.runs) for b in volume_bins(runs)] == [
        (10, 20, 5),
        (30, 30, 1),
        (40, 50, 2),
    ]
    assert [(b.low, b.high) for b in volume_bins([RunRecord(at, 7, 0)] * 3)] == [(7, 7)]


def evenings_on_weekdays(at: datetime) -> tuple[int, int]:
    """Cleanups from 18:00 to 23:00 on weekdays (two runs of four an hour), none otherwise: in March
    2026's 21 weekdays in the range, 210 cleanups."""
    busy = at.weekday() < 5 and 18 <= at.hour < 23 and at.minute in (0, 30)
    return 200, (2 if busy else 0)


def test_cleanups_cluster_in_weekday_evenings_and_the_rate_does_not_grow():
    start, end = datetime(2026, 3, 1, 5, tzinfo=UTC), datetime(2026, 3, 31, 4, tzinfo=UTC)
    got = patterns(every_15_minutes(start, end, evenings_on_weekdays), start=start, end=end)

    assert got["cluster"] == {
        "start_hour": 18,
        "end_hour": 23,
        "days": "weekdays",
        "cleanups": 210,
        "of": 210,
    }
    assert got["trend"] is None  # every run checked 200: nothing to compare
    assert got["sentence"] == (
        "Cleanups cluster 18:00–23:00 New York time on weekdays (210 of 210); "
        "the volume checked per run varied too little to compare rates."
    )
    assert cell(got, MON, 19)["cleanups"] > 0 and cell(got, SAT, 19)["cleanups"] == 0
    assert got["heatmap"]["max_cleanups"] == max(
        cell(got, d, h)["cleanups"] for d in range(7) for h in range(24)
    )


def test_a_cluster_across_midnight_and_at_weekends():
    def late_weekend(at: datetime) -> tuple[int, int]:
        return 100 + at.minute, (1 if at.weekday() >= 5 and at.hour in (23, 0, 1) else 0)

    start = datetime(2026, 6, 1, 4, tzinfo=UTC)
    got = patterns(every_15_minutes(start, start + timedelta(days=28), late_weekend), start=start,
                   end=start + timedelta(days=28))  # fmt: skip
    assert got["cluster"]["start_hour"] == 23 and got["cluster"]["end_hour"] == 2
    assert got["cluster"]["days"] == "weekends"
    assert got["sentence"].startswith("Cleanups cluster 23:00–02:00 New York time at weekends (")


def test_cleanups_spread_over_the_day_make_no_cluster():
    start = datetime(2026, 6, 1, tzinfo=UTC)
    end = start + timedelta(days=7)
    got = patterns(
        every_15_minutes(start, end, lambda at: (200, 1 if at.minute == 0 else 0)), start=start, end=end
    )
    assert got["cluster"] is None
    assert got["sentence"].startswith("Cleanups show no cluster by hour of day; ")


def test_too_few_cleanups_claim_no_pattern():
    start = datetime(2026, 6, 1, tzinfo=UTC)
    end = start + timedelta(days=7)
    few = {start + timedelta(hours=h) for h in (20, 44, 68)}
    runs = every_15_minutes(start, end, lambda at: (200, 0))
    runs = [run._replace(stalled_count=1) if run.run_after in few else run for run in runs]
    got = patterns(runs, start=start, end=end)
    assert got["cluster"] is None
    assert got["sentence"].startswith("Too few cleanups (3) to see a pattern by hour; ")


def volume_and_rate(rates: dict[int, float]) -> Callable[[datetime], tuple[int, int]]:
    """Four volumes in turn (by the quarter hour), each with its share of batches stalled."""
    volumes = sorted(rates)

    def found(at: datetime) -> tuple[int, int]:
        checked = volumes[at.minute // 15]
        return checked, round(checked * rates[checked])

    return found


@pytest.mark.parametrize(
    ("rates", "trend", "words"),
    [
        ({100: 0.01, 200: 0.01, 400: 0.01, 800: 0.01}, "flat", "the rate does not grow with volume"),
        # 2 % at 800 a run against 1 % at 100: 1.5× or more, and the intervals apart.
        (
            {100: 0.01, 200: 0.01, 400: 0.015, 800: 0.02},
            "grows",
            "the rate grows with volume (1.00 % at 100 batches a run, 2.00 % at 800)",
        ),
        (
            {100: 0.04, 200: 0.02, 400: 0.01, 800: 0.01},
            "falls",
            "the rate falls as volume grows (4.00 % at 100 batches a run, 1.00 % at 800)",
        ),
        # 1.4×: apart, but not enough to say it grows.
        ({100: 0.01, 200: 0.012, 400: 0.013, 800: 0.014}, "flat", "the rate does not grow with volume"),
    ],
)
def test_the_rate_against_volume(rates, trend, words):
    start = datetime(2026, 6, 1, tzinfo=UTC)
    end = start + timedelta(days=30)
    got = patterns(every_15_minutes(start, end, volume_and_rate(rates)), start=start, end=end)

    assert [(b["low"], b["high"], b["runs"]) for b in got["volume"]] == [(v, v, 720) for v in sorted(rates)]
    assert [b["rate"] for b in got["volume"]] == pytest.approx(
        [round(v * r) / v for v, r in sorted(rates.items())]
    )
    assert all(b["interval"]["low"] < b["rate"] < b["interval"]["high"] for b in got["volume"])
    assert got["trend"] == trend
    assert got["sentence"].endswith(f"; {words}.")


def test_a_small_sample_does_not_grow_however_the_rates_look():
    """Ten runs: 1 of 100 against 3 of 100. The intervals overlap, so no claim."""
    at = datetime(2026, 6, 1, tzinfo=UTC)
    runs = [RunRecord(at + i * QUARTER, 20, 0) for i in range(5)]
    runs[0] = runs[0]._replace(stalled_count=1)
    runs += [RunRecord(at + (5 + i) * QUARTER, 20 + 1, 1 if i < 3 else 0) for i in range(5)]
    assert patterns(runs, start=at - QUARTER, end=at + 10 * QUARTER)["trend"] == "flat"


def test_a_naive_run_time_is_refused():
    naive = RunRecord(datetime(2026, 6, 1, 12), 10, 0)
    with pytest.raises(ValueError, match="run_after must be timezone-aware"):
        patterns([naive], start=datetime(2026, 6, 1, tzinfo=UTC), end=datetime(2026, 6, 2, tzinfo=UTC))
