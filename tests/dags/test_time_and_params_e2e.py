"""Timeouts, re-runs and params that span two fields, through whole DAG runs. A coordinator that
acted but answered too late: the retry gets the replayed answer, and the cleanup is recorded once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.scenario import DAG_ID, record_events, stalled

pytestmark = pytest.mark.e2e


def test_timeout_after_the_coordinator_acted_is_recorded_once(airflow, fresh, events):
    coordinator, sink = fresh
    coordinator.seed([stalled("b-acted-then-slow")])
    # The first call completes the batch, then answers after the client gave up.
    coordinator.faults([{"delay_seconds": 4, "after_action": True}])

    run = airflow.dags_test(
        DAG_ID,
        name="timeout-after-action",
        extra_env={"AIRFLOW__BATCH_CLEANUP__COORDINATOR_TIMEOUT_SECONDS": "2"},
        expect="success",
    )
    assert run.tries["check_stalled"] == 2
    assert "did not answer within 2 s" in run.output
    calls = coordinator.calls()
    assert len(calls) == 2 and len({call["idempotency_key"] for call in calls}) == 1
    assert calls[1]["replayed"] is True, "the retry must get the replayed answer"
    recorded = [event["batch_ids"] for event in events()]
    assert recorded == [["b-acted-then-slow"]], "the cleanup is recorded although the first call timed out"
    assert sink.messages() == []


def test_a_re_run_of_an_old_run_counts_the_same_events(airflow, fresh, db):
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    record_events(db, old - timedelta(minutes=10), "then-0", "then-1", "then-2")
    conf = {"notify": False}
    first = airflow.dags_test(DAG_ID, conf=conf, run_after=old, name="old-run")
    # Cleanups recorded since then must not change what that run counted.
    record_events(db, datetime.now(UTC), "since-0", "since-1", "since-2", "since-3")
    again = airflow.dags_test(DAG_ID, conf=conf, run_after=old, name="old-run-again")

    for run in (first, again):
        assert run.state == "success", run.explain()
        assert "3 cleanups in the last 60 minutes ≥ 3 → WARNING" in run.output
    assert first.run_id == again.run_id, "the second run is a re-run of the same DAG run"


def test_critical_not_above_warning_is_refused_before_the_coordinator_and_posts_nothing(
    airflow, fresh, events
):
    """A trigger typo (the form checks each field alone) is the triggering person's mistake, not an
    outage of the cleanup: refused before the coordinator is called, named in the log, not posted."""
    coordinator, sink = fresh
    coordinator.seed([stalled("b-untouched")])

    run = airflow.dags_test(
        DAG_ID, conf={"warning_threshold": 5, "critical_threshold": 3}, name="bad-thresholds", expect="failed"
    )
    assert run.tries["check_stalled"] == 1
    assert "critical_threshold (3) must be greater than warning_threshold (5)" in run.output
    assert coordinator.calls() == [], "the coordinator must not be called with params that cannot work"
    assert events() == []
    assert sink.messages() == [], "a trigger mistake is not posted to #daily-orchestration"
    assert "Nothing posted to Slack: check_stalled failed on its params, a trigger mistake" in run.output


def test_the_window_excludes_its_start_and_ends_at_the_run(airflow, fresh, db, events):
    """A 60-minute window of a 15-minute schedule holds four runs: the run of exactly an hour ago,
    whose event is stamped with its run time, is out; so is anything after this run's time."""
    coordinator, _ = fresh
    coordinator.seed([stalled("b-this-run")])
    at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    for minutes in (60, 45, 30, 15, -1):
        record_events(db, at - timedelta(minutes=minutes), f"b-{minutes}")

    run = airflow.dags_test(
        DAG_ID, conf={"notify": False}, run_after=at, name="window-edges", expect="success"
    )
    assert "4 cleanups in the last 60 minutes ≥ 4 → CRITICAL" in run.output
    [own] = [event for event in events() if event.get("run_id") == run.run_id]
    assert own["timestamp"] == at, "the run's event carries the run's time"
