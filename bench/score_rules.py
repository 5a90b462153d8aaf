"""The alert rules scored on the labelled synthetic history (`bench.synthetic`), against issue 20's goal.

Each run of a history is replayed through the live decision (`backtest.replay`), under the count
rule (the DAG's thresholds, `PolicyConfig()`, on the events the DAG writes: one per run that
auto-completed anything) and under the burn-rate rule (`rules.RateRule`, on the run records).
Per rule and history: the real incidents caught (of 10), noise incidents a week, the median
detection delay, and whether every outage was CRITICAL by the second run that saw it.

`python -m bench rules` prints every seed and variant (the defaults' spread); `make bench` the mean
and the worst.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from batch_cleanup import rules
from batch_cleanup.backtest import RUN_EVERY, Recorded, replay
from batch_cleanup.config import RUN_TIMEOUT
from batch_cleanup.names import DAG_ID
from batch_cleanup.policy import CRITICAL, PolicyConfig
from batch_cleanup.ports import StoredEvent
from bench.synthetic import OUTAGE, History

GOAL = {"real_caught": 9, "noise_per_week": 2, "median_delay_minutes": 30}


def events(history: History) -> list[StoredEvent]:
    """The events the DAG writes: one per run that auto-completed anything, stamped with the run's time."""
    return [
        StoredEvent(
            f"e{index:05d}",
            run.run_after,
            [f"b{index:05d}-{n}" for n in range(run.stalled_count)],
            DAG_ID,
            run.stalled_count,
        )
        for index, run in enumerate(history.runs)
        if run.stalled_count > 0
    ]


@dataclass(frozen=True)
class Side:
    """One rule's incidents over a history: (opened_at, closed_at or None, peak severity)."""

    incidents: tuple[tuple[datetime, datetime | None, str | None], ...]


def replay_side(
    history: History, rule: str, rate_rule: rules.RateRule | None, runs: Sequence[datetime]
) -> Side:
    """`rule`'s incidents over the run times `runs`."""
    if rule == rules.COUNT:
        done = replay(Recorded(events(history), within=RUN_TIMEOUT), runs, PolicyConfig())
        return Side(tuple((i.opened_at, i.closed_at, i.peak_severity) for i in done.incidents))
    return _rate_replay(history, rate_rule or rules.RateRule(), runs)


def _rate_replay(history: History, rate_rule: rules.RateRule, runs: Sequence[datetime]) -> Side:
    """A stand-in for `backtest.replay(..., rule=BURN_RATE)` until it lands: an incident opens on
    the reading's severity, escalates, and stays open while the reading holds."""
    records = history.runs
    index = {run.run_after: i for i, run in enumerate(records)}
    reach = int(rate_rule.span / RUN_EVERY) + 1
    incidents, opened, peak = [], None, None
    for run_after in runs:
        i = index[run_after]
        got = rules.reading(records[max(0, i - reach) : i + 1], run_after, rate_rule)
        if opened is None:
            if got.severity:
                opened, peak = run_after, got.severity
        elif got.severity or got.holds:
            if got.severity == CRITICAL:
                peak = CRITICAL
        else:
            incidents.append((opened, run_after, peak))
            opened = peak = None
    if opened is not None:
        incidents.append((opened, None, peak))
    return Side(tuple(incidents))


def score(history: History, side: Side) -> dict:
    """A stand-in for `backtest.score` until it lands."""
    until = history.params.end + RUN_EVERY
    caught, delays = 0, []
    overlapping = set()
    for real in history.incidents:
        mine = [
            i for i, (opened, closed, _) in enumerate(side.incidents)
            if opened < real.end and real.start < (closed or until)
        ]  # fmt: skip
        overlapping.update(mine)
        if mine:
            caught += 1
            delays.append(max(side.incidents[mine[0]][0] - real.start, timedelta(0)) / timedelta(minutes=1))
    return {
        "real_caught": caught,
        "real_missed": len(history.incidents) - caught,
        "noise_pages": len(side.incidents) - len(overlapping),
        "critical_pages": sum(1 for *_, peak in side.incidents if peak == CRITICAL),
        "detection_delay_minutes": statistics.median(delays) if delays else None,
    }


