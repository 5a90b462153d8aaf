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


WORKERS = {"status": "unhealthy", "error": "3 of 10 <!channel> workers not reporting"}
ANSWER = {"status": "degraded", "components": {"workers": WORKERS, "firestore": {"status": "healthy"}}}
UNHEALTHY = {"ok": True, "answer": ANSWER}


def posted(coordinator: Coordinator, project: str | None = "proj-1", kind: str = "alert"):
    """What `send` answered and the one message it posted for a fresh WARNING, made of `kind`."""
    store, slack = MemoryStore(), MemorySlack()
    for index in range(3):
        store.events[f"e{index}"] = {"timestamp": NOW - timedelta(minutes=10), "batch_ids": [f"b{index}"]}
    evaluation = steps.evaluate(store, PARAMS, dag_id=DAG, run_after=NOW, mute_value=None)
    evaluation["decision"] = {**evaluation["decision"], "kind": kind}
    where = {"dag_id": DAG, "run_id": RUN, "base_url": "", "slack": slack, "now": NOW, "run_after": NOW}
    diagnosis = {"coordinator": coordinator, "project": project}
    outcome = steps.send(store, {"stalled_count": 1}, evaluation, PARAMS, **diagnosis, **where)
    [message] = slack.messages
    return outcome, message


def test_the_alert_lists_the_unhealthy_components_escaped_and_links_the_windows_logs():
    coordinator = Coordinator(UNHEALTHY)
    _, message = posted(coordinator)
    assert coordinator.timeouts == [HEALTH_TIMEOUT_SECONDS], "asked once, with the configured timeout"
    health = message.blocks[2]["text"]["text"]
    assert health.startswith("*Coordinator health (/health/deep):*")
    assert "workers: unhealthy — 3 of 10 &lt;!channel&gt; workers not reporting" in health
    assert "firestore" not in health, "only what is not healthy"
    assert "<!channel>" not in message.text
    [logs_link] = [b["text"]["text"] for b in message.blocks if "Logs Explorer" in str(b)]
    assert logs_link.startswith("<https://console.cloud.google.com/logs/query;query=")
    assert "project=proj-1" in logs_link and "|Worker logs of the window (Logs Explorer)>" in logs_link
    window = ";startTime=2026-03-01T11:00:00.000Z;endTime=2026-03-01T12:00:00.000Z"
    assert window in logs_link, "the window ending at the run"
    assert WORKER_LOGS_QUERY in unquote(logs_link)
    assert "Worker logs of the window: https://console.cloud.google.com/logs/query" in message.text


def test_a_failed_health_check_is_one_line_and_the_alert_still_goes_out():
    outcome, message = posted(Coordinator({"ok": False, "error": "timed out after 5 s"}))
    assert outcome == "sent"
    assert "Health check failed: timed out after 5 s" in message.blocks[2]["text"]["text"]
    assert "Health check failed: timed out after 5 s" in message.text


def test_without_a_project_the_alert_says_why_there_is_no_logs_link():
    _, message = posted(Coordinator(UNHEALTHY), project=None)
    assert NO_LOGS_LINK in message.text
    assert "console.cloud.google.com" not in message.text


def test_the_health_check_is_asked_with_the_configured_short_timeout():
    coordinator = Coordinator(UNHEALTHY)
    steps.diagnose(coordinator, "p", NOW - timedelta(hours=1), NOW, timeout_seconds=3, query=QUERY)
    assert coordinator.timeouts == [3]


@pytest.mark.parametrize(("kind", "asks"), [("resolved", False), ("alert", True), ("test", True)])
def test_only_messages_of_a_problem_now_ask_for_the_diagnosis(kind, asks):
    coordinator = Coordinator(UNHEALTHY)
    _, message = posted(coordinator, kind=kind)
    assert bool(coordinator.timeouts) is asks
    assert ("Coordinator health" in message.text) is asks
