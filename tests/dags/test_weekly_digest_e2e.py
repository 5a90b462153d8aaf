"""The weekly digest through whole runs of its DAG (`DAG.test()` at a chosen run time) against the
Firestore emulator and the Slack stand-in, with the Slack connection as a webhook and as a bot token.

Each test runs the digest at its own time (a run id of its own), so no record of another test's
post can stand in for the one under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batch_cleanup.digest import week_start
from dev.airflow_env import slack_bot_connection
from dev.slack_sink import DEFAULT_CHANNEL
from tests.dags.test_slack_threads_e2e import TOKEN
from tests.scenario import fail_once_after, record_events, texts
from tests.ui import history_data
from tests.ui.history_data import History, label

pytestmark = pytest.mark.e2e

DIGEST_ID = "batch_cleanup_weekly_digest"
# Monday 2 Nov 2026 09:00 in New York: its week holds the change back to EST (169 hours).
MONDAY = datetime(2026, 11, 2, 14, tzinfo=UTC)
HOSTILE = "<!here> b-7&<https://evil.example|x>"


def at_new_york(end: datetime, days: float, hour: int) -> datetime:
    """`hour` o'clock in New York, `days` days after the week's start (UTC)."""
    from batch_cleanup.digest import NEW_YORK

    day = (week_start(end) + timedelta(days=days)).astimezone(NEW_YORK)
    return day.replace(hour=hour, minute=0).astimezone(UTC)


def runs_of(*runs: tuple[datetime, int, int]) -> History:
    """A history of the cleanup's runs, recorded as its runs record them: (run_after, batches
    checked, batches auto-completed)."""
    history = History()
    for run_after, checked, stalled in runs:
        history.run(run_after, checked=checked, stalled=stalled)
    return history


def seed_weeks(db, end: datetime) -> None:
    """Two weeks of the cleanup ending at `end`: this week 40 runs of 50 batches, three of which
    cleaned up (2 + 3 + 1 batches, two at 18:00 New York time), one labelled incident and one still
    open; the week before 20 runs and one cleanup of 4 batches."""
    earlier = week_start(end)
    quiet = [(at_new_york(end, day, hour), 50, 0) for day in range(1, 6) for hour in range(8, 16)][:37]
    cleanups = [
        (at_new_york(end, 1, 18), 50, 2),
        (at_new_york(end, 5, 18), 50, 3),
        (at_new_york(end, 3, 7), 50, 1),
    ]
    before = [(at_new_york(earlier, day, hour), 50, 0) for day in range(1, 6) for hour in (10, 11, 12, 13)][
        :19
    ]
    history = runs_of(*quiet, *cleanups, *before, (at_new_york(earlier, 2, 3), 50, 4))
    opened = at_new_york(end, 1, 18)
    warning = {"severity": "WARNING", "peak_severity": "WARNING"}
    history.incident(opened, opened + timedelta(minutes=90), **warning,
                     label=label("real", opened, source="reactions", by=("U0REAL",)))  # fmt: skip
    history.incident(at_new_york(end, 5, 18), None, **warning, label=None)
    history.incident(at_new_york(earlier, 2, 3), None, **warning)
    history_data.write(db, history)
    record_events(db, at_new_york(end, 1, 18), [HOSTILE, "b-1"])
    record_events(db, at_new_york(end, 5, 18), [HOSTILE, "b-2", "b-3"])
    record_events(db, at_new_york(end, 3, 7), ["b-1"])


def run_digest(
    airflow, end: datetime, name: str, env: dict | None = None, conf: dict | None = None, **kwargs
):
    return airflow.dags_test(DIGEST_ID, run_after=end, extra_env=env, conf=conf, name=name, **kwargs)


def posted_record(db) -> dict:
    """The record of the digest's post in Firestore (the digest DAG's `posted` marker)."""
    document = db.collection("batch_cleanup_alert_state").document(DIGEST_ID).get().to_dict() or {}
    return document.get("posted") or {}


def assert_tells_the_seeded_weeks(text: str) -> None:
    assert "*Cleanups:* 3 (week before: 1)" in text
    assert "*Batches auto-completed:* 6 (week before: 4)" in text
    assert "0.30 % of 2,000 batches checked, within the 1 % objective (week before: 0.40 %)" in text
    assert "*2 incidents opened* (week before: 1)" in text
    assert "resolved after 1 h 30 min: labelled *real* (by reactions in Slack)" in text
    assert "still open: not labelled" in text
    assert "`&lt;!here&gt; b-7&amp;&lt;https://evil.example|x&gt;` 2 times" in text and "<!here>" not in text
    assert "18:00–19:00: 2 cleanups" in text


def test_the_digest_tells_the_week_against_the_week_before_through_the_webhook(airflow, fresh, db):
    _, sink = fresh
    end = MONDAY
    seed_weeks(db, end)

    run = run_digest(airflow, end, "digest-webhook", expect="success")

    assert run.task_states == {"summarize_week": "success", "post_digest": "success"}
    [message] = sink.messages()
    assert message["via"] == "webhook"
    text = message["payload"]["text"]
    assert text.startswith(
        "Weekly digest: stalled-batch cleanup\nMon 26 Oct 09:00 – Mon 2 Nov 09:00, New York time"
    )
    assert_tells_the_seeded_weeks(text)
    assert "Cleanup history: Browse → Batch cleanup in Airflow" in text, "no [api] base_url: no link"
    assert "/batch-cleanup/" not in str(message["payload"])
    assert posted_record(db) == {"run_id": run.run_id, "kind": "digest"}


def test_the_digest_is_one_message_in_the_channel_in_bot_token_mode(airflow, fresh, db):
    _, sink = fresh
    end = MONDAY + timedelta(minutes=1)
    seed_weeks(db, end)
    bot = {"AIRFLOW_CONN_SLACK_DAILY_ORCHESTRATION": slack_bot_connection(sink.api_url, TOKEN)}

    run = run_digest(airflow, end, "digest-bot", env=bot, expect="success")

    assert TOKEN not in run.output
    [message] = sink.channel_messages()
    assert (message["via"], message["thread_ts"]) == ("api", None)
    assert_tells_the_seeded_weeks(message["payload"]["text"])
    key = {"dag_id": DIGEST_ID, "run_id": run.run_id, "kind": "digest"}
    assert message["metadata"] == {"event_type": "batch_cleanup_step", "event_payload": key}
    assert posted_record(db) == {
        "run_id": run.run_id,
        "kind": "digest",
        "channel": DEFAULT_CHANNEL,
        "ts": message["ts"],
    }
    assert sink.api_calls("conversations.history") == [], "a first try looks for nothing"


def test_a_quiet_week_still_gets_its_message_and_a_test_digest_says_test(airflow, fresh, db):
    _, sink = fresh
    end = MONDAY + timedelta(minutes=2)
    history_data.write(db, runs_of(*((at_new_york(end, day, 12), 300, 0) for day in range(7))))

    run_digest(airflow, end, "digest-quiet-test", conf={"test_digest": True}, expect="success")

    [text] = texts(sink)
    assert text.startswith("TEST weekly digest: stalled-batch cleanup")
    assert "*No cleanups this week*: 7 runs checked 2,100 batches, and none needed auto-completing" in text
    assert "None opened (week before: 0)" in text


def test_notify_off_writes_the_digest_into_the_log_and_posts_nothing(airflow, fresh, db):
    _, sink = fresh
    end = MONDAY + timedelta(minutes=3)

    run = run_digest(airflow, end, "digest-notify-off", conf={"notify": False}, expect="success")

    assert sink.messages() == [] and posted_record(db) == {}
    assert "The digest would read:" in run.output and "no run of the cleanup recorded" in run.output


def test_a_retry_after_slack_accepted_the_digest_posts_it_no_second_time(airflow, fresh, db):
    _, sink = fresh
    end = MONDAY + timedelta(minutes=4)
    seed_weeks(db, end)

    run = run_digest(
        airflow, end, "digest-retry", env=fail_once_after(airflow, "post_digest"), expect="success"
    )

    assert run.tries["post_digest"] == 2, "the injected failure should have forced one retry"
    assert "An earlier try of this run posted the digest already (Firestore's record)" in run.output
    assert len(sink.messages()) == 1
