"""A `slackwebhook` connection to the Slack stand-in, as Airflow reads it from the environment."""

from __future__ import annotations

import json

from dev.slack_sink import SlackSinkAdmin
from tests.conftest import SLACK_WEBHOOK_PATH


def webhook_connection(monkeypatch, sink_url: str, conn_id: str) -> SlackSinkAdmin:
    """Connection `conn_id` posts to the stand-in at `sink_url`, emptied; returns its admin client."""
    connection = {"conn_type": "slackwebhook", "password": sink_url + SLACK_WEBHOOK_PATH}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    admin = SlackSinkAdmin(sink_url)
    admin.reset()
    return admin
