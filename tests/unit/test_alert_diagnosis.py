"""An alert carries its diagnosis: the coordinator's deep health (or why it could not be read) and a
link to the window's worker logs; a RESOLVED message does not ask."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest

from batch_cleanup import steps
from batch_cleanup.config import HEALTH_TIMEOUT_SECONDS, WORKER_LOGS_QUERY
from batch_cleanup.messages import NO_LOGS_LINK
from batch_cleanup.params import dag_params
from tests.support.memory_store import MemorySlack, MemoryStore

DAG, RUN = "stalled_batch_cleanup", "scheduled__2026-03-01T12:00:00+00:00"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PARAMS = {name: param.value for name, param in dag_params().items()}
QUERY = 'resource.type="cloud_run_revision" severity>=WARNING'


class Coordinator:
    def __init__(self, result):
        self.result, self.timeouts = result, []

    def deep_health(self, timeout_seconds):
        self.timeouts.append(timeout_seconds)
        return self.result


UNHEALTHY = {
    "ok": True,
    "answer": {
        "status": "degraded",
        "components": {
            "workers": {"status": "unhealthy", "error": "3 of 10 <!channel> workers not reporting"},
            "firestore": {"status": "healthy"},
        },
    },
}


def opened_alert(store: MemoryStore) -> dict:
    for index in range(3):
        store.events[f"e{index}"] = {"timestamp": NOW - timedelta(minutes=10), "batch_ids": [f"b{index}"]}
    return steps.evaluate(store, PARAMS, dag_id=DAG, run_after=NOW, mute_value=None)


def send(store, evaluation, slack, coordinator, project="proj-1"):
    where = {"dag_id": DAG, "run_id": RUN, "base_url": "", "slack": slack, "now": NOW, "run_after": NOW}
    diagnosis = {"coordinator": coordinator, "project": project}
    return steps.send(store, {"stalled_count": 1}, evaluation, PARAMS, **diagnosis, **where)


def test_the_alert_lists_the_unhealthy_components_escaped_and_links_the_windows_logs():
    store, slack, coordinator = MemoryStore(), MemorySlack(), Coordinator(UNHEALTHY)

    send(store, opened_alert(store), slack, coordinator)

    [message] = slack.messages
    assert coordinator.timeouts == [HEALTH_TIMEOUT_SECONDS], "asked once, with the configured timeout"
    health = message.blocks[2]["text"]["text"]
    assert health.startswith("*Coordinator health (/health/deep):*")
    assert "workers: unhealthy — 3 of 10 &lt;!channel&gt; workers not reporting" in health
    assert "firestore" not in health, "only what is not healthy"
    assert "<!channel>" not in message.text
    logs = [b["text"]["text"] for b in message.blocks if "Logs Explorer" in str(b)]
    [logs_link] = logs
    assert logs_link.startswith("<https://console.cloud.google.com/logs/query;query=")
    assert "project=proj-1" in logs_link and "|Worker logs of the window (Logs Explorer)>" in logs_link
    assert ";startTime=2026-03-01T11:00:00.000Z;endTime=2026-03-01T12:00:00.000Z" in logs_link, (
        "the window ending at the run"
    )
    assert WORKER_LOGS_QUERY in unquote(logs_link)
    assert "Worker logs of the window: https://console.cloud.google.com/logs/query" in message.text


def test_a_failed_health_check_is_one_line_and_the_alert_still_goes_out():
    store, slack = MemoryStore(), MemorySlack()
    failed = {"ok": False, "error": "timed out after 5 s"}
    assert send(store, opened_alert(store), slack, Coordinator(failed)) == "sent"
    [message] = slack.messages
    assert "Health check failed: timed out after 5 s" in message.blocks[2]["text"]["text"]
    assert "Health check failed: timed out after 5 s" in message.text


def test_without_a_project_the_alert_says_why_there_is_no_logs_link():
    store, slack = MemoryStore(), MemorySlack()
    send(store, opened_alert(store), slack, Coordinator(UNHEALTHY), project=None)
    [message] = slack.messages
    assert NO_LOGS_LINK in message.text
    assert "console.cloud.google.com" not in message.text


def test_the_health_check_is_asked_with_the_configured_short_timeout():
    coordinator = Coordinator(UNHEALTHY)
    steps.diagnose(coordinator, "p", NOW - timedelta(hours=1), NOW, timeout_seconds=3, query=QUERY)
    assert coordinator.timeouts == [3]


@pytest.mark.parametrize(("kind", "asks"), [("resolved", False), ("alert", True), ("test", True)])
def test_only_messages_of_a_problem_now_ask_for_the_diagnosis(kind, asks):
    store, slack, coordinator = MemoryStore(), MemorySlack(), Coordinator(UNHEALTHY)
    evaluation = opened_alert(store)
    evaluation["decision"] = {**evaluation["decision"], "kind": kind}
    send(store, evaluation, slack, coordinator)
    assert bool(coordinator.timeouts) is asks
    assert ("Coordinator health" in slack.messages[0].text) is asks
