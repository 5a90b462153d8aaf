"""The alert policy through whole DAG runs: severities, cooldown, escalation, recovery, delivery
failures, concurrency and the operator controls. Runs at a chosen time use `DAG.test(run_after=…)`
(the clock these tests control); the rest use `airflow dags test`."""

from __future__ import annotations

import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from tests.scenario import DAG_ID, alert_state, record_events, stalled, texts

pytestmark = pytest.mark.e2e

MUTE_ENV = "AIRFLOW_VAR_BATCH_CLEANUP_MUTE_UNTIL"


def seed_events(db, *batches: list[str]) -> None:
    """Cleanups recorded earlier in the window, as `record_event` writes them."""
    record_events(db, datetime.now(UTC) - timedelta(minutes=5), *batches)


def test_incident_lifecycle_warning_critical_worse_reminder_resolved(airflow, fresh, db):
    coordinator, sink = fresh
    conf = {"cooldown_minutes": 30}
    for index in range(1, 6):
        coordinator.seed([stalled(f"lifecycle-{index}")])
        run = airflow.dags_test(DAG_ID, conf=conf, name="lifecycle", expect="success")
        posted = texts(sink)
        if index < 3:
            assert posted == [], f"run {index}: below the warning threshold nothing is posted"
        elif index == 3:
            assert "3 cleanups in the last 60 minutes ≥ 3 → WARNING" in run.output
            [warning] = posted
            assert warning.startswith("WARNING: systemic batch stalls")
        elif index == 4:
            assert len(posted) == 2, "4 cleanups escalate to CRITICAL at once, inside the cooldown"
            assert posted[1].startswith("Escalated to CRITICAL")
            assert "lifecycle-4" in posted[1]
        else:
            assert len(posted) == 3, "a 5th cleanup is worse than any message said: at once"
            assert posted[2].startswith("Getting worse (CRITICAL)")
            assert "5 cleanups in the window, up from 4" in posted[2]
            assert "lifecycle-5" in posted[2]

    opened_at = alert_state(db)["opened_at"]
    airflow.dags_test(
        DAG_ID, conf=conf, run_after=opened_at + timedelta(minutes=31), name="reminder", expect="success"
    )
    assert texts(sink)[3].startswith("Still ongoing (CRITICAL)")

    quiet = airflow.dags_test(
        DAG_ID, conf=conf, run_after=opened_at + timedelta(hours=2), name="resolved", expect="success"
    )
    assert quiet.task_states["send_resolved"] == "success"
    resolved = texts(sink)[4]
    assert resolved.startswith("RESOLVED")
    assert re.search(r"Lasted 2 h 00 min, 5 cleanups in total, peak severity CRITICAL", resolved), resolved
    assert all(f"lifecycle-{index}" in resolved for index in range(1, 6))
    assert len(texts(sink)) == 5
    assert alert_state(db)["open"] is False
    [incident] = [doc.to_dict() for doc in db.collection("batch_cleanup_incidents").stream()]
    assert incident["peak_severity"] == "CRITICAL" and incident["closed_at"] is not None
    assert incident["notifications"] == 5, "warning, escalation, worse, reminder and resolved were delivered"


def test_slack_500_then_200_posts_exactly_one_message_naming_repeat_offenders(airflow, fresh, db):
    _, sink = fresh
    seed_events(db, ["b-repeat", "b-once"], ["b-repeat"], ["b-other"])
    sink.faults([{"status": 500, "count": 1}])

    airflow.dags_test(DAG_ID, name="slack-500", expect="success")
    assert sink.attempts() == 2
    [message] = texts(sink)
    assert "b-repeat stalled 2 times in 24 h" in message
    assert alert_state(db)["notifications"] == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, "channel_not_found"), (404, "no_service"), (403, "invalid_token")],
    ids=["channel-not-found", "no-service", "invalid-token"],
)
def test_a_slack_configuration_error_fails_at_once_and_keeps_the_alert(airflow, fresh, db, status, body):
    _, sink = fresh
    seed_events(db, ["b1"], ["b2"], ["b3"])
    sink.faults([{"status": status, "body": body, "count": 50}])

    failed = airflow.dags_test(DAG_ID, name=f"slack-{status}", expect="failed")
    assert failed.task_states["send_alert"] == "failed"
    assert failed.tries["send_alert"] == 1, "a retry cannot heal a wrong webhook: no retries"
    assert (
        f"Slack refused the message on connection 'slack_daily_orchestration' (HTTP {status}" in failed.output
    )
    assert "fix connection 'slack_daily_orchestration'" in failed.output
    assert body in failed.output
    assert alert_state(db).get("open") in (None, False), "an alert Slack refused is not recorded as sent"
    assert alert_state(db).get("lease") is None, "the lease is given back for the next run"

    sink.reset()  # The connection is fixed.
    airflow.dags_test(DAG_ID, name="slack-back", expect="success")
    [alert] = texts(sink)
    assert alert.startswith("WARNING") and "3 cleanups" in alert
    assert alert_state(db)["open"] is True


