"""What if Firestore stays down for every try of a task: the run fails, and the failure message in
Slack says that Firestore is unreachable, with the connection id and the project, not Google's
"RetryError: Timeout of 60.0s exceeded"."""

from __future__ import annotations

import pytest

from dev.airflow_env import LOCAL_PROJECT
from tests.scenario import DAG_ID, explains, stalled, texts

pytestmark = pytest.mark.e2e


def test_a_task_failing_on_an_unreachable_firestore_names_it(airflow, fresh, firestore_proxy):
    coordinator, sink = fresh
    coordinator.seed([stalled("b-firestore-down")])  # record_event meets Firestore first
    firestore_proxy.refuse()
    run = airflow.dags_test(
        DAG_ID,
        name="firestore-down",
        extra_env={
            "FIRESTORE_EMULATOR_HOST": firestore_proxy.address,
            "AIRFLOW__BATCH_CLEANUP__FIRESTORE_RETRY_SECONDS": "2",
        },
        expect="failed",
    )
    assert run.task_states["record_event"] == "failed" and run.tries["record_event"] == 4, run.explain()
    named = f"Firestore (connection 'google_cloud_default', project '{LOCAL_PROJECT}') is unreachable"
    assert f"FirestoreUnavailable: {named} (create_event)" in run.output, "the task log names it"
    [failure] = texts(sink)
    assert "record_event" in failure
    assert explains(failure, named), failure