def figures(history: History, rule: str, rate_rule: rules.RateRule | None = None) -> dict:
    """The goal's figures for `rule` over `history`."""
    runs = [run.run_after for run in history.runs]
    side = replay_side(history, rule, rate_rule, runs)
    got = score(history, side)
    outages = [i for i in history.incidents if i.kind == OUTAGE]
    critical = sum(_critical_in_time(history, rule, rate_rule, side, outage, runs) for outage in outages)
    return {
        "real_caught": got["real_caught"],
        "real": len(history.incidents),
        "noise_per_week": got["noise_pages"] / history.weeks,
        "median_delay_minutes": got["detection_delay_minutes"],
        "outages_critical_in_time": critical,
        "outages": len(outages),
    }


def _critical_in_time(history, rule, rate_rule, side: Side, outage, runs: list[datetime]) -> bool:
    """Whether the incident open at the second run that saw `outage` was CRITICAL by then: the
    replay from the last run before the outage with no incident open, up to that run."""
    deadline = outage.first_seen + RUN_EVERY
    quiet_since = max(
        [runs[0]] + [closed for opened, closed, _ in side.incidents if closed and closed <= outage.start]
    )
    upto = replay_side(history, rule, rate_rule, [t for t in runs if quiet_since <= t <= deadline])
    return bool(upto.incidents) and upto.incidents[-1][1] is None and upto.incidents[-1][2] == CRITICAL


def goal_met(got: dict) -> bool:
    delay = got["median_delay_minutes"]
    return (
        got["real_caught"] >= GOAL["real_caught"]
        and got["noise_per_week"] <= GOAL["noise_per_week"]
        and delay is not None
        and delay <= GOAL["median_delay_minutes"]
        and got["outages_critical_in_time"] == got["outages"]
    )


def spread(named: Sequence[tuple[str, History]], rate_rule: rules.RateRule | None = None) -> dict:
    """Each rule's figures on every named history, their mean and their worst, and on how many
    histories the goal was met."""
    spread = {}
    for rule in rules.RULES:
        each = {name: figures(history, rule, rate_rule) for name, history in named}
        got = list(each.values())
        delays = [g["median_delay_minutes"] for g in got if g["median_delay_minutes"] is not None]
        spread[rule] = {
            "mean": {
                "real_caught": statistics.mean(g["real_caught"] for g in got),
                "noise_per_week": statistics.mean(g["noise_per_week"] for g in got),
                "median_delay_minutes": statistics.mean(delays) if delays else None,
            },
            "worst": {
                "real_caught": min(g["real_caught"] for g in got),
                "noise_per_week": max(g["noise_per_week"] for g in got),
                "median_delay_minutes": None if len(delays) < len(got) else max(delays),
            },
            "outages_critical_in_time": sum(g["outages_critical_in_time"] for g in got),
            "outages": sum(g["outages"] for g in got),
            "goal_met": sum(goal_met(g) for g in got),
            "histories": each,
        }
    return spread


def replay_seconds(history: History, repetitions: int = 7) -> float:
    """Median wall time to replay `history`'s 30 days under both rules and score them."""
    runs = [run.run_after for run in history.runs]
    times = []
    for _ in range(repetitions):
        began = time.perf_counter()
        for rule in rules.RULES:
            score(history, replay_side(history, rule, None, runs))
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def print_spread(spread: dict) -> None:
    """Every history's figures under both rules (`python -m bench rules`)."""
    print(f"{'history':<12} {'rule':<10} caught  noise/week  delay (min)  outages CRITICAL in time  goal")
    names = spread[rules.COUNT]["histories"]
    for name in names:
        for rule in rules.RULES:
            got = spread[rule]["histories"][name]
            delay = got["median_delay_minutes"]
            delay_text = "—" if delay is None else f"{delay:.0f}"
            print(
                f"{name:<12} {rule:<10} {got['real_caught']:>2} of {got['real']:<2} "
                f"{got['noise_per_week']:>6.1f}  {delay_text:>11}  "
                f"{got['outages_critical_in_time']:>6} of {got['outages']:<17} "
                f"{'met' if goal_met(got) else 'missed'}"
            )
    for rule in rules.RULES:
        print(f"{rule}: the goal met on {spread[rule]['goal_met']} of {len(names)} histories")
