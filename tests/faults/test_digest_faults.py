"""The weekly digest meeting real faults, through whole runs of its DAG:

- Slack takes the digest, then the connection drops before its answer (bot-token mode): the try
  fails though the digest is in the channel; the retry finds it by its metadata and posts no second.
- Firestore refuses every connection: the digest cannot be made; the run fails naming Firestore
  and the connection, and the failure callback says so in Slack, under the digest's name.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from dev.airflow_env import LOCAL_PROJECT, slack_bot_connection
from tests.dags.test_slack_threads_e2e import TOKEN
from tests.dags.test_weekly_digest_e2e import MONDAY, posted_record, run_digest, seed_weeks
from tests.scenario import explains, texts

pytestmark = pytest.mark.e2e


def test_a_digest_slack_took_before_the_connection_dropped_is_not_posted_again(airflow, fresh, db):
    _, sink = fresh
    end = MONDAY + timedelta(minutes=10)
    seed_weeks(db, end)
    sink.faults([{"method": "chat.postMessage", "drop_after_call": True, "count": 1}])
    bot = {"AIRFLOW_CONN_SLACK_DAILY_ORCHESTRATION": slack_bot_connection(sink.api_url, TOKEN)}

    run = run_digest(airflow, end, "digest-dropped", env=bot, expect="success")

    assert run.tries["post_digest"] == 2, "the first try lost Slack's answer"
    [digest] = sink.channel_messages()
    assert len(sink.api_calls("chat.postMessage")) == 1, "the retry posted nothing"
    [lookup] = sink.api_calls("conversations.history")
    assert int(lookup["args"]["limit"]) <= 20
    assert "An earlier try of this run posted the digest already (found in Slack)" in run.output
    assert posted_record(db) == {
        "run_id": run.run_id,
        "kind": "digest",
        "channel": digest["channel"],
        "ts": digest["ts"],
    }


def test_a_digest_that_cannot_read_firestore_fails_naming_it_and_slack_hears(airflow, fresh, firestore_proxy):
    _, sink = fresh
    firestore_proxy.refuse()

    run = run_digest(
        airflow,
        MONDAY + timedelta(minutes=11),
        "digest-firestore-down",
        env={
            "FIRESTORE_EMULATOR_HOST": firestore_proxy.address,
            "AIRFLOW__BATCH_CLEANUP__FIRESTORE_RETRY_SECONDS": "2",
        },
        expect="failed",
    )

    assert run.task_states == {"summarize_week": "failed", "post_digest": "upstream_failed"}, run.explain()
    assert run.tries["summarize_week"] == 4
    named = f"Firestore (connection 'google_cloud_default', project '{LOCAL_PROJECT}') is unreachable"
    assert f"FirestoreUnavailable: {named} (runs_in)" in run.output, "the task log names it"
    [failure] = texts(sink)
    assert failure.startswith(
        "Weekly cleanup digest failed: task summarize_week of DAG batch_cleanup_weekly_digest"
    )
    assert explains(failure, named), failure
