"""Alert-quality figures from labelled incidents (issue 19 §3's contract).

A minimal stand-in for the weekly digest's branch, with the contract's signature and fields; the
history page's module of the same name replaces it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

SEVERITIES = ("WARNING", "CRITICAL")
Z_95 = 1.96


def figures(incidents: Iterable[Mapping[str, Any]], *, start: datetime, end: datetime) -> dict[str, Any]:
    """Per severity (the incident's peak) and `"total"`, over the incidents opened in (start, end]."""
    opened = [i for i in incidents if i.get("opened_at") and start < i["opened_at"] <= end]
    weeks = (end - start).total_seconds() / (7 * 24 * 3600)
    by_severity = {
        severity: [i for i in opened if (i.get("peak_severity") or i.get("severity")) == severity]
        for severity in SEVERITIES
    }
    return {name: _figures(group, weeks) for name, group in {**by_severity, "total": opened}.items()}


def _figures(incidents: list[Mapping[str, Any]], weeks: float) -> dict[str, Any]:
    values = [(i.get("label") or {}).get("value") for i in incidents]
    real, noise, disputed = (values.count(value) for value in ("real", "noise", "disputed"))
    labelled = real + noise + disputed
    critical = sum((i.get("peak_severity") or i.get("severity")) == "CRITICAL" for i in incidents)
    return {
        "incidents": len(incidents),
        "labelled": labelled,
        "real": real,
        "noise": noise,
        "disputed": disputed,
        "precision": _wilson(real, labelled),
        "said": f"{real} of {labelled} labelled incidents were real" if labelled else "no incident labelled",
        "critical_pages_per_week": critical / weeks if weeks else None,
        "first_reaction_minutes": _spread(_minutes(incidents, "first_reaction_at")),
        "resolve_minutes": _spread(_minutes(incidents, "closed_at")),
    }


def _wilson(hits: int, n: int) -> dict[str, float] | None:
    """hits ÷ n with its Wilson score interval (95 %); None without n."""
    if not n:
        return None
    p = hits / n
    centre = (p + Z_95**2 / (2 * n)) / (1 + Z_95**2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + Z_95**2 / (4 * n * n)) / (1 + Z_95**2 / n)
    return {"value": p, "low": max(0.0, centre - half), "high": min(1.0, centre + half)}


def _minutes(incidents: list[Mapping[str, Any]], field: str) -> list[float]:
    """Minutes from each incident's opening to its `field`, for those that have it."""
    return [(i[field] - i["opened_at"]).total_seconds() / 60 for i in incidents if i.get(field)]


def _spread(minutes: list[float]) -> dict[str, float | None]:
    """Median and 90th percentile (nearest rank); None of both without values."""
    if not minutes:
        return {"median": None, "p90": None}
    ranked = sorted(minutes)
    return {"median": statistics.median(ranked), "p90": ranked[math.ceil(0.9 * len(ranked)) - 1]}
