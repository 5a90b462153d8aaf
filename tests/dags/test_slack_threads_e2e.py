"""Bot-token mode through whole DAG runs against the Slack stand-in's Web API: one incident is one
thread, a card edited at each step above every step in full (WARNING → reminder → CRITICAL,
broadcast → RESOLVED); a deleted card ends its thread; retries and concurrent runs post nothing twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from dev.airflow_env import slack_bot_connection
from dev.slack_sink import DEFAULT_CHANNEL
from tests.scenario import DAG_ID, record_events
from tests.scenario import alert_state as state

pytestmark = pytest.mark.e2e

TOKEN = "xoxb-test-5b8e1f0a93c2-DO-NOT-LOG"
# A quarter hour of the past, so that each run's window holds only the events seeded for it.
T0 = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def bot(fresh):
    """The Slack connection as a bot token on the stand-in's Web API, for `dags_test(extra_env=…)`."""
    _, sink = fresh
    return {"AIRFLOW_CONN_SLACK_DAILY_ORCHESTRATION": slack_bot_connection(sink.api_url, TOKEN)}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def seed(db, minutes: float, n: int, prefix: str = "t") -> None:
    """`n` cleanups recorded by the run at `at(minutes)`."""
    record_events(db, at(minutes), *(f"{prefix}-{minutes}-{index}" for index in range(n)))


def run(airflow, bot, minutes: float, name: str):
    done = airflow.dags_test(DAG_ID, run_after=at(minutes), extra_env=bot, name=name, expect="success")
    assert TOKEN not in done.output
    return done


def steps(sink, ts: str) -> list[str]:
    """What each message of the thread at `ts` is, by its text's first words."""
    return [m["payload"]["text"].split(":")[0] for m in sink.thread(DEFAULT_CHANNEL, ts)]


def header(message: dict) -> str:
    return message["payload"]["blocks"][0]["text"]["text"]


def test_an_incident_is_one_thread_and_its_first_message_shows_where_it_stands(airflow, fresh, db, bot):
    _, sink = fresh
    seed(db, 0, 3)
    run(airflow, bot, 0, "thread-warning")
    [card] = sink.channel_messages()
    assert card["via"] == "api" and card["thread_ts"] is None
    assert card["payload"]["text"].startswith("WARNING, ongoing: systemic batch stalls")
    assert (state(db)["slack_channel"], state(db)["slack_ts"]) == (DEFAULT_CHANNEL, card["ts"])

    seed(db, 45, 1)
    seed(db, 60, 2)
    run(airflow, bot, 60, "thread-reminder")
    seed(db, 75, 2)
    run(airflow, bot, 75, "thread-critical")
    run(airflow, bot, 200, "thread-resolved")

    first, *replies = sink.thread(DEFAULT_CHANNEL, card["ts"])
    assert steps(sink, card["ts"])[1:] == [
        "WARNING",
        "Still ongoing (WARNING)",
        "Escalated to CRITICAL",
        "RESOLVED",
    ]
    assert "t-0-0" in replies[0]["payload"]["text"], "the opening WARNING stays readable in full"
    assert [reply["reply_broadcast"] for reply in replies] == [False, False, True, False]
    assert len(sink.channel_messages()) == 2, "the channel shows the card and the CRITICAL page"
    assert first["edited"] and len(first["updates"]) == 3, "edited after each of the three later steps"
    assert header(first) == ":white_check_mark: RESOLVED after 3 h 20 min: systemic batch stalls"
    assert "t-0-0" not in str(first["payload"]), "the card lists no batches"
    kinds = [m["metadata"]["event_payload"]["kind"] for m in (first, *replies)]
    assert kinds == ["alert", "alert", "reminder", "escalation", "resolved"]
    earlier = [version["payload"]["blocks"][0]["text"]["text"] for version in first["updates"]]
    assert earlier[1:] == [
        ":rotating_light: WARNING, ongoing: systemic batch stalls",
        ":rotating_light: CRITICAL, ongoing: systemic batch stalls",
    ]
    assert state(db)["open"] is False and not state(db).get("slack_ts")


