"""Labels from the people on call, through whole DAG runs (`airflow dags test`) against the Slack
stand-in's Web API and the Firestore emulator: reactions on an incident's first message become its
label, disputed when they disagree, also when they come after the RESOLVED; in webhook mode nothing
is read."""

from __future__ import annotations

import pytest

from dev.airflow_env import slack_bot_connection
from dev.slack_sink import DEFAULT_CHANNEL
from tests.dags.test_slack_threads_e2e import TOKEN, at, run, seed
from tests.scenario import DAG_ID

pytestmark = pytest.mark.e2e

REAL, NOISE = "white_check_mark", "no_bell"


@pytest.fixture
def bot(fresh):
    """The Slack connection as a bot token on the stand-in's Web API, for `dags_test(extra_env=…)`."""
    _, sink = fresh
    return {"AIRFLOW_CONN_SLACK_DAILY_ORCHESTRATION": slack_bot_connection(sink.api_url, TOKEN)}


def incident(db) -> dict:
    [document] = [doc.to_dict() for doc in db.collection("batch_cleanup_incidents").stream()]
    return document


def read_calls(sink) -> list[str]:
    return [call["args"]["timestamp"] for call in sink.api_calls("reactions.get")]


def test_reactions_on_the_first_message_label_the_incident_disputed_when_they_disagree(
    airflow, fresh, db, bot
):
    _, sink = fresh
    seed(db, 0, 3, "label")
    opened = run(airflow, bot, 0, "label-warning")
    [card] = sink.channel_messages()
    assert incident(db)["slack_ts"] == card["ts"] and incident(db)["slack_channel"] == DEFAULT_CHANNEL
    assert read_calls(sink) == [card["ts"]], "the open incident's first message, read once"
    assert "Read the reactions of 1 incident(s); changed: none." in opened.output

    sink.react(card["ts"], REAL, "U0ALICE")
    run(airflow, bot, 15, "label-real")
    first = incident(db)
    assert (first["label"]["value"], first["label"]["source"], first["label"]["by"]) == (
        "real",
        "reactions",
        ["U0ALICE"],
    )
    assert first["reactions"] == {"real": ["U0ALICE"], "noise": []}
    assert first["first_reaction_at"] == first["label"]["at"]

    sink.react(card["ts"], NOISE, "U0BOB")
    run(airflow, bot, 30, "label-disputed")

    disputed = incident(db)
    assert disputed["label"]["value"] == "disputed" and disputed["label"]["by"] == ["U0ALICE", "U0BOB"]
    assert disputed["reactions"] == {"real": ["U0ALICE"], "noise": ["U0BOB"]}
    assert disputed["first_reaction_at"] == first["first_reaction_at"], "the first reaction's time stays"
    assert disputed["label"]["at"] > first["label"]["at"]
    assert read_calls(sink) == [card["ts"]] * 3, "one call per run, nothing else"
    assert len(sink.api_calls("chat.postMessage")) == 2, "the card and the WARNING: labels post nothing"


def test_a_reaction_after_the_resolved_is_still_read(airflow, fresh, db, bot):
    _, sink = fresh
    seed(db, 0, 3, "late-label")
    run(airflow, bot, 0, "late-label-warning")
    resolved = run(airflow, bot, 200, "late-label-resolved")
    [card] = sink.channel_messages()
    assert incident(db)["closed_at"] is not None and incident(db)["slack_ts"] == card["ts"]
    assert "Read the reactions of 1 incident(s)" in resolved.output, "the incident it just closed"

    sink.react(card["ts"], NOISE, "U0CAROL")
    run(airflow, bot, 215, "late-label-after")

    labelled = incident(db)
    assert (labelled["label"]["value"], labelled["label"]["by"]) == ("noise", ["U0CAROL"])
    assert labelled["first_reaction_at"] is not None
    assert read_calls(sink) == [card["ts"]] * 3


def test_webhook_mode_reads_no_reactions_and_says_so_once(airflow, fresh, db):
    _, sink = fresh
    seed(db, 0, 3, "hook-label")

    done = airflow.dags_test(DAG_ID, run_after=at(0), name="label-webhook", expect="success")

    assert done.task_states["read_labels"] == "success"
    lines = [line for line in done.output.splitlines() if "Webhook mode: no reactions to read" in line]
    assert len([line for line in lines if "Returned value was" not in line]) == 1, "said once"
    assert sink.api_calls() == [] and "label" not in incident(db)