def test_slack_5xx_for_good_is_retried_by_airflow(airflow, fresh, db):
    _, sink = fresh
    seed_events(db, ["b1"], ["b2"], ["b3"])
    sink.faults([{"status": 503, "count": 50}])

    failed = airflow.dags_test(DAG_ID, name="slack-503", expect="failed")
    assert failed.tries["send_alert"] == 4, "an outage of Slack may heal: every retry is used"
    assert "Slack did not accept the message on connection 'slack_daily_orchestration'" in failed.output
    assert alert_state(db).get("open") in (None, False)
    # record_state never ran; the teardown wrote the run's record, so the rate still counts the run.
    assert failed.task_states["record_state"] == "upstream_failed", failed.explain()
    [record] = [doc.to_dict() for doc in db.collection("batch_cleanup_runs").stream()]
    assert (record["run_id"], record["kind"], record["severity"]) == (failed.run_id, "alert", "WARNING")
    assert "Run recorded after record_state did not" in failed.output


def test_two_deployments_evaluating_at_once_post_one_message(airflow, second_deployment, fresh, db):
    _, sink = fresh
    seed_events(db, ["c1"], ["c2"], ["c3"])
    with ThreadPoolExecutor() as pool:
        runs = [
            pool.submit(cli.dags_test, DAG_ID, name=f"concurrent-{n}")
            for n, cli in enumerate((airflow, second_deployment))
        ]
    runs = [run.result() for run in runs]

    assert all(r.state == "success" for r in runs), [r.explain() for r in runs]
    assert len(texts(sink)) == 1
    assert alert_state(db)["notifications"] == 1


def test_notify_false_renders_the_message_into_the_log_only(airflow, fresh, db):
    _, sink = fresh
    seed_events(db, ["n1"], ["n2"], ["n3"])

    run = airflow.dags_test(DAG_ID, conf={"notify": False}, name="notify-false", expect="success")
    assert sink.attempts() == 0
    assert "notify=false: nothing sent" in run.output
    assert "WARNING: systemic batch stalls" in run.output
    assert alert_state(db) == {}, "notify=false changes no state"


def test_force_alert_sends_one_test_message_and_leaves_the_state(airflow, fresh, db):
    _, sink = fresh

    airflow.dags_test(DAG_ID, conf={"force_alert": True}, name="force-alert", expect="success")
    [message] = texts(sink)
    assert message.startswith("TEST message")
    assert alert_state(db) == {}


def test_muted_posts_nothing_then_names_what_was_muted(airflow, fresh, db):
    _, sink = fresh
    seed_events(db, ["m1"], ["m2"], ["m3"])
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    muted = airflow.dags_test(DAG_ID, name="muted", extra_env={MUTE_ENV: until}, expect="success")
    assert sink.attempts() == 0
    assert "(muted)" in muted.output
    state = alert_state(db)
    assert state["open"] is True and len(state["muted"]) == 1

    airflow.dags_test(DAG_ID, name="after-mute", expect="success")
    [message] = texts(sink)
    assert "While muted, these messages were held back: ALERT WARNING" in message
    assert alert_state(db)["muted"] == []


def test_slack_429_is_retried_after_retry_after_and_posts_once(airflow, fresh, db):
    _, sink = fresh
    seed_events(db, ["r1"], ["r2"], ["r3"])
    sink.faults([{"status": 429, "retry_after": 2, "count": 1}])

    run = airflow.dags_test(DAG_ID, name="slack-429", expect="success")
    assert run.tries["send_alert"] == 1, "the Slack client waits out Retry-After itself"
    assert sink.attempts() == 2
    assert texts(sink)[0].startswith("WARNING")
    with sqlite3.connect(airflow.home / "airflow.db") as metadata:
        [(started, ended)] = metadata.execute(
            "SELECT start_date, end_date FROM task_instance WHERE run_id = ? AND task_id = 'send_alert'",
            (run.run_id,),
        ).fetchall()
    took = datetime.fromisoformat(ended) - datetime.fromisoformat(started)
    assert took >= timedelta(seconds=2), f"send_alert took {took}: Retry-After (2 s) was not waited out"


def test_an_old_run_cleared_during_an_incident_posts_nothing_and_the_next_run_goes_on(airflow, fresh, db):
    """Clearing a run of 3 hours ago (its `run_after` is then): it neither ends nor reopens the
    open incident, and the next scheduled run goes on as if it had not happened."""
    _, sink = fresh
    seed_events(db, ["o1"], ["o2"], ["o3"])
    airflow.dags_test(DAG_ID, name="opens", expect="success")
    [warning] = texts(sink)
    assert warning.startswith("WARNING")
    before = alert_state(db)

    old = airflow.dags_test(
        DAG_ID, run_after=before["evaluated_at"] - timedelta(hours=3), name="old-run", expect="success"
    )
    assert "is older than the last evaluation" in old.output
    assert "It would have said RESOLVED" in old.output
    assert texts(sink) == [warning], "the old run posts nothing"
    assert alert_state(db) == before, "and leaves the incident as it was"

    following = airflow.dags_test(
        DAG_ID, run_after=before["evaluated_at"] + timedelta(minutes=15), name="next", expect="success"
    )
    assert "WARNING continues" in following.output and "→ no message" in following.output
    assert texts(sink) == [warning], "no new WARNING: the incident is the same one"
    assert alert_state(db)["opened_at"] == before["opened_at"]
