"""deploy/monitoring/, checked as files: each loads as Google's own AlertPolicy or Dashboard (unknown
fields refused), and every filter names a metric, resource and labels that the run's write really has."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.cloud import monitoring_dashboard_v1, monitoring_v3

from batch_cleanup import monitoring as metrics
from batch_cleanup.names import DAG_ID
from batch_cleanup.policy import PolicyConfig
from tests.conftest import REPO

FOLDER = REPO / "deploy" / "monitoring"
POLICIES = {
    "heartbeat": FOLDER / "policy-heartbeat-missing.json",
    "messages_failed": FOLDER / "policy-messages-failed.json",
    "cleanups_in_window": FOLDER / "policy-cleanups-in-window.json",
}
DASHBOARD = FOLDER / "dashboard.json"
DEFAULTS = PolicyConfig()

# The labels each metric carries, from the builder itself.
FIGURES = metrics.RunFigures(DAG_ID, datetime(2026, 1, 1, tzinfo=UTC), 1, 1, 1)
WRITTEN = {
    s["metric"]["type"]: set(s["metric"]["labels"]) for s in metrics.run_series(FIGURES, project_id="p")
}


def policy(name: str) -> monitoring_v3.AlertPolicy:
    return monitoring_v3.AlertPolicy.from_json(POLICIES[name].read_text())


def condition(name: str) -> tuple[str, Any]:
    [only] = policy(name).conditions
    which = monitoring_v3.AlertPolicy.Condition.pb(only).WhichOneof("condition")
    return which, getattr(only, which)


def objects(data: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in `data`, however deep: no filter is missed, whatever widget holds it."""
    if isinstance(data, dict):
        yield data
        data = list(data.values())
    if isinstance(data, list):
        for item in data:
            yield from objects(item)


def queries(data: Any) -> Iterator[tuple[str, list[str]]]:
    """(filter, group-by fields of its aggregations) for every object that has a filter."""
    for found in objects(data):
        if "filter" in found:
            aggregations = found.get("aggregations") or [found.get("aggregation") or {}]
            yield found["filter"], [f for a in aggregations for f in a.get("groupByFields", [])]


def _one(pattern: str, text: str) -> str:
    [match] = re.findall(pattern, text)
    return match


def metric_of(text: str) -> str:
    return _one(r'metric\.type\s*=\s*"([^"]+)"', text)


def test_the_folder_holds_the_three_policies_and_the_dashboard():
    assert sorted(FOLDER.glob("*.json")) == sorted([*POLICIES.values(), DASHBOARD])


@pytest.mark.parametrize("name", POLICIES)
def test_each_policy_loads_as_an_alert_policy_with_help_for_the_responder(name):
    loaded = policy(name)

    assert loaded.display_name
    assert loaded.documentation.mime_type == "text/markdown"
    assert loaded.documentation.subject
    assert len(loaded.documentation.content) > 200, "what it means and what to check"
    assert loaded.severity != monitoring_v3.AlertPolicy.Severity.SEVERITY_UNSPECIFIED
    assert loaded.enabled


def test_the_dashboard_loads_as_a_dashboard_and_shows_every_metric():
    dashboard = monitoring_dashboard_v1.Dashboard.from_json(DASHBOARD.read_text())

    assert dashboard.display_name
    shown = {metric_of(text) for text, _ in queries(json.loads(DASHBOARD.read_text()))}
    assert shown == set(metrics.METRIC_TYPES)


@pytest.mark.parametrize("path", [*POLICIES.values(), DASHBOARD], ids=lambda p: p.name)
def test_every_filter_names_what_the_run_writes(path):
    found = list(queries(json.loads(path.read_text())))
    assert found

    for text, group_by in found:
        metric = metric_of(text)
        assert metric in metrics.METRIC_TYPES, text
        assert _one(r'resource\.type\s*=\s*"([^"]+)"', text) == metrics.RESOURCE_TYPE
        labels = dict(re.findall(r'metric\.labels?\.(\w+)\s*=\s*"([^"]*)"', text))
        assert labels.get("dag_id") == DAG_ID, text
        assert set(labels) <= WRITTEN[metric], text
        grouped = {_one(r"^metric\.labels?\.(\w+)$", field) for field in group_by}
        assert grouped <= WRITTEN[metric], (text, group_by)


def test_a_missing_heartbeat_for_45_minutes_alerts():
    which, absent = condition("heartbeat")

    assert which == "condition_absent"
    assert metric_of(absent.filter) == metrics.HEARTBEAT
    assert absent.duration == timedelta(minutes=45)


def test_any_failed_message_alerts():
    which, threshold = condition("messages_failed")

    assert which == "condition_threshold"
    assert metric_of(threshold.filter) == metrics.MESSAGES_FAILED
    assert threshold.comparison == monitoring_v3.ComparisonType.COMPARISON_GT
    assert threshold.threshold_value == 0


def test_cleanups_in_window_alert_at_the_dags_warning_threshold():
    which, threshold = condition("cleanups_in_window")

    assert which == "condition_threshold"
    assert metric_of(threshold.filter) == metrics.CLEANUPS_IN_WINDOW
    # The API compares with GT or LT only; the counts are integers, so > warning - 1 is ≥ warning.
    assert threshold.comparison == monitoring_v3.ComparisonType.COMPARISON_GT
    assert threshold.threshold_value == DEFAULTS.warning_threshold - 1
    assert str(DEFAULTS.warning_threshold) in policy("cleanups_in_window").display_name


def test_the_dashboard_draws_the_dags_thresholds():
    data = json.loads(DASHBOARD.read_text())

    lines = {t["label"]: t["value"] for found in objects(data) for t in found.get("thresholds", [])}

    assert lines == {"WARNING": DEFAULTS.warning_threshold, "CRITICAL": DEFAULTS.critical_threshold}
