"""When Slack fails `read_labels` (bot-token mode): `reactions.get` hangs, answers garbage, is refused
by Slack, or its connection is refused. Whole DAG runs against the Slack stand-in: the run's state
is not touched (read_labels is a teardown), nothing is posted to Slack (it has no failure
callback), and the task log names the connection and the method."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from dev.slack_sink import DEFAULT_CHANNEL
from tests.dags.test_slack_threads_e2e import TOKEN, at, run, seed
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

CLIENT_TIMEOUT = 2  # the connection's `timeout` extra, so that a hung call ends soon
NAMED = "reactions.get on connection 'slack_daily_orchestration'"


def bot_env(api_url: str) -> dict[str, str]:
    extra = {"base_url": api_url, "channel": DEFAULT_CHANNEL, "timeout": CLIENT_TIMEOUT}
    connection = {"conn_type": "slack", "password": TOKEN, "extra": extra}
    return {"AIRFLOW_CONN_SLACK_DAILY_ORCHESTRATION": json.dumps(connection)}


def posts(sink) -> int:
    return len(sink.api_calls("chat.postMessage"))


def assert_unharmed(done, sink, posted_before: int, said: str) -> None:
    assert done.state == "success", done.explain()
    assert done.task_states["read_labels"] == "failed" and done.tries["read_labels"] == 1
    assert NAMED in done.output and said in done.output
    assert posts(sink) == posted_before, "no failure message: read_labels never pages"


def test_a_hung_garbled_or_refusing_slack_leaves_the_run_alone_and_says_where(airflow, fresh, db):
    _, sink = fresh
    env = bot_env(sink.api_url)
    seed(db, 0, 3, "faulty-labels")
    run(airflow, env, 0, "faulty-labels-warning")  # the incident is open; the next runs post nothing
    posted = posts(sink)
    [card] = sink.channel_messages()
    sink.react(card["ts"], "white_check_mark", "U0ALICE")

    faults = [
        ({"answer_after_seconds": CLIENT_TIMEOUT + 2}, "Slack did not answer"),
        ({"body": "<html>502 Bad Gateway</html>"}, "non-JSON"),
        ({"error": "missing_scope"}, "needs the scope reactions:read"),
    ]
    for minutes, (fault, said) in zip((15, 30, 45), faults, strict=True):
        sink.faults([{"method": "reactions.get", **fault}])
        done = airflow.dags_test("stalled_batch_cleanup", run_after=at(minutes), extra_env=env, name="labels")
        assert_unharmed(done, sink, posted, said)

    [incident] = [doc.to_dict() for doc in db.collection("batch_cleanup_incidents").stream()]
    assert "label" not in incident, "nothing read, nothing written"
    assert len(sink.api_calls("reactions.get")) == 4, "one call per run, none retried"


def test_a_refused_connection_leaves_the_run_alone_and_says_where(airflow, fresh, db, slack_sink):
    _, sink = fresh
    url = urlsplit(slack_sink.url)
    proxy = TcpProxy(url.hostname, url.port)
    try:
        env = bot_env(f"http://{proxy.address}/api/")
        seed(db, 0, 3, "refused-labels")
        run(airflow, env, 0, "refused-labels-warning")
        posted = posts(sink)

        proxy.refuse()
        done = airflow.dags_test("stalled_batch_cleanup", run_after=at(15), extra_env=env, name="labels")
    finally:
        proxy.close()

    assert_unharmed(done, sink, posted, "Connection refused")
