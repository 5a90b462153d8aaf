"""When `read_labels` fails (bot-token mode): `reactions.get` hangs, answers garbage, is refused by
Slack, or its connection is refused; or Slack answers and Firestore refuses the label's write. Whole
DAG runs against the Slack stand-in: the run's state is not touched (read_labels is a teardown),
nothing is posted to Slack (it has no failure callback), the task log names what failed, and the
next run reads and writes again."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
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


def assert_unharmed(done, sink, posted_before: int, said: str, named: str = NAMED) -> None:
    assert done.state == "success", done.explain()
    assert done.task_states["read_labels"] == "failed" and done.tries["read_labels"] == 1
    assert named in done.output and said in done.output
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


def test_a_label_slack_told_while_firestore_refused_its_write_is_written_by_the_next_run(
    airflow, fresh, db, firestore_proxy
):
    """Slack answers `reactions.get` (2 s late); meanwhile Firestore starts refusing connections, so
    the label's write fails: the task says Firestore was unreachable for `update_labels`, the run
    is untouched, nothing is posted, and the next run, with Firestore back, writes the label."""
    _, sink = fresh
    env = {
        **bot_env(sink.api_url),
        "FIRESTORE_EMULATOR_HOST": firestore_proxy.address,
        "AIRFLOW__BATCH_CLEANUP__FIRESTORE_RETRY_SECONDS": "3",  # Google's client would retry 60 s
    }
    seed(db, 0, 3, "dropped-labels")
    run(airflow, env, 0, "dropped-labels-warning")
    posted = posts(sink)
    [card] = sink.channel_messages()
    sink.react(card["ts"], "white_check_mark", "U0ALICE")
    sink.faults([{"method": "reactions.get", "answer_after_seconds": 2}])

    asked = len(sink.api_calls("reactions.get"))
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(
            airflow.dags_test, "stalled_batch_cleanup", run_after=at(15), extra_env=env, name="labels"
        )
        deadline = time.monotonic() + 180
        while len(sink.api_calls("reactions.get")) == asked:  # Slack holds the call: cut Firestore now
            assert running.running() and time.monotonic() < deadline, "reactions.get was never called"
            time.sleep(0.05)
        firestore_proxy.refuse()
        done = running.result(timeout=300)
    firestore_proxy.back()

    assert_unharmed(done, sink, posted, "is unreachable (update_labels)", named="Firestore")
    [incident] = [doc.to_dict() for doc in db.collection("batch_cleanup_incidents").stream()]
    assert "label" not in incident, "the write was refused: nothing half-written"

    later = run(airflow, env, 30, "labels-after")
    assert later.task_states["read_labels"] == "success", later.explain()
    [incident] = [doc.to_dict() for doc in db.collection("batch_cleanup_incidents").stream()]
    assert incident["label"]["value"] == "real" and incident["label"]["by"] == ["U0ALICE"], incident["label"]
    assert posts(sink) == posted
