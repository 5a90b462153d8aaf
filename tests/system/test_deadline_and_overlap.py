"""On a real scheduler and triggerer (LocalExecutor on SQLite): the Deadline Alert fires for a hung
run and stays silent for one that failed before its deadline, and a manual trigger waits for the
running run (max_active_runs=1) without counting twice."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator

import pytest

from tests.dags import conftest as scenarios
from tests.scenario import texts
from tests.system.deployment import Deployment, new_deployment, running
from tests.system.test_scheduler import FORM_PARAMS, stalled_under_form_params

pytestmark = pytest.mark.system

db, events, fresh = scenarios.db, scenarios.events, scenarios.fresh  # empty stand-ins, the events

OVERDUE_WAIT = 180.0
# The deadline is 1 minute after the run was queued; the scheduler then queues the callback and the
# triggerer runs it within seconds.
CALLBACK_WAIT = 150.0


@pytest.fixture(scope="module")
def deployment(coordinator, slack_sink, firestore_emulator) -> Iterator[Deployment]:
    with running(
        new_deployment("deadline", coordinator, slack_sink, firestore_emulator, DEADLINE_MINUTES="1")
    ) as airflow:
        yield airflow


def overdue(sink, run_id: str) -> list[str]:
    return [text for text in texts(sink) if "overdue" in text and run_id in text]


def test_manual_trigger_waits_for_the_running_run(deployment: Deployment, fresh, events):
    coordinator, _ = fresh
    coordinator.seed([stalled_under_form_params("overlap-1")])
    coordinator.faults([{"delay_seconds": 12}])

    assert deployment.trigger(FORM_PARAMS, run_id="overlap-a").status_code == 200
    assert deployment.trigger(FORM_PARAMS, run_id="overlap-b").status_code == 200
    seen_waiting = False
    # Up to 2 minutes: the scheduled run the unpaused DAG starts with may still hold the one slot.
    for _ in range(240):
        states = {run["dag_run_id"]: run["state"] for run in deployment.runs()}
        if states.get("overlap-a") == "running" and states.get("overlap-b") == "queued":
            seen_waiting = True
            break
        time.sleep(0.5)
    first, second = deployment.wait_for_run("overlap-a"), deployment.wait_for_run("overlap-b")

    assert seen_waiting, "the second run should wait, queued, while the first runs"
    assert first["state"] == second["state"] == "success", deployment.explain_run("overlap-b")
    assert second["start_date"] >= first["end_date"]
    assert [event["batch_ids"] for event in events()] == [["overlap-1"]], "the batch is counted once"


def test_deadline_alert_posts_when_a_run_is_overdue(deployment: Deployment, fresh):
    coordinator, sink = fresh
    coordinator.faults([{"delay_seconds": 80}])  # hung for longer than the 1-minute deadline

    assert deployment.trigger(FORM_PARAMS, run_id="overdue-run").status_code == 200
    waited = time.monotonic() + OVERDUE_WAIT
    while not overdue(sink, "overdue-run") and time.monotonic() < waited:
        time.sleep(2)
    run = deployment.wait_for_run("overdue-run")

    assert len(overdue(sink, "overdue-run")) == 1, (
        f"no overdue message; triggerer log:\n{deployment.component_log('triggerer')[-3000:]}"
    )
    assert "has not finished 1 minute after it was queued" in overdue(sink, "overdue-run")[0]
    assert run["state"] == "success", "the run itself finishes once the coordinator answers"


def test_a_run_that_failed_before_its_deadline_posts_only_its_failure(deployment: Deployment, fresh):
    """Airflow drops a run's deadline only when the run succeeds: the deadline of a failed run still
    fires, and its callback must see that the run has ended and post nothing."""
    coordinator, sink = fresh
    coordinator.faults([{"status": 401, "count": 20}])  # every call: a rejected key, failed at once

    assert deployment.trigger(FORM_PARAMS, run_id="failed-early").status_code == 200
    run = deployment.wait_for_run("failed-early")
    callback = _wait_for_deadline_callback(deployment, "failed-early")

    assert run["state"] == "failed", deployment.explain_run("failed-early")
    assert callback["state"] == "success", f"the deadline callback failed: {callback}\n{deployment.explain()}"
    about_the_run = [text for text in texts(sink) if "failed-early" in text]
    assert len(about_the_run) == 1, f"one message (the failure), got: {about_the_run}"
    assert "rejected the API key" in about_the_run[0]
    assert overdue(sink, "failed-early") == []
    assert "could not be read" not in deployment.component_log("triggerer"), "the state is read live"


def _wait_for_deadline_callback(deployment: Deployment, run_id: str) -> dict:
    """The run's deadline callback, from the metadata database, once the triggerer has run it."""
    query = (
        "SELECT d.deadline_time, d.missed, c.state, c.output FROM deadline d "
        "JOIN callback c ON c.id = d.callback_id JOIN dag_run r ON r.id = d.dagrun_id WHERE r.run_id = ?"
    )
    waited = time.monotonic() + CALLBACK_WAIT
    row = None
    while time.monotonic() < waited:
        with contextlib.closing(sqlite3.connect(deployment.home / "airflow.db", timeout=10)) as metadata:
            row = metadata.execute(query, (run_id,)).fetchone()
        if row is not None and row[2] in ("success", "failed"):
            return dict(zip(("deadline_time", "missed", "state", "output"), row, strict=True))
        time.sleep(2)
    raise AssertionError(
        f"the deadline callback of {run_id} did not run in time: {row}\n{deployment.explain()}"
    )
