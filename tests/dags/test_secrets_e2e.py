"""No secret anywhere: every task log and `airflow dags test` output of this session, the whole
metadata database (XCom, rendered fields, ...) and every Slack payload. Runs last in its module,
after a run whose API key sits in the connection's extra, which Airflow does not mask."""

from __future__ import annotations

import json
import sqlite3

import pytest

from batch_cleanup.compat import airflow_minor
from tests.conftest import API_KEY, SLACK_WEBHOOK_PATH
from tests.scenario import DAG_ID, explains, stalled

pytestmark = pytest.mark.e2e

WEBHOOK_SECRET = SLACK_WEBHOOK_PATH.rsplit("/", 1)[-1]


def database_text(path) -> dict[str, str]:
    """Every table of the SQLite metadata database, as text."""
    with sqlite3.connect(path) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: "\n".join(map(repr, db.execute(f'SELECT * FROM "{table}"'))) for table in tables}


def test_no_secret_in_logs_database_or_slack_payloads(airflow, fresh, coordinator):
    coordinator_admin, sink = fresh
    coordinator_admin.seed([stalled("b-key-in-extra")])
    in_extra = {"conn_type": "http", "host": coordinator.url, "extra": {"X-API-Key": API_KEY}}

    run = airflow.dags_test(
        DAG_ID, name="key-in-extra", extra_env={"AIRFLOW_CONN_PREDICTION_COORDINATOR": json.dumps(in_extra)}
    )
    assert run.state == "success", run.explain()
    assert coordinator_admin.calls()[-1]["api_key_ok"] is True, (
        "the key from the extra must reach the coordinator"
    )
    # Something that fails and posts, so failure payloads are scanned too.
    coordinator_admin.faults([{"status": 401}])
    airflow.dags_test(DAG_ID, name="key-in-extra-401")

    scanned = {f"dags-test output #{index}": text for index, text in enumerate(airflow.outputs)}
    scanned |= {
        str(p): p.read_text(errors="replace") for p in (airflow.home / "logs").rglob("*") if p.is_file()
    }
    scanned |= {f"table {table}": text for table, text in database_text(airflow.home / "airflow.db").items()}
    scanned |= {
        f"slack payload #{i}": json.dumps(m["payload"], ensure_ascii=False)
        for i, m in enumerate(sink.messages())
    }
    assert any(name.startswith("table xcom") for name in scanned), "the scan must cover XCom"
    assert sink.messages(), "the scan must cover at least one Slack payload"
    for secret in (API_KEY, WEBHOOK_SECRET):
        leaks = [name for name, text in scanned.items() if secret in text]
        where = {name: scanned[name][max(0, scanned[name].find(secret) - 120) :][:200] for name in leaks}
        assert leaks == [], f"{secret[:8]}… leaked into {where}"


def _echoing_key() -> dict:
    """A 400 whose body echoes the request's headers, as a proxy or a debug handler might."""
    return {"status": 400, "body": json.dumps({"echo": {"headers": {"X-API-Key": API_KEY}}})}


@pytest.mark.parametrize("key_in", ["password", "extra"])
def test_a_key_echoed_by_the_coordinator_never_reaches_slack(airflow, fresh, coordinator, key_in):
    coordinator_admin, sink = fresh
    coordinator_admin.faults([_echoing_key()])
    connection = {"conn_type": "http", "host": coordinator.url}
    connection |= {"password": API_KEY} if key_in == "password" else {"extra": {"X-API-Key": API_KEY}}

    run = airflow.dags_test(
        DAG_ID,
        name=f"echo-{key_in}",
        extra_env={"AIRFLOW_CONN_PREDICTION_COORDINATOR": json.dumps(connection)},
    )

    assert run.state == "failed", run.explain()
    assert run.tries["check_stalled"] == 1
    [failure] = sink.messages()
    posted = json.dumps(failure["payload"], ensure_ascii=False)
    assert API_KEY not in posted, f"the key reached Slack: {posted[:600]}"
    if airflow_minor() >= (3, 3):  # before 3.3 `dags test` hands the callback no error (scenario.explains)
        assert "answered HTTP 400" in posted and "echo" in posted, "the body is still shown, masked"
        assert "***" in posted


def test_markup_in_a_coordinator_error_is_escaped_in_the_failure_message(airflow, fresh):
    coordinator_admin, sink = fresh
    hostile = "<!channel> bad field <https://evil.example|docs> & more"
    coordinator_admin.faults([{"status": 422, "body": hostile, "content_type": "text/plain"}])

    run = airflow.dags_test(DAG_ID, name="hostile-error")

    assert run.state == "failed", run.explain()
    [failure] = sink.messages()
    payload = failure["payload"]
    everything = [payload["text"]] + [json.dumps(block, ensure_ascii=False) for block in payload["blocks"]]
    for text in everything:
        assert "<!channel>" not in text and "<https://evil.example" not in text, text
    assert explains(
        payload["text"], "&lt;!channel&gt; bad field &lt;https://evil.example|docs&gt; &amp; more"
    )
    if airflow_minor() >= (3, 3):
        assert any("&lt;!channel&gt;" in text for text in everything[1:]), (
            "the blocks show the error, escaped"
        )
