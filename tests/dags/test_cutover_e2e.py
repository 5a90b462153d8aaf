"""The cutover from the coordinator's own tracking (docs/cutover.md), through whole DAG runs: the events
it wrote before are counted, and a cleanup it still records too is counted once and named in Slack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.scenario import DAG_ID, healthy, stalled, texts

pytestmark = pytest.mark.e2e


def coordinator_event(db, name: str, at: datetime, batch_ids: list[str]) -> None:
    """An event exactly as `_track_batch_cleanup_event()` writes it (the seed's schema: no dag_id)."""
    db.collection("batch_cleanup_events").document(name).set(
        {
            "timestamp": at,
            "stalled_count": len(batch_ids),
            "batch_ids": batch_ids,
            "results": [{"batch_id": b, "was_stalled": True} for b in batch_ids],
        }
    )


def test_the_coordinators_events_from_before_the_cutover_count_in_the_first_hour(airflow, fresh, db):
    coordinator, sink = fresh
    coordinator.seed([stalled("after-cutover")])
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    coordinator_event(db, "before-1", at - timedelta(minutes=44, seconds=58), ["legacy-1"])
    coordinator_event(db, "before-2", at - timedelta(minutes=29, seconds=57), ["legacy-2"])

    run = airflow.dags_test(DAG_ID, run_after=at, name="cutover-legacy", expect="success")
    assert "3 cleanups in the last 60 minutes ≥ 3 → WARNING" in run.output
    [warning] = texts(sink)
    assert "legacy-1" in warning and "legacy-2" in warning and "after-cutover" in warning
    assert "recorded by the coordinator" not in warning


def test_a_cleanup_the_coordinator_still_records_counts_once_and_slack_hears_why(airflow, fresh, db):
    coordinator, sink = fresh
    coordinator.seed([healthy("busy")])
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    # The DAG's run 15 minutes ago recorded "twice-1"; the coordinator's tracking, still on, wrote it too.
    db.collection("batch_cleanup_events").document("dag-event").set(
        {
            "timestamp": at - timedelta(minutes=15),
            "batch_ids": ["twice-1"],
            "stalled_count": 1,
            "dag_id": DAG_ID,
        }
    )
    coordinator_event(db, "coordinator-copy", at - timedelta(minutes=15) + timedelta(seconds=3), ["twice-1"])
    coordinator_event(db, "before-1", at - timedelta(minutes=30), ["legacy-1"])
    coordinator_event(db, "before-2", at - timedelta(minutes=45), ["legacy-2"])

    run = airflow.dags_test(DAG_ID, run_after=at, name="cutover-twice", expect="success")
    assert "recorded by the coordinator too: its own tracking is still on" in run.output
    assert "coordinator-copy" in run.output
    assert "3 cleanups in the last 60 minutes ≥ 3 → WARNING" in run.output, "four events, one cleanup twice"
    [warning] = texts(sink)
    assert "1 cleanup was also recorded by the coordinator's own tracking (counted once here)" in warning
