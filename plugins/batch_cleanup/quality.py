"""Alert-quality figures: were the incidents real, how fast did people react, how often did CRITICAL page.

Pure: incidents in (documents of `batch_cleanup_incidents`, with the labels of docs/firestore-schema.md),
figures out, no clock and no I/O. The figures rest on the labels people gave, so they always say
how many were labelled: "3 of 4 labelled incidents were real", never a bare "75 %"; the precision
comes with its Wilson 95 % interval, which stays honest for a handful of labels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from batch_cleanup.labels import DISPUTED, NOISE, REAL
from batch_cleanup.text import as_utc

SEVERITIES = ("WARNING", "CRITICAL")
TOTAL = "total"
LABELS = (REAL, NOISE, DISPUTED)
# The normal quantile of a two-sided 95 % interval.
Z95 = 1.959963984540054
WEEK = timedelta(days=7)

log = logging.getLogger(__name__)


def wilson(successes: int, trials: int, z: float = Z95) -> dict[str, float] | None:
    """`successes / trials` with its Wilson score interval {value, low, high}; None without trials.

    Wilson's interval, unlike value ± z·σ, stays inside [0, 1] and is not zero-wide at 0 or 1 of n.
    """
    if trials <= 0:
        return None
    p = successes / trials
    spread = z * z / trials
    centre = (p + spread / 2) / (1 + spread)
    half = z * math.sqrt(p * (1 - p) / trials + spread / (4 * trials)) / (1 + spread)
    return {"value": p, "low": max(0.0, centre - half), "high": min(1.0, centre + half)}


def quantile(values: Iterable[float], q: float) -> float | None:
    """The `q` quantile, linear between the two nearest values (numpy's default); None for no value."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def spread(minutes: list[float]) -> dict[str, Any]:
    """Median and p90 of durations in minutes (one decimal), and how many there were."""
    median, p90 = quantile(minutes, 0.5), quantile(minutes, 0.9)
    return {
        "median": None if median is None else round(median, 1),
        "p90": None if p90 is None else round(p90, 1),
        "count": len(minutes),
    }


def said(incidents: int, labelled: int, real: int, disputed: int) -> str:
    """What the figures rest on, in words: `3 of 4 labelled incidents were real; 2 not labelled`."""
    if not incidents:
        return "no incidents"
    if incidents == 1 and not labelled:
        return "1 incident, not labelled"
    if not labelled:
        return f"none of the {incidents} incidents was labelled"
    verb = "was" if labelled == 1 else "were"
    words = f"{real} of {labelled} labelled {'incident' if labelled == 1 else 'incidents'} {verb} real"
    if disputed:
        words += f" ({disputed} disputed)"
    if incidents > labelled:
        words += f"; {incidents - labelled} not labelled"
    return words


def label_of(incident: Mapping[str, Any]) -> str | None:
    """The incident's label value (`real`, `noise`, `disputed`), None when unlabelled. Anything else
    is logged with the document's name and counts as unlabelled: one bad document blocks no figure."""
    label = incident.get("label")
    if not label:
        return None
    value = label.get("value") if isinstance(label, Mapping) else None
    if value not in LABELS:
        name = f"batch_cleanup_incidents/{incident.get('id', '?')}.label.value"
        log.error("%s must be one of %s; got %r: counted as not labelled.", name, ", ".join(LABELS), value)
        return None
    return value


def _minutes(later: datetime, earlier: datetime) -> float:
    # A reaction stamped before the incident (clocks apart) counts as immediate, not negative.
    return max((later - earlier).total_seconds() / 60, 0.0)


class _Group:
    """The running sums of one severity (or of all)."""

    def __init__(self) -> None:
        self.incidents = 0
        self.labels = dict.fromkeys(LABELS, 0)
        self.critical = 0
        self.reactions: list[float] = []
        self.resolves: list[float] = []

    def figures(self, weeks: float) -> dict[str, Any]:
        labelled = sum(self.labels.values())
        real, disputed = self.labels[REAL], self.labels[DISPUTED]
        return {
            "incidents": self.incidents,
            "labelled": labelled,
            **self.labels,
            "precision": wilson(real, labelled),
            "said": said(self.incidents, labelled, real, disputed),
            "critical_pages_per_week": round(self.critical / weeks, 2) if weeks else None,
            "first_reaction_minutes": spread(self.reactions),
            "resolve_minutes": spread(self.resolves),
        }


def figures(incidents: Iterable[Mapping[str, Any]], *, start: datetime, end: datetime) -> dict[str, Any]:
    """Alert-quality figures over the incidents opened in `(start, end]`, per peak severity
    (`WARNING`, `CRITICAL`) and in `total`.

    Each: `incidents`; `labelled` and its `real`, `noise`, `disputed`; `precision` = real ÷ labelled
    {value, low, high} with its Wilson 95 % interval (a disputed label counts as not real), or None
    when nothing is labelled; `said`, the same in words; `critical_pages_per_week`: incidents that
    reached CRITICAL (each paged CRITICAL once, by its alert or its escalation, as the backtest
    counts) per 7 days of the range; `first_reaction_minutes` (opened → first reaction) and
    `resolve_minutes` (opened → closed, closed incidents only), {median, p90, count}.
    """
    start, end = as_utc(start, "start"), as_utc(end, "end")
    groups = {name: _Group() for name in (*SEVERITIES, TOTAL)}
    for incident in incidents:
        name = incident.get("id", "?")
        opened = as_utc(incident["opened_at"], f"{name}.opened_at")
        if not start < opened <= end:
            continue
        severity = incident.get("peak_severity") or incident.get("severity")
        touched = [groups[TOTAL]] + ([groups[severity]] if severity in groups else [])
        label = label_of(incident)
        reacted, closed = incident.get("first_reaction_at"), incident.get("closed_at")
        for group in touched:
            group.incidents += 1
            group.critical += severity == "CRITICAL"
            if label:
                group.labels[label] += 1
            if reacted:
                group.reactions.append(_minutes(as_utc(reacted, f"{name}.first_reaction_at"), opened))
            if closed:
                group.resolves.append(_minutes(as_utc(closed, f"{name}.closed_at"), opened))
    weeks = (end - start) / WEEK
    return {name: group.figures(weeks) for name, group in groups.items()}
