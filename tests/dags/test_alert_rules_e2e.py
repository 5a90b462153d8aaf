"""The rate rule (`alert_rule` `burn_rate`, issue 20) through whole DAG runs at chosen times: each run
writes its record, the next reads it. The coordinator stand-in keeps 300 healthy batches active (each
run checks them again: enough for the rule's half hour) and is seeded with the stalled ones of each run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.scenario import DAG_ID, alert_state, healthy, stalled, texts

pytestmark = pytest.mark.e2e

RATE = {"alert_rule": "burn_rate"}
HEALTHY = [healthy(f"steady-{i}") for i in range(300)]


def quarter_hour() -> datetime:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=now.minute % 15)


def test_a_volume_aware_warning_escalates_to_critical_and_resolves(airflow, fresh, db):
    """One cleanup in the window is no count WARNING; 9 of 309 batches (2.9× the objective) is a
    rate one. The next run's 45 of 345 make 54 of 654 over the half hour: 8.3×, CRITICAL. Later,
    an hour with nothing auto-completed no longer holds the incident: RESOLVED."""
    coordinator, sink = fresh
    coordinator.seed(HEALTHY)
    start = quarter_hour()

    coordinator.seed([stalled(f"slow-{i}") for i in range(9)])
    opened = airflow.dags_test(DAG_ID, conf=RATE, run_after=start, name="rate-warning", expect="success")
    assert "2.9× the 1 % objective over the last hour (9 of 309 batches auto-completed)" in opened.output
    [warning] = texts(sink)
    assert warning.splitlines()[:3] == [
        "WARNING: systemic batch stalls",
        "Auto-completion rate: 2.9× the 1 % objective over the last hour (9 of 309 batches auto-completed); "
        "2.9× over the last run",
        "1 cleanup in the last 60 minutes",
    ]
    assert "slow-0" in warning

    coordinator.seed([stalled(f"outage-{i}") for i in range(45)])
    later = start + timedelta(minutes=15)
    airflow.dags_test(DAG_ID, conf=RATE, run_after=later, name="rate-critical", expect="success")
    escalation = texts(sink)[1]
    assert escalation.splitlines()[:3] == [
        "Escalated to CRITICAL: systemic batch stalls",
        "Auto-completion rate: 8.3× the 1 % objective over the last hour (54 of 654 batches auto-completed); "
        "13.0× over the last run",
        "2 cleanups in the last 60 minutes",
    ]
    assert alert_state(db)["severity"] == "CRITICAL"

    quiet = start + timedelta(minutes=90)
    done = airflow.dags_test(DAG_ID, conf=RATE, run_after=quiet, name="rate-resolved", expect="success")
    assert done.task_states["send_resolved"] == "success"
    resolved = texts(sink)[2]
    assert resolved.startswith("RESOLVED: systemic batch stalls are over")
    assert "Lasted 1 h 30 min, 2 cleanups in total, peak severity CRITICAL" in resolved
    assert "Now 0.0× the 1 % objective over the last hour (0 of 300 batches auto-completed)" in resolved
    assert len(texts(sink)) == 3
    assert alert_state(db)["open"] is False


def test_an_objective_the_rate_rule_cannot_reach_is_refused_before_the_coordinator(airflow, fresh, db):
    coordinator, sink = fresh
    coordinator.seed([stalled("b-untouched")])
    conf = {**RATE, "rate_objective_pct": 20}

    run = airflow.dags_test(DAG_ID, conf=conf, name="rate-refused", expect="failed")
    assert run.task_states["check_stalled"] == "failed"
    assert run.tries["check_stalled"] == 1, "a manual mistake is not retried"
    assert "rate_objective_pct 20 cannot work with alert_rule burn_rate" in run.output
    assert coordinator.calls() == [], "the coordinator must not be called with params that cannot work"
    assert texts(sink) == [], "a manual mistake pages no one"
    assert "Nothing posted to Slack: check_stalled failed on its params, a trigger mistake" in run.output
    assert alert_state(db) == {}
