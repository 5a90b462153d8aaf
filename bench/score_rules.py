"""The alert rules scored on the labelled synthetic history (`bench.synthetic`), against issue 20's goal.

Each run of a history is replayed through the live decision (`backtest.replay`), under the count
rule (the DAG's thresholds, `PolicyConfig()`, on the events the DAG writes: one per run that
auto-completed anything) and under the burn-rate rule (`rules.RateRule`, on the run records).
Each replay is scored against the history's real incidents (`backtest.score`). Per rule and
history: the real incidents caught (of 10), noise incidents a week, the median detection delay,
and whether every outage was CRITICAL by the second run that saw it.

`python -m bench rules` prints every seed and variant (the defaults' spread); `make bench` the mean
and the worst.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from batch_cleanup import rules
from batch_cleanup.backtest import RUN_EVERY, RealIncident, Recorded, Replay, replay, score
from batch_cleanup.config import RUN_TIMEOUT
from batch_cleanup.names import DAG_ID
from batch_cleanup.policy import CRITICAL, PolicyConfig
from batch_cleanup.ports import StoredEvent
from bench.synthetic import OUTAGE, History, Incident

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


def replay_rule(
    history: History, rule: str, rate_rule: rules.RateRule | None = None, *, recorded: Recorded | None = None
) -> Replay:
    """`rule`'s replay of every run of `history`; `recorded` is `history`'s events, if sorted already."""
    return replay(
        recorded or Recorded(events(history), within=RUN_TIMEOUT),
        [run.run_after for run in history.runs],
        PolicyConfig(),
        runs=history.runs,
        rule=rule,
        rate_rule=rate_rule,
    )


def real(history: History) -> list[RealIncident]:
    return [RealIncident(incident.start, incident.end) for incident in history.incidents]


def figures(history: History, rule: str, rate_rule: rules.RateRule | None = None) -> dict:
    """The goal's figures for `rule` over `history`, from the backtest's score."""
    done = replay_rule(history, rule, rate_rule)
    got = score(done.incidents, real(history))
    outages = [incident for incident in history.incidents if incident.kind == OUTAGE]
    return {
        "real_caught": got["real_caught"],
        "real": len(history.incidents),
        "noise_per_week": got["noise_pages"] / history.weeks,
        "median_delay_minutes": got["detection_delay_minutes"],
        "outages_critical_in_time": sum(_critical_in_time(done, outage) for outage in outages),
        "outages": len(outages),
        "critical_pages": got["critical_pages"],
    }


def _critical_in_time(done: Replay, outage: Incident) -> bool:
    """Whether a message said CRITICAL between the outage's start and the second run that saw it
    (the first often sees only part of it)."""
    by = outage.first_seen + RUN_EVERY
    return any(
        sent.severity == CRITICAL and sent.says_open and outage.start <= sent.at <= by
        for incident in done.incidents
        for sent in incident.sent
    )


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
    """Median wall time of what `api/backtest` does after its reads: sort `history`'s events, replay
    its 30 days under both rules and score both against its real incidents."""
    written, labelled = events(history), real(history)
    times = []
    for _ in range(repetitions):
        began = time.perf_counter()
        recorded = Recorded(written, within=RUN_TIMEOUT)
        for rule in rules.RULES:
            score(replay_rule(history, rule, recorded=recorded).incidents, labelled)
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
