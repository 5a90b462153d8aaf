"""What if Firestore holds documents the DAG did not write as it writes them: an event without
`batch_ids`, one whose `batch_ids` is a string, one whose `timestamp` is a string, and a state
document whose `version` is "seven". Each is logged by its id; the WARNING still goes out, and the
state's next save repairs the version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.scenario import DAG_ID, texts

pytestmark = pytest.mark.e2e


def test_bad_documents_are_logged_and_block_no_warning(airflow, fresh, db):
    _, sink = fresh
    at = datetime.now(UTC) - timedelta(minutes=5)
    events = db.collection("batch_cleanup_events")
    events.document("good").set({"timestamp": at, "batch_ids": ["g-1"], "stalled_count": 1})
    events.document("no-batch-ids").set({"timestamp": at, "stalled_count": 1})
    events.document("text-batch-ids").set({"timestamp": at, "batch_ids": "g-2", "stalled_count": 1})
    events.document("text-timestamp").set({"timestamp": at.isoformat(), "batch_ids": ["t-1"]})
    state = db.collection("batch_cleanup_alert_state").document(DAG_ID)
    state.set({"open": False, "version": "seven"})

    run = airflow.dags_test(DAG_ID, name="garbage-documents", expect="success")
    [warning] = texts(sink)
    assert warning.startswith("WARNING") and "3 cleanups" in warning, warning
    for logged in (
        "batch_cleanup_events/no-batch-ids",
        "batch_cleanup_events/text-batch-ids",
        "text-timestamp",
        f"batch_cleanup_alert_state/{DAG_ID} has `version` str",
    ):
        assert logged in run.output, f"{logged!r} is not in the log"
    repaired = state.get().to_dict()
    assert repaired["version"] == 1 and repaired["open"] is True
