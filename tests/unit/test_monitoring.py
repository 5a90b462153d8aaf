"""The run's figures as Cloud Monitoring series: names, labels, values and time, as plain data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from batch_cleanup.monitoring import (
    BATCHES_AUTO_COMPLETED,
    BATCHES_CHECKED,
    CLEANUPS_IN_WINDOW,
    HEARTBEAT,
    MESSAGES_FAILED,
    MESSAGES_SENT,
    METRIC_TYPES,
    RunFigures,
    run_series,
)
from batch_cleanup.policy import Kind
from tests.support.times import NoOffset

END = datetime(2026, 3, 8, 6, 47, tzinfo=UTC)
# fmt: off
FULL = RunFigures(
    dag_id="stalled_batch_cleanup", end_time=END, kind="escalation", severity="CRITICAL",
    batches_checked=12, batches_auto_completed=2, cleanups_in_window=5, messages_sent=0, messages_failed=1,
)
# fmt: on


def by_type(series: list[dict]) -> dict[str, dict]:
    return {s["metric"]["type"]: s for s in series}


def value(series: dict) -> int:
    [point] = series["points"]
    return point["value"]["int64_value"]


def test_a_full_run_is_one_gauge_point_per_metric_at_its_end_time():
    series = run_series(FULL, project_id="prod-project")
    assert [s["metric"]["type"] for s in series] == list(METRIC_TYPES)
    expected = {BATCHES_CHECKED: 12, BATCHES_AUTO_COMPLETED: 2, CLEANUPS_IN_WINDOW: 5}
    expected |= {MESSAGES_SENT: 0, MESSAGES_FAILED: 1, HEARTBEAT: 1}
    assert {metric: value(s) for metric, s in by_type(series).items()} == expected
    for s in series:
        assert (s["metric_kind"], s["value_type"]) == ("GAUGE", "INT64")
        assert s["resource"] == {"type": "global", "labels": {"project_id": "prod-project"}}
        assert [p["interval"] for p in s["points"]] == [{"end_time": END}]


def test_metric_names_are_the_custom_batch_cleanup_ones():
    names = "batches_checked batches_auto_completed cleanups_in_window messages_sent messages_failed"
    types = tuple(f"custom.googleapis.com/batch_cleanup/{name}" for name in [*names.split(), "heartbeat"])
    assert types == METRIC_TYPES


def test_messages_carry_kind_and_severity_the_others_only_the_dag():
    series = by_type(run_series(FULL, project_id="p"))
    message = {"dag_id": "stalled_batch_cleanup", "kind": "escalation", "severity": "CRITICAL"}
    assert series[MESSAGES_SENT]["metric"]["labels"] == series[MESSAGES_FAILED]["metric"]["labels"] == message
    for metric in (BATCHES_CHECKED, BATCHES_AUTO_COMPLETED, CLEANUPS_IN_WINDOW, HEARTBEAT):
        assert series[metric]["metric"]["labels"] == {"dag_id": "stalled_batch_cleanup"}


@pytest.mark.parametrize("kind", [k.value for k in Kind])
@pytest.mark.parametrize("severity", ["WARNING", "CRITICAL", None])
def test_label_keys_are_fixed_whatever_the_decision(kind, severity):
    figures = RunFigures(dag_id="d", end_time=END, kind=kind, severity=severity)
    labels = by_type(run_series(figures, project_id="p"))[MESSAGES_SENT]["metric"]["labels"]
    assert labels == {"dag_id": "d", "kind": kind, "severity": severity or "NONE"}


def test_a_run_that_learnt_nothing_still_beats_and_counts_its_messages():
    figures = RunFigures(dag_id="d", end_time=END, messages_failed=1, kind="alert", severity="WARNING")
    series = by_type(run_series(figures, project_id="p"))
    assert set(series) == {MESSAGES_SENT, MESSAGES_FAILED, HEARTBEAT}, "unknown figures are not written as 0"
    assert value(series[HEARTBEAT]) == 1
    assert value(series[MESSAGES_FAILED]) == 1


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"end_time": datetime(2026, 3, 8, 6, 47)}, "end_time"),
        ({"end_time": datetime(2026, 3, 8, 6, 47, tzinfo=NoOffset())}, "end_time"),
        ({"kind": "page"}, "kind"),
        ({"severity": "WARN"}, "severity"),
        ({"batches_checked": -1}, "batches_checked"),
        ({"cleanups_in_window": True}, "cleanups_in_window"),
        ({"messages_sent": 1.0}, "messages_sent"),
    ],
)
def test_figures_outside_the_contract_are_refused_by_name(changes, names):
    figures = RunFigures(**{**FULL.__dict__, **changes})
    with pytest.raises(ValueError, match=names):
        run_series(figures, project_id="p")
