"""No secret (the API key, the webhook's secret path) leaves a run. `AirflowCLI.dags_test` scans
every run of the suite as it ends: its output and its rows of the metadata database. The runs here
take the paths where a secret could leak, and their Slack payloads and the whole metadata database
(Variables and all) are scanned after them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from batch_cleanup.compat import airflow_minor
from tests.conftest import API_KEY, SLACK_WEBHOOK_SECRET
from tests.scenario import DAG_ID, explains, record_events, stalled, texts

pytestmark = pytest.mark.e2e


def test_no_secret_on_the_paths_that_handle_one(airflow, fresh, db, coordinator):
    """The key in the connection's extra, which Airflow masks only as a whole JSON text."""
    coordinator_admin, sink = fresh
    in_extra = {"conn_type": "http", "host": coordinator.url, "extra": {"X-API-Key": API_KEY}}
    key_in_extra = {"AIRFLOW_CONN_PREDICTION_COORDINATOR": json.dumps(in_extra)}
    record_events(db, datetime.now(UTC) - timedelta(minutes=5), "earlier-1", "earlier-2")
    coordinator_admin.seed([stalled("b-key-in-extra")])
    coordinator_admin.faults([{"status": 503, "count": 1}])
    echoed = [{"name": "auth", "status": "UNHEALTHY", "error": f"bad X-API-Key {API_KEY}"}]
    coordinator_admin.set_health({"status": "unhealthy", "components": echoed}, status=503)
    # A WARNING the webhook refuses for good (its error and the failure message's both name it)...
    sink.faults([{"status": 404, "body": "no_service", "count": 10}])
    refused = airflow.dags_test(DAG_ID, name="key-in-extra-refused", extra_env=key_in_extra)
    assert refused.state == "failed" and refused.tries["check_stalled"] == 2, refused.explain()
    assert "Slack refused the message on connection 'slack_daily_orchestration'" in refused.output
    # ... then once more, posted after the webhook failed once: retried calls, a health check
    # that echoes the key, a retried post, the alert in Slack and in XCom.
    sink.reset()
    sink.faults([{"status": 500, "count": 1}])
    posted = airflow.dags_test(DAG_ID, name="key-in-extra", extra_env=key_in_extra, expect="success")
    assert sink.attempts() == 2 and texts(sink)[0].startswith("WARNING"), texts(sink)
    assert {call["api_key_ok"] for call in coordinator_admin.calls()} == {True}, "the key reached it"
    assert {call["api_key_ok"] for call in coordinator_admin.health_calls()} == {True}
    # A rejected key: a failure posted.
    coordinator_admin.faults([{"status": 401}])
    rejected = airflow.dags_test(DAG_ID, name="key-in-extra-401", extra_env=key_in_extra)
    assert rejected.state == "failed" and len(sink.messages()) == 2, rejected.explain()

    scanned = {f"table {table}": rows for table, rows in airflow.database_text().items()}
    scanned |= {
        f"slack payload #{i}": json.dumps(m["payload"], ensure_ascii=False)
        for i, m in enumerate(sink.messages())
    }
    assert airflow.database_text(posted.run_id)["xcom"], "the scan covers XCom"
    airflow.assert_no_secret(scanned)
    # The scan every run passes through is armed with both secrets, and a leak fails it.
    assert set(airflow.secrets) == {API_KEY, SLACK_WEBHOOK_SECRET}
    for secret in airflow.secrets:
        with pytest.raises(AssertionError, match="a secret leaked"):
            airflow.assert_no_secret({"a planted leak": f"...{secret}..."})


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
        expect="failed",
    )
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

    airflow.dags_test(DAG_ID, name="hostile-error", expect="failed")
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
