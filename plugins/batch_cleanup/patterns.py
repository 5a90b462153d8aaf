"""When do cleanups happen, and does the auto-completion rate grow with the volume checked?

Pure: run records in (`ports.RunRecord`, one per DAG run), JSON-able figures out, no clock, no I/O.
Hours and weekdays are read in the schedule's time zone (America/New_York), where the people who
run the games live; the rules behind the sentence are in docs/ui.md ("Patterns").

- A **cleanup** is a run that auto-completed at least one batch (`stalled_count > 0`).
- The **heatmap** is weekday × hour of day: runs, cleanups, batches auto-completed and checked,
  and the rate (auto-completed ÷ checked) in each cell. Around DST changes a wall-clock hour holds
  no run (spring) or twice the runs (autumn): cells count runs, so shares stay comparable.
- The **volume bins** split the runs into quarters by batches checked per run (ties kept together,
  so there may be fewer than four) and give each its rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from batch_cleanup.names import SCHEDULE_TIMEZONE
from batch_cleanup.ports import RunRecord
from batch_cleanup.quality import wilson
from batch_cleanup.text import as_utc

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKEND = {5, 6}
HOURS = 24
# Below this many cleanups in the range, no pattern by hour is claimed.
MIN_CLEANUPS = 10
# A cluster: consecutive hours of the day (across midnight too), each with at least CLUSTER_FACTOR
# times the range's cleanups per run, together holding at least CLUSTER_SHARE of its cleanups.
# Cleanups per run, not cleanups: an hour the DAG ran less (paused, a DST change) is not "quiet".
CLUSTER_FACTOR = 2.0
CLUSTER_SHARE = 0.5
# Inside the cluster, "on weekdays" (or "at weekends") when cleanups per run are DAYS_FACTOR times
# those of the other days.
DAYS_FACTOR = 3.0
VOLUME_QUANTILES = (0.25, 0.5, 0.75)
# The rate grows with volume when the busiest bin's rate is GROWS_FACTOR times the quietest's and
# their Wilson 95 % intervals do not overlap (and falls the other way round).
GROWS_FACTOR = 1.5


@dataclass
class Cell:
    """Runs and what they found, in one cell of the heatmap or one volume bin."""

    runs: int = 0
    cleanups: int = 0
    auto_completed: int = 0
    checked: int = 0

    def add(self, run: RunRecord) -> None:
        self.runs += 1
        self.cleanups += run.stalled_count > 0
        self.auto_completed += run.stalled_count
        self.checked += run.batches_checked

    @property
    def rate(self) -> float | None:
        return self.auto_completed / self.checked if self.checked else None

    def json(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "cleanups": self.cleanups,
            "auto_completed": self.auto_completed,
            "checked": self.checked,
            "rate": self.rate,
        }


class VolumeBin(NamedTuple):
    """Runs that checked `low` to `high` batches each, and what they found."""

    low: int
    high: int
    cell: Cell

    def json(self) -> dict[str, Any]:
        cell = self.cell
        interval = wilson(cell.auto_completed, cell.checked)
        bounds = interval and {"low": interval["low"], "high": interval["high"]}
        return {"low": self.low, "high": self.high, **cell.json(), "interval": bounds}

    @property
    def label(self) -> str:
        return f"{self.low:,}" if self.low == self.high else f"{self.low:,}–{self.high:,}"


def patterns(
    runs: Iterable[RunRecord], *, start: datetime, end: datetime, zone: str = SCHEDULE_TIMEZONE
) -> dict[str, Any]:
    """The heatmap, the rate against volume and a sentence reading both, over runs in `(start, end]`.

    `heatmap.cells[weekday][hour]` (Monday first, hours of `zone`); `volume`: the bins, quietest
    first, each {`low`, `high` (batches checked per run), runs, cleanups, auto_completed, checked,
    rate, `interval` (Wilson 95 % of the rate)}; `cluster` {`start_hour`, `end_hour`, `days`,
    `cleanups`} or None; `trend`: `grows`, `falls`, `flat`, or None when it cannot be told.
    """
    start, end = as_utc(start, "start"), as_utc(end, "end")
    local = ZoneInfo(zone)
    kept = [run for run in runs if start < as_utc(run.run_after, "run_after") <= end]
    total = Cell()
    cells = [[Cell() for _ in range(HOURS)] for _ in WEEKDAYS]
    for run in kept:
        at = run.run_after.astimezone(local)
        cells[at.weekday()][at.hour].add(run)
        total.add(run)
    bins = volume_bins(kept)
    cluster = find_cluster(cells)
    trend = rate_trend(bins)
    return {
        "zone": zone,
        **total.json(),
        "heatmap": {
            "weekdays": list(WEEKDAYS),
            "cells": [[cell.json() for cell in row] for row in cells],
            "max_cleanups": max(cell.cleanups for row in cells for cell in row),
            "max_rate": max((cell.rate or 0 for row in cells for cell in row), default=0),
        },
        "volume": [volume_bin.json() for volume_bin in bins],
        "cluster": cluster,
        "trend": trend,
        "sentence": sentence(total, cluster, trend, bins, zone),
    }


def volume_bins(runs: Sequence[RunRecord]) -> list[VolumeBin]:
    """The runs in up to four bins by batches checked, split at the quartiles (nearest rank), equal
    counts always in the same bin; each (lowest, highest batches checked, sums). Quietest first."""
    values = sorted(run.batches_checked for run in runs)
    if not values:
        return []
    cuts = sorted({values[max(math.ceil(q * len(values)) - 1, 0)] for q in VOLUME_QUANTILES})
    grouped: dict[int, list[RunRecord]] = {}
    for run in runs:
        index = next((i for i, cut in enumerate(cuts) if run.batches_checked <= cut), len(cuts))
        grouped.setdefault(index, []).append(run)
    bins = []
    for index in sorted(grouped):
        cell = Cell()
        for run in grouped[index]:
            cell.add(run)
        checked = [run.batches_checked for run in grouped[index]]
        bins.append(VolumeBin(min(checked), max(checked), cell))
    return bins


def find_cluster(cells: list[list[Cell]]) -> dict[str, Any] | None:
    """The hours cleanups cluster in (the rule at the top), and on which days; None without one."""
    by_hour = [Cell() for _ in range(HOURS)]
    for row in cells:
        for hour, cell in enumerate(row):
            _merge(by_hour[hour], cell)
    cleanups = sum(cell.cleanups for cell in by_hour)
    if cleanups < MIN_CLEANUPS:
        return None
    per_run = cleanups / sum(cell.runs for cell in by_hour)
    hot = [bool(cell.runs) and cell.cleanups / cell.runs >= CLUSTER_FACTOR * per_run for cell in by_hour]
    if all(hot):  # cannot happen (not every hour is above the average), but would loop below
        return None
    spans: list[list[int]] = []
    first = hot.index(False) + 1  # start just after a cool hour, so no span is cut at midnight
    for hour in ((first + i) % HOURS for i in range(HOURS)):
        if not hot[hour]:
            continue
        if spans and (spans[-1][-1] + 1) % HOURS == hour:
            spans[-1].append(hour)
        else:
            spans.append([hour])
    if not spans:
        return None
    held, hours = max((sum(by_hour[h].cleanups for h in span), span) for span in spans)
    if held < CLUSTER_SHARE * cleanups:
        return None
    return {
        "start_hour": hours[0],
        "end_hour": (hours[-1] + 1) % HOURS,
        "days": _days(cells, hours),
        "cleanups": held,
        "of": cleanups,
    }


def _days(cells: list[list[Cell]], hours: list[int]) -> str | None:
    """`weekdays` or `weekends` when, in those hours, one has DAYS_FACTOR × the other's cleanups per run."""
    weekdays, weekends = Cell(), Cell()
    for day, row in enumerate(cells):
        for hour in hours:
            _merge(weekends if day in WEEKEND else weekdays, row[hour])
    if not (weekdays.runs and weekends.runs):
        return None
    on_weekdays, at_weekends = weekdays.cleanups / weekdays.runs, weekends.cleanups / weekends.runs
    if on_weekdays >= DAYS_FACTOR * at_weekends:
        return "weekdays"
    if at_weekends >= DAYS_FACTOR * on_weekdays:
        return "weekends"
    return None


