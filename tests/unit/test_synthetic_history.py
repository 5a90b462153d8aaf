"""The labelled synthetic history the alert rules are chosen on (`bench.synthetic`), and issue 20's
goal held by the burn-rate rule's defaults on one of its draws, through the backtest's replay."""

from __future__ import annotations

import itertools
import statistics
from dataclasses import replace
from datetime import timedelta

import pytest

from batch_cleanup import rules
from bench import score_rules
from bench.synthetic import NEW_YORK, OUTAGE, SLOWDOWN, VARIANTS, Params, generate

ISSUE = VARIANTS["issue"]


@pytest.fixture(scope="module")
def history():
    return generate(ISSUE)


def test_the_same_parameters_give_the_same_history_and_another_seed_another(history):
    assert generate(ISSUE) == history
    other = generate(replace(ISSUE, seed=ISSUE.seed + 1))
    assert other.runs != history.runs
    assert [i.start for i in other.incidents] != [i.start for i in history.incidents]


def test_thirty_days_of_runs_every_15_minutes(history):
    times = [run.run_after for run in history.runs]
    assert len(times) == 30 * 96
    assert {b - a for a, b in itertools.pairwise(times)} == {timedelta(minutes=15)}
    assert times[-1] == ISSUE.end


def test_volume_swings_several_fold_over_the_new_york_day_and_is_lower_at_weekends(history):
    by_hour: dict[tuple[bool, int], list[int]] = {}
    for run in history.runs:
        local = run.run_after.astimezone(NEW_YORK)
        by_hour.setdefault((local.weekday() >= 5, local.hour), []).append(run.batches_checked)
    weekday = {hour: statistics.mean(by_hour[False, hour]) for hour in range(24)}
    weekend = {hour: statistics.mean(by_hour[True, hour]) for hour in range(24)}
    assert max(weekday, key=weekday.get) in range(18, 22)  # the evening peak
    assert max(weekday.values()) >= 5 * min(weekday.values())
    assert 250 <= max(weekday.values()) <= 350  # "around 300 batches a run at evening volume"
    assert sum(weekend.values()) < 0.7 * sum(weekday.values())


def test_the_baseline_outside_the_incidents_is_below_the_objective(history):
    def during(run):
        return any(i.began <= run.run_after < i.end for i in history.incidents)

    quiet = [run for run in history.runs if not during(run)]
    rate = sum(r.stalled_count for r in quiet) / sum(r.batches_checked for r in quiet) * 100
    assert 0.2 < rate < 0.4 < rules.RateRule().objective_pct  # 0.3 % drawn


def test_ten_real_incidents_slowdowns_at_quiet_and_busy_hours_and_short_outages(history):
    incidents = history.incidents
    assert len(incidents) == 10
    assert all(a.end + timedelta(hours=12) <= b.began for a, b in itertools.pairwise(incidents))
    slowdowns = [i for i in incidents if i.kind == SLOWDOWN]
    outages = [i for i in incidents if i.kind == OUTAGE]
    assert len(outages) == ISSUE.outages and len(slowdowns) == 10 - ISSUE.outages
    assert {i.busy for i in slowdowns} == {True, False}
    assert all(2.9 < i.pct < 6.1 and i.stopped - i.began >= timedelta(hours=2) for i in slowdowns)
    assert all(20 <= i.pct <= 60 and i.stopped - i.began < timedelta(hours=1) for i in outages)
    # Labelled from the first stalled batch to the first run that sees none of it.
    assert all(i.start == i.began + timedelta(minutes=10) <= i.first_seen < i.end for i in incidents)
    for incident in incidents:
        after = next(run for run in history.runs if run.run_after == incident.first_seen)
        assert after.stalled_count > 0


@pytest.mark.parametrize(
    "changes",
    [{"baseline_pct": 1.0}, {"outage_minutes": (20.0, 60.0)}, {"outages": 11}],
    ids=["baseline-at-the-objective", "an-hour-long-outage", "more-outages-than-incidents"],
)
def test_a_history_without_the_ingredients_is_refused(changes):
    with pytest.raises(ValueError, match=next(iter(changes))):
        Params(**changes)


def test_the_burn_rate_defaults_meet_the_goal_where_the_count_rule_cannot(history):
    burn_rate = score_rules.figures(history, rules.BURN_RATE)
    assert burn_rate["real_caught"] >= 9
    assert burn_rate["noise_per_week"] <= 2
    assert burn_rate["median_delay_minutes"] <= 30
    assert burn_rate["outages_critical_in_time"] == burn_rate["outages"] == 3
    assert score_rules.goal_met(burn_rate)
    count = score_rules.figures(history, rules.COUNT)
    assert count["noise_per_week"] > 2 and count["outages_critical_in_time"] < count["outages"]
    assert not score_rules.goal_met(count)
