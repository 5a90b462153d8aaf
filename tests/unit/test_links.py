"""Links in Slack messages are absolute or absent: Slack refuses a whole message (`invalid_blocks`)
for one relative URL, which is what Airflow's links are without `[api] base_url` (its default)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from batch_cleanup import config
from batch_cleanup.messages import (
    Message,
    alert,
    dag_run_url,
    incident_card,
    is_absolute_url,
    run_failed,
    run_overdue,
    task_failure,
)
from batch_cleanup.policy import Decision, PolicyConfig, State, decide
from dev.slack_sink import block_error

RUN_ID = "manual__2026-03-02T09:00:00+00:00"
DAG_ID = "stalled_batch_cleanup"
RELATIVE = dag_run_url("", DAG_ID, RUN_ID)  # what the links were without [api] base_url
ABSOLUTE = dag_run_url("https://airflow.example.com", DAG_ID, RUN_ID)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RUN_URLS = {"relative": RELATIVE, "empty": "", "none": None, "absolute": ABSOLUTE}


ABSOLUTE_URLS = ["https://airflow.example.com/dags/d", "http://10.0.0.7:8080"]
NOT_ABSOLUTE = ["/dags/d/runs/r", "airflow.example.com/dags/d", "javascript:alert(1)", "https://"]


@pytest.mark.parametrize("url", [*ABSOLUTE_URLS, *NOT_ABSOLUTE, "http://[::1", "", None])
def test_only_http_urls_with_a_host_are_absolute(url):
    assert is_absolute_url(url) is (url in ABSOLUTE_URLS)


def _decision() -> Decision:
    window = {"e": ["b1", "b2", "b3"]}
    decision, _ = decide(State(), count=3, window_events=window, offenders=(), now=NOW, config=PolicyConfig())
    return Decision.from_dict(json.loads(json.dumps(decision.to_dict())))


def _messages(run_url: str | None) -> dict[str, Message]:
    decision, run = _decision(), {"dag_id": DAG_ID, "run_id": RUN_ID}
    return {
        "alert": alert(
            decision, window_minutes=60, threshold=3, completed_this_run=3, run_url=run_url, run_id=RUN_ID
        ),
        "incident_card": incident_card(decision, window_minutes=60, threshold=3, now=NOW, run_url=run_url),
        "run_failed": run_failed(**run, reason="timed out", run_url=run_url),
        "run_overdue": run_overdue(**run, queued_at="09:00", minutes=10, run_url=run_url),
        "task_failure": task_failure(**run, task_id="check_stalled", error="boom", log_url=run_url),
    }


def _urls(blocks: list) -> list[str]:
    """Every button URL and mrkdwn link target in `blocks`."""
    found = []
    for block in blocks:
        for element in block.get("elements", []):
            if "url" in element:
                found.append(element["url"])
        text = json.dumps(block)
        found += [part.split("|", 1)[0] for part in text.split("<")[1:] if "|" in part.split(">", 1)[0]]
    return found


@pytest.mark.parametrize("run_url", RUN_URLS.values(), ids=list(RUN_URLS))
@pytest.mark.parametrize("kind", ["alert", "incident_card", "run_failed", "run_overdue", "task_failure"])
def test_only_an_absolute_url_is_linked_and_slack_takes_the_message_either_way(kind, run_url):
    message = _messages(run_url)[kind]
    assert _urls(message.blocks) == ([ABSOLUTE] if run_url == ABSOLUTE else [])
    assert block_error(message.blocks) is None, "the Slack stand-in refuses what Slack refuses"
    if run_url != ABSOLUTE:
        assert "/dags/" not in message.text and "/dags/" not in json.dumps(message.blocks)
    if run_url != ABSOLUTE and kind != "incident_card":  # without a link, the run is still named
        assert RUN_ID in message.text and RUN_ID in json.dumps(message.blocks)


def test_the_overdue_message_says_when_the_runs_state_was_unknown():
    note = "Its current state could not be read (TimeoutError); when the deadline passed it was running."
    message = run_overdue(
        dag_id=DAG_ID, run_id=RUN_ID, queued_at="09:00", minutes=10, run_url=None, state_note=note
    )
    assert note in message.text
    assert note in json.dumps(message.blocks)


@pytest.mark.parametrize("value", ["", "/airflow", "airflow.example.com"])
def test_without_an_absolute_base_url_there_are_no_links_and_the_log_says_why_once(
    monkeypatch, caplog, value
):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", value)
    config._no_links.cache_clear()
    with caplog.at_level(logging.WARNING, logger=config.__name__):
        assert [config.api_base_url() for _ in range(3)] == [None, None, None]
    [record] = caplog.records
    assert "[api] base_url" in record.message and "no links" in record.message


def test_an_absolute_base_url_is_used_without_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    config._no_links.cache_clear()
    with caplog.at_level(logging.WARNING, logger=config.__name__):
        assert config.api_base_url() == "https://airflow.example.com"
    assert caplog.records == []
