"""A labelled synthetic history for choosing and scoring the alert rules (issue 20).

Thirty days of run records (`ports.RunRecord`: `run_after`, `batches_checked`, `stalled_count`),
one every 15 minutes, and the real incidents in them, each with its start, its end and its kind:

- volume swings `swing`-fold over the day, peaking in the New York evening, lower at weekends
  (`weekend`), and from day to day;
- a baseline of `baseline_pct` % of batches stalling, below the 1 % objective, in small clumps (a
  worker that dies takes a batch or two with it): the variance a rule must not page on;
- slowdowns: `slowdown_pct` % more batches stalling for `slowdown_hours`, starting at a quiet hour
  (the New York night) or at a busy one (the evening);
- outages: `outage_pct` % of batches stalling for `outage_minutes` (under an hour), at any hour;
- `incidents` real incidents in the 30 days (`outages` of them outages), at least half a day apart.

A batch that stops making progress counts as stalled `STALL_MINUTES` later (the DAG's default
stall threshold), and the next run auto-completes it. A real incident's label runs from the moment
its first batch counted as stalled (no run, under any rule, could see it earlier) to the first run
that sees none of it (when a responder can say it is over). Everything is drawn from the parameters,
`seed` among them: the same parameters give the same history.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from batch_cleanup.backtest import RUN_EVERY, scheduled_runs
from batch_cleanup.names import DAG_ID
from batch_cleanup.ports import RunRecord

NEW_YORK = ZoneInfo("America/New_York")
STALL_MINUTES = 10  # params.stall_threshold_minutes' default
SLOWDOWN = "slowdown"
OUTAGE = "outage"
# Relative volume by New York hour on a weekday (0 h … 23 h): a night trough, a working day, an
# evening peak. Scaled so that the trough is 1/`swing` of the peak.
DAY_SHAPE = (
    0.45, 0.25, 0.12, 0.05, 0.0, 0.05, 0.15, 0.3, 0.4, 0.45, 0.5, 0.5,
    0.5, 0.5, 0.55, 0.6, 0.7, 0.85, 0.95, 1.0, 1.0, 0.9, 0.75, 0.6,
)  # fmt: skip
QUIET_STARTS = (23, 0, 1, 2, 3)  # New York hours a quiet-hour slowdown starts at
BUSY_STARTS = (16, 17, 18, 19, 20)
GAP = timedelta(hours=12)  # between two real incidents, and from the span's edges


class Incident(NamedTuple):
    """A real incident: from `began` to `stopped`, `pct` % more batches stopped making progress;
    the first counted as stalled at `start`, and the runs from `first_seen` auto-completed them
    until before `end`."""

    start: datetime
    end: datetime
    kind: str  # SLOWDOWN or OUTAGE
    pct: float
    began: datetime
    stopped: datetime
    first_seen: datetime
    busy: bool  # started at a busy hour (New York 15 h to 22 h)


@dataclass(frozen=True)
class Params:
    """What a history is drawn from: the issue's history by default (`VARIANTS` departs from it)."""

    seed: int = 1
    days: int = 30
    end: datetime = datetime(2026, 11, 30, 5, tzinfo=UTC)
    peak_batches: float = 300  # mean batches checked by a weekday evening run
    swing: float = 10  # the evening peak ÷ the night trough
    weekend: float = 0.5  # weekend volume ÷ weekday volume
    baseline_pct: float = 0.3
    clump: float = 1.0  # mean batches per baseline stall (above 1: a dying worker takes a few)
    slowdown_pct: tuple[float, float] = (3.0, 6.0)
    slowdown_hours: tuple[float, float] = (2.0, 5.0)
    outage_pct: tuple[float, float] = (20.0, 60.0)
    outage_minutes: tuple[float, float] = (15.0, 50.0)
    incidents: int = 10
    outages: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.baseline_pct < 1:
            raise ValueError(f"baseline_pct must stay below the 1 % objective, got {self.baseline_pct!r}")
        if self.outage_minutes[1] >= 60:
            raise ValueError(f"outage_minutes must stay under an hour, got {self.outage_minutes!r}")
        if not 0 <= self.outages <= self.incidents:
            raise ValueError(f"outages must be between 0 and incidents, got {self.outages!r}")


@dataclass(frozen=True)
class History:
    params: Params
    runs: list[RunRecord] = field(repr=False)
    incidents: list[Incident]

    @property
    def weeks(self) -> float:
        return self.params.days / 7


# The variants the goal must hold on: the history, and departures from it each way.
VARIANTS = {
    "issue": Params(),
    "busy": Params(peak_batches=600, baseline_pct=0.5, outages=4),
    "quiet": Params(peak_batches=150, swing=6, baseline_pct=0.2, outages=4),
    "subtle": Params(baseline_pct=0.4, slowdown_pct=(2.5, 4.0), outage_pct=(15.0, 30.0), outages=2),
}
# Beyond the goal: stalls in clumps (1.5 batches each on average), a variance the issue does not
# describe; `python -m bench rules` prints how the rules fare on it.
STRESS = {"clumpy": Params(clump=1.5, weekend=0.4)}
SEEDS = tuple(range(1, 11))


