"""What if Firestore goes away just after Slack accepted a WARNING: the write that records the post
meets the outage. The message must go out once, whether the outage is shorter than the task's
timeout (the write is retried in place) or outlasts the write (the try fails; its retry finds the
record kept in Airflow's metadata and posts nothing again)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.scenario import DAG_ID, alert_state, record_events, run_with_outage, texts

pytestmark = pytest.mark.e2e

# Google's client retries a refused write for 60 s by itself: an outage must outlast that to have
# made the WARNING go out twice.
LONG_OUTAGE_SECONDS = 65
# Slack keeps the message this long before it answers: the test cuts Firestore in between.
ANSWER_AFTER_SECONDS = 2
POSTED_VARIABLE = f"batch_cleanup_posted__{DAG_ID}"


def run_cut_at_acceptance(
    airflow, fresh, db, proxy, outage_seconds: float, env: dict[str, str] | None = None
):
    """A WARNING due (three cleanups in the window, nothing stalled now: record_event is skipped);
    the DAG run through the proxy; once Slack holds the message (and has not answered yet),
    Firestore refuses connections for `outage_seconds`, then comes back with its data. The
    WARNING must have gone out once."""
    record_events(db, datetime.now(UTC) - timedelta(minutes=5), "cut-0", "cut-1", "cut-2")
    _, sink = fresh
    sink.faults([{"answer_after_seconds": ANSWER_AFTER_SECONDS}])
    run = run_with_outage(
        airflow, proxy, sink.messages, outage_seconds, what="the WARNING reaching Slack", name="cut", env=env
    )
    warnings = [text for text in texts(sink) if text.startswith("WARNING")]
    assert len(warnings) == 1, f"posted: {texts(sink)}\n{run.explain()}"
    return run


def posted_variable(airflow) -> dict:
    """The Variable as Airflow reads it (decrypted with the home's own Fernet key)."""
    done = airflow.run("variables", "get", POSTED_VARIABLE)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_outage_shorter_than_the_task_is_waited_out_and_the_warning_goes_out_once(
    airflow, fresh, db, firestore_proxy
):
    run = run_cut_at_acceptance(airflow, fresh, db, firestore_proxy, LONG_OUTAGE_SECONDS)
    assert run.state == "success", run.explain()
    assert run.tries["send_alert"] == 1, "the record was retried in place, the task was not"
    state = alert_state(db)
    assert state["open"] is True and state["severity"] == "WARNING" and state["updated_by"] == run.run_id


def test_an_outage_outlasting_the_record_fails_the_try_and_its_retry_posts_nothing_again(
    airflow, fresh, db, firestore_proxy
):
    """The record's retries cut to 3 s: the first try fails on it; Airflow retries the task while
    Firestore is still down, and the retry finds the post in Airflow's record."""
    env = {
        "AIRFLOW__BATCH_CLEANUP__RECORD_POST_SECONDS": "3",
        "AIRFLOW__BATCH_CLEANUP__FIRESTORE_RETRY_SECONDS": "3",
    }
    run = run_cut_at_acceptance(airflow, fresh, db, firestore_proxy, 8, env)
    assert run.tries["send_alert"] >= 2, f"the first try must fail on the outage\n{run.explain()}"
    assert "is unreachable (record_post)" in run.output
    assert "An earlier try of this run posted the alert already" in run.output
    assert run.state == "success", run.explain()
    record = posted_variable(airflow)
    assert record["run_id"] == run.run_id and record["kind"] == "alert"
    assert set(record) <= {"run_id", "kind", "channel", "ts"}, "the record holds no secret"
    state = alert_state(db)
    assert state["open"] is True and state["updated_by"] == run.run_id, "the incident is remembered"
