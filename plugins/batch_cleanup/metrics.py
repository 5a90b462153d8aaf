"""Run metrics through Airflow's own stats interface: they reach StatsD or OpenTelemetry when the
deployment turns metrics on (Cloud Composer forwards them to Cloud Monitoring), and cost nothing
otherwise. Names are documented in the README."""

from __future__ import annotations

PREFIX = "batch_cleanup"


def gauge(name: str, value: float, **tags: str) -> None:
    from airflow.sdk.observability.stats import Stats

    Stats.gauge(f"{PREFIX}.{name}", value, tags=tags or None)


def count(name: str, **tags: str) -> None:
    from airflow.sdk.observability.stats import Stats

    Stats.incr(f"{PREFIX}.{name}", tags=tags or None)
