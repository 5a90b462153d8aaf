"""What the DAG's hung-run alarm is on each Airflow line Composer 3 runs."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from batch_cleanup.compat import airflow_minor
from batch_cleanup.notify import deadline_missed, hung_run_deadline, invalid_params
from batch_cleanup.steps import InvalidParams


@pytest.mark.parametrize(
    ("version", "minor"), [("3.1.8", (3, 1)), ("3.2.2", (3, 2)), ("3.3.1", (3, 3)), ("3.3.0rc1", (3, 3))]
)
def test_airflow_minor(version, minor):
    assert airflow_minor(version) == minor


@pytest.mark.parametrize("version", ["3.2.2", "3.3.1"])
def test_from_3_2_a_run_unfinished_after_the_deadline_posts_a_deadline_alert(version, caplog):
    with caplog.at_level(logging.WARNING):
        alert = hung_run_deadline("slack_x", 10, airflow_version=version)
    assert alert.interval == timedelta(minutes=10)
    assert type(alert.reference).__name__ == "DagRunQueuedAtDeadline"
    assert alert.callback.path.endswith(deadline_missed.__name__)
    assert alert.callback.kwargs == {"slack_conn_id": "slack_x", "minutes": 10}
    assert not caplog.records


def test_on_3_1_the_deadline_alert_is_off_and_the_log_says_why_and_what_stands_in(caplog):
    with caplog.at_level(logging.WARNING):
        assert hung_run_deadline("slack_x", 10, airflow_version="3.1.8") is None
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    said = ("Airflow 3.1.8", "Deadline Alert", "off", "dagrun_timeout")
    assert [words for words in said if words not in record.message] == []


BOTH = ("critical_threshold", "warning_threshold")
RATE = {"alert_rule": "burn_rate"}


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({"params": {"warning_threshold": 5, "critical_threshold": 3}}, BOTH),
        ({"params": {"warning_threshold": 6}}, BOTH),  # default critical 5
        ({"params": {"window_minutes": 0}}, ("window_minutes",)),
        ({"exception": InvalidParams("Invalid params: critical_threshold (3) ≤ warning_threshold (5)")}, ()),
        ({"params": {**RATE, "rate_objective_pct": 20}}, ("rate_objective_pct", "burn_rate")),
        ({"params": {"alert_rule": "burn"}}, ("alert_rule",)),
    ],
    ids=[
        *("contradicting", "warning-above-default-critical", "out-of-range", "exception-only"),
        *("objective-the-rate-rule-cannot-reach", "unknown-rule"),
    ],
)
def test_a_trigger_mistake_is_recognised_from_the_params_or_the_exception(context, named):
    mistake = invalid_params(context)
    assert mistake is not None
    assert all(field in mistake for field in named)


@pytest.mark.parametrize(
    "context",
    [
        *({}, {"params": {}}, {"params": {"warning_threshold": 3, "critical_threshold": 5}}),
        {"exception": None},
        {"params": {**RATE, "rate_objective_pct": 2}},
        {"params": {"alert_rule": "count", "rate_objective_pct": 20}},  # no CRITICAL factor to exceed
    ],
    ids=["no-params", "defaults", "valid", "no-exception", "valid-rate", "count-with-a-high-objective"],
)
def test_valid_params_are_no_mistake_and_the_failure_is_posted(context):
    assert invalid_params(context) is None
