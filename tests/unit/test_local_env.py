"""`make run`'s two Slack modes, as the environment it gives Airflow (the whole `make run` is
checked by tests/integration/test_run_local.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dev.run_local import banner, local_env
from dev.services import Service
from dev.slack_sink import DEFAULT_CHANNEL, WEBHOOK_PATH

SLACK_ENV = "AIRFLOW_CONN_SLACK_DAILY_ORCHESTRATION"


def service(name: str, port: int) -> Service:
    return Service(name, f"http://127.0.0.1:{port}", None, Path("/dev/null"))


def env(mode: str) -> dict[str, str]:
    services = {"coordinator": service("coordinator", 1), "sink": service("sink", 2)}
    services["emulator"] = service("emulator", 3)
    return local_env(Path("/tmp/home"), 8080, api_key="k", slack_mode=mode, **services)


def test_by_default_slack_is_the_stand_ins_webhook():
    connection = json.loads(env("webhook")[SLACK_ENV])
    assert connection == {"conn_type": "slackwebhook", "password": "http://127.0.0.1:2" + WEBHOOK_PATH}


def test_bot_mode_is_a_slack_connection_on_the_stand_ins_web_api_and_channel():
    connection = json.loads(env("bot")[SLACK_ENV])
    assert connection["conn_type"] == "slack"
    assert connection["password"].startswith("xoxb-") and len(connection["password"]) > 20
    assert connection["extra"] == {"base_url": "http://127.0.0.1:2/api/", "channel": DEFAULT_CHANNEL}
    assert json.loads(env("bot")[SLACK_ENV])["password"] != connection["password"], "a new token each run"


@pytest.mark.parametrize(("mode", "says"), [("webhook", "SLACK_MODE=bot"), ("bot", "bot-token mode")])
def test_the_banner_says_which_mode(mode, says):
    text = banner("http://localhost:8080", "pw", Path("/h"), Path("/l"), "c", "http://sink", "e", "m", mode)
    assert says in text