def histories(seeds=SEEDS, variants=VARIANTS) -> list[tuple[str, History]]:
    """Every variant at every seed, named "variant/seed"."""
    return [
        (f"{name}/{seed}", generate(replace(params, seed=seed)))
        for name, params in variants.items()
        for seed in seeds
    ]


def generate(params: Params) -> History:
    """The runs of `params.days` days up to `params.end`, and the real incidents in them."""
    rng = random.Random(repr(params))  # a str seed is hashed the same way in every process
    start = params.end - timedelta(days=params.days)
    times = scheduled_runs(start + RUN_EVERY, params.end)
    incidents = _incidents(rng, params, start, times)
    extra = [0.0] * len(times)  # the incidents' share of each run's batches
    for incident in incidents:
        for index, seen in _seen_by(times, incident.began, incident.stopped):
            extra[index] += incident.pct / 100 * seen
    daily: dict[date, float] = {}  # a busier or quieter day
    runs = []
    for run_after, share in zip(times, extra, strict=True):
        local = run_after.astimezone(NEW_YORK)
        day = daily.setdefault(local.date(), rng.lognormvariate(0, 0.15))
        checked = _poisson(rng, _volume(params, local) * day)
        stalled = _baseline(rng, checked, params) + _binomial(rng, checked, share)
        runs.append(RunRecord(run_after, checked, min(stalled, checked), dag_id=DAG_ID))
    return History(params, runs, incidents)


def _volume(params: Params, local: datetime) -> float:
    hour = local.hour + local.minute / 60
    low, high = DAY_SHAPE[int(hour) % 24], DAY_SHAPE[(int(hour) + 1) % 24]
    shape = low + (high - low) * (hour - int(hour))
    trough = 1 / params.swing
    volume = params.peak_batches * (trough + (1 - trough) * shape)
    return volume * (params.weekend if local.weekday() >= 5 else 1)


def _baseline(rng: random.Random, checked: int, params: Params) -> int:
    clumps = _poisson(rng, checked * params.baseline_pct / 100 / params.clump)
    return sum(1 + _poisson(rng, params.clump - 1) for _ in range(clumps))


def _seen_by(times: list[datetime], start: datetime, stopped: datetime) -> list[tuple[int, float]]:
    """(index, share) of the runs that see batches stalled between `start` and `stopped`: a run
    auto-completes those that stopped between 25 and 10 minutes before it, so its share is the
    part of that quarter-hour inside the incident."""
    lag = timedelta(minutes=STALL_MINUTES)
    first = bisect_right(times, start + lag)
    seen = []
    for index in range(first, bisect_left(times, stopped + lag + RUN_EVERY)):
        stalled_to = times[index] - lag
        overlap = min(stopped, stalled_to) - max(start, stalled_to - RUN_EVERY)
        if overlap > timedelta(0):
            seen.append((index, overlap / RUN_EVERY))
    return seen


def _incidents(rng: random.Random, params: Params, start: datetime, times: list[datetime]) -> list[Incident]:
    """`params.incidents` incidents, one in each equal slot of the span, at least `GAP` apart and
    from the span's edges, kinds shuffled, slowdowns taking turns at quiet and busy hours."""
    kinds = [OUTAGE] * params.outages + [SLOWDOWN] * (params.incidents - params.outages)
    rng.shuffle(kinds)
    slot = timedelta(days=params.days) / max(params.incidents, 1)
    incidents: list[Incident] = []
    for index, kind in enumerate(kinds):
        busy = kind == SLOWDOWN and sum(i.kind == SLOWDOWN for i in incidents) % 2 == 1
        for _ in range(100):  # until one fits: a start hour on a day of the slot, away from its neighbours
            day = (start + slot * (index + rng.random())).astimezone(NEW_YORK)
            if kind == SLOWDOWN:
                hour = rng.choice(BUSY_STARTS if busy else QUIET_STARTS)
                length = timedelta(hours=rng.uniform(*params.slowdown_hours))
                pct = rng.uniform(*params.slowdown_pct)
            else:
                hour = rng.randrange(24)
                length = timedelta(minutes=rng.uniform(*params.outage_minutes))
                pct = rng.uniform(*params.outage_pct)
            local = day.replace(hour=hour, minute=rng.randrange(60), second=0, microsecond=0)
            began = local.astimezone(UTC)
            stopped = began + length
            after = incidents[-1].end if incidents else start
            if began >= after + GAP and stopped + GAP <= params.end:
                break
        else:
            raise ValueError(f"{params.incidents} incidents do not fit {params.days} days, {GAP} apart")
        seen = _seen_by(times, began, stopped)
        first, last = times[seen[0][0]], times[seen[-1][0]]
        stalled = began + timedelta(minutes=STALL_MINUTES)
        incidents.append(
            Incident(stalled, last + RUN_EVERY, kind, pct, began, stopped, first, 15 <= hour <= 22)
        )
    return incidents


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:  # the normal approximation, close enough at this size
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _binomial(rng: random.Random, n: int, p: float) -> int:
    if p <= 0:
        return 0
    if n * p * (1 - p) > 30:  # the normal approximation again
        return min(n, max(0, round(rng.gauss(n * p, math.sqrt(n * p * (1 - p))))))
    return sum(1 for _ in range(n) if rng.random() < p)