def _merge(into: Cell, cell: Cell) -> None:
    into.runs += cell.runs
    into.cleanups += cell.cleanups
    into.auto_completed += cell.auto_completed
    into.checked += cell.checked


def rate_trend(bins: list[VolumeBin]) -> str | None:
    """`grows`, `falls` or `flat` from the quietest and the busiest bin that checked anything;
    None with fewer than two such bins."""
    compared = [volume_bin.cell for volume_bin in bins if volume_bin.cell.checked]
    if len(compared) < 2:
        return None
    quiet, busy = compared[0], compared[-1]
    low, high = wilson(quiet.auto_completed, quiet.checked), wilson(busy.auto_completed, busy.checked)
    if busy.rate >= GROWS_FACTOR * quiet.rate and high["low"] > low["high"]:
        return "grows"
    if quiet.rate >= GROWS_FACTOR * busy.rate and low["low"] > high["high"]:
        return "falls"
    return "flat"


def sentence(
    total: Cell, cluster: dict[str, Any] | None, trend: str | None, bins: list[VolumeBin], zone: str
) -> str:
    """The heatmap and the volume bins in one sentence, for the page and the digest."""
    if not total.runs:
        return "No runs recorded in this range."
    if not total.cleanups:
        hours = "no cleanups"
    elif cluster is None and total.cleanups < MIN_CLEANUPS:
        hours = f"too few cleanups ({total.cleanups}) to see a pattern by hour"
    elif cluster is None:
        hours = "cleanups show no cluster by hour of day"
    else:
        place = zone.rsplit("/", 1)[-1].replace("_", " ")
        days = {"weekdays": " on weekdays", "weekends": " at weekends", None: ""}[cluster["days"]]
        span = f"{cluster['start_hour']:02d}:00–{cluster['end_hour']:02d}:00 {place} time"
        hours = f"cleanups cluster {span}{days} ({cluster['cleanups']} of {cluster['of']})"
    if trend is None:
        volume = "the volume checked per run varied too little to compare rates"
    else:
        compared = [volume_bin for volume_bin in bins if volume_bin.cell.checked]
        quiet, busy = compared[0], compared[-1]
        figures = (
            f"{_pct(quiet.cell.rate)} at {quiet.label} batches a run, {_pct(busy.cell.rate)} at {busy.label}"
        )
        volume = {
            "grows": f"the rate grows with volume ({figures})",
            "falls": f"the rate falls as volume grows ({figures})",
            "flat": "the rate does not grow with volume",
        }[trend]
    words = f"{hours}; {volume}."
    return words[0].upper() + words[1:]


def _pct(rate: float) -> str:
    return f"{rate * 100:.2f} %"