def test_a_deleted_card_ends_its_thread_and_the_incident_goes_on_in_a_new_one_saying_why(
    airflow, fresh, db, bot
):
    _, sink = fresh
    seed(db, 0, 3, "gone")
    run(airflow, bot, 0, "gone-warning")
    [lost] = sink.channel_messages()
    sink.delete_message(DEFAULT_CHANNEL, lost["ts"])

    seed(db, 60, 3, "gone")
    reminder = run(airflow, bot, 60, "gone-reminder")

    [card] = sink.channel_messages()
    assert card["ts"] != lost["ts"] and card["thread_ts"] is None
    assert card["edited"] and header(card) == ":rotating_light: WARNING, ongoing: systemic batch stalls", (
        "the reply Slack put at the root became the new card"
    )
    [_, step] = sink.thread(DEFAULT_CHANNEL, card["ts"])
    assert step["payload"]["text"].startswith("The incident's earlier Slack thread is gone")
    assert "Still ongoing (WARNING)" in step["payload"]["text"]
    assert "thread is gone" in reminder.output
    assert state(db)["slack_ts"] == card["ts"]

    seed(db, 75, 3, "gone")
    run(airflow, bot, 75, "gone-critical")
    [_, _, escalation] = sink.thread(DEFAULT_CHANNEL, card["ts"])
    assert escalation["payload"]["text"].startswith("Escalated to CRITICAL"), "said once"


def escalate_meeting(airflow, bot, db, sink, fault: dict, name: str):
    """A WARNING, then the run that escalates it to CRITICAL meets `fault` in Slack."""
    seed(db, 0, 3, name)
    run(airflow, bot, 0, f"{name}-warning")
    sink.faults([fault])
    seed(db, 15, 3, name)
    return run(airflow, bot, 15, f"{name}-critical")


def test_a_refused_reply_is_retried_by_airflow_and_posted_once(airflow, fresh, db, bot):
    _, sink = fresh
    escalated = escalate_meeting(
        airflow, bot, db, sink, {"method": "chat.postMessage", "error": "internal_error"}, "retry"
    )

    assert escalated.tries["send_alert"] == 2, "the first try met internal_error"
    [parent] = sink.channel_messages()[:1]
    assert steps(sink, parent["ts"])[1:] == ["WARNING", "Escalated to CRITICAL"]
    assert len(sink.api_calls("chat.update")) == 1


def test_a_failed_edit_leaves_the_message_sent_and_says_so_in_the_log(airflow, fresh, db, bot):
    _, sink = fresh
    escalated = escalate_meeting(
        airflow, bot, db, sink, {"method": "chat.update", "error": "internal_error"}, "edit"
    )

    assert escalated.tries["send_alert"] == 1
    assert "Could not edit the incident's first message" in escalated.output
    [parent, _, reply] = sink.thread(DEFAULT_CHANNEL, sink.channel_messages()[0]["ts"])
    assert not parent["edited"] and reply["payload"]["text"].startswith("Escalated to CRITICAL")


def test_a_bad_token_fails_at_once_naming_the_connection(airflow, fresh, db, bot):
    _, sink = fresh
    sink.pin_bot_token("xoxb-the-right-one")
    seed(db, 0, 3, "auth")

    failed = airflow.dags_test(DAG_ID, run_after=at(0), extra_env=bot, name="bad-token", expect="failed")
    assert failed.tries["send_alert"] == 1, "a wrong token cannot heal by retrying"
    assert "Slack refused chat.postMessage on connection 'slack_daily_orchestration' (invalid_auth)" in (
        failed.output
    )
    assert TOKEN not in failed.output
    assert state(db).get("open") in (None, False)


def test_two_deployments_at_once_make_one_thread(airflow, second_deployment, fresh, db, bot):
    _, sink = fresh
    record_events(db, datetime.now(UTC) - timedelta(minutes=5), "both-0", "both-1", "both-2")
    with ThreadPoolExecutor() as pool:  # each its own manual run id, both now
        runs = [
            pool.submit(cli.dags_test, DAG_ID, extra_env=bot, name=f"bot-concurrent-{n}")
            for n, cli in enumerate((airflow, second_deployment))
        ]
    runs = [run.result() for run in runs]

    assert all(r.state == "success" for r in runs), [r.explain() for r in runs]
    [parent, _] = sink.messages()
    assert state(db)["slack_ts"] == parent["ts"] and state(db)["notifications"] == 1
