"""The environment that points a local Airflow at the stand-ins.

One place builds it, so `make run`, the end-to-end tests and the system tests
all run Airflow the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

from dev.slack_sink import DEFAULT_CHANNEL

REPO = Path(__file__).resolve().parent.parent
LOCAL_PROJECT = "demo-batch-cleanup"


def slack_bot_connection(api_url: str, token: str, channel: str = DEFAULT_CHANNEL) -> str:
    """`AIRFLOW_CONN_SLACK_DAILY_ORCHESTRATION` in bot-token mode: the Slack provider's `slack`
    connection (token as password), pointed at `api_url` (the stand-in's `/api/`) and `channel`."""
    return json.dumps(
        {"conn_type": "slack", "password": token, "extra": {"base_url": api_url, "channel": channel}}
    )


def connection_env(
    *, coordinator_url: str, api_key: str, slack_webhook_url: str, project: str = LOCAL_PROJECT
) -> dict[str, str]:
    """`AIRFLOW_CONN_*` variables for the three connections the DAG uses."""
    return {
        "AIRFLOW_CONN_PREDICTION_COORDINATOR": json.dumps(
            {"conn_type": "http", "host": coordinator_url, "password": api_key}
        ),
        # A password holding a full URL is used as the webhook URL by the Slack provider.
        "AIRFLOW_CONN_SLACK_DAILY_ORCHESTRATION": json.dumps(
            {"conn_type": "slackwebhook", "password": slack_webhook_url}
        ),
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(
            # Anonymous: the emulator takes none (Google's client finds it by FIRESTORE_EMULATOR_HOST).
            {"conn_type": "google_cloud_platform", "extra": {"project": project, "is_anonymous": True}}
        ),
    }


def airflow_env(
    home: Path,
    *,
    coordinator_url: str,
    api_key: str,
    slack_webhook_url: str,
    firestore_host: str,
    project: str = LOCAL_PROJECT,
    retry_delay_seconds: int | None = None,
    monitoring_url: str | None = None,
    slack_connection: str | None = None,
) -> dict[str, str]:
    """Airflow settings for a local home folder, on SQLite, with the DAG and plugin folders of this repo.

    `slack_connection` (see `slack_bot_connection`) replaces the webhook connection.
    """
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # A longer wait for SQLite's lock than its 5 s, for all but the api-server: dev/sqlite_locks.py.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "dev.sqlite_locks.CONNECT_ARGS",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": "dev.sqlite_locks.CONNECT_ARGS",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "FIRESTORE_EMULATOR_HOST": firestore_host,
        "GOOGLE_CLOUD_PROJECT": project,
        "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}",  # the repo root for dev.sqlite_locks
    }
    if monitoring_url is not None:  # the run's metrics go to the Monitoring stand-in
        env["AIRFLOW__BATCH_CLEANUP__MONITORING_API_ENDPOINT"] = monitoring_url
    if retry_delay_seconds is not None:
        env["AIRFLOW__BATCH_CLEANUP__RETRY_DELAY_SECONDS"] = str(retry_delay_seconds)
    urls = {"coordinator_url": coordinator_url, "slack_webhook_url": slack_webhook_url}
    env.update(connection_env(**urls, api_key=api_key, project=project))
    if slack_connection is not None:  # bot-token mode instead of the webhook
        env["AIRFLOW_CONN_SLACK_DAILY_ORCHESTRATION"] = slack_connection
    return env
