"""The DAG on a real scheduler: Airflow's components as processes, driven only through the REST API.

Two configurations, each in a fresh home under test-output/: `local-sqlite` (LocalExecutor on
SQLite, as `make run`) and `celery-postgres-redis` (a Celery worker process, PostgreSQL as the
metadata database, Redis as the broker; both started here, installed first when missing).

The batches seeded here are only "stalled" under the params these tests trigger with (75 %,
20 min), never under the defaults (90 %, 10 min): a scheduled run that starts while a test runs
(one starts at once when the DAG is first unpaused, then every quarter hour) finds nothing to do.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from dev import system_services
from dev.airflow_env import LOCAL_PROJECT
from dev.coordinator import CoordinatorAdmin
from dev.slack_sink import SlackSinkAdmin
from tests.conftest import API_KEY, SLACK_WEBHOOK_PATH, SLACK_WEBHOOK_SECRET
from tests.scenario import reset, texts
from tests.system.deployment import DAG_ID, NEW_YORK, Deployment, new_deployment, next_quarter_hour, running

pytestmark = pytest.mark.system

CONFIGURATIONS = ["local-sqlite", "celery-postgres-redis"]
FORM_PARAMS = {"stall_threshold_minutes": 20, "min_completion_pct": 75}
SECRETS = (API_KEY, SLACK_WEBHOOK_PATH, SLACK_WEBHOOK_SECRET)
NEXT_RUN_TIMEOUT = 120.0


def stalled_under_form_params(batch_id: str) -> dict:
    """Stalled for the params above, not for the defaults: 80 % < 90 %."""
    return {"batch_id": batch_id, "completion_pct": 80, "stalled_minutes": 30}


@pytest.fixture(scope="module", params=CONFIGURATIONS)
def deployment(request, coordinator, slack_sink, firestore_emulator) -> Iterator[Deployment]:
    """One configuration's components, started from scratch and stopped afterwards, pass or fail."""
    name = request.param
    # Nothing left over from the other configuration or other tests: batches, replies, messages, events.
    reset(coordinator, slack_sink, firestore_emulator)
    started = time.monotonic()
    with contextlib.ExitStack() as stop:  # last in, first out: Airflow before its database and broker
        airflow = new_deployment(name, coordinator, slack_sink, firestore_emulator)
        if name == "celery-postgres-redis":
            postgres = system_services.start_postgres()
            stop.callback(postgres.stop, keep_log_in=airflow.log_dir)
            redis = system_services.start_redis(airflow.log_dir)
            stop.callback(redis.stop)
            airflow.use_celery(postgres.sqlalchemy_url, redis.url)
        stop.callback(report, request, airflow, started)
        yield stop.enter_context(running(airflow))
    left = airflow.left_running()
    assert left == [], f"[{name}] processes still running after stop: {left}"


def report(request, airflow: Deployment, started: float) -> None:
    """The configuration's timings: in its folder and on the terminal."""
    airflow.timings["total"] = time.monotonic() - started
    (airflow.work / "timings.json").write_text(json.dumps(airflow.timings, indent=2))
    summary = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in airflow.timings.items())
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and terminal is not None:
        with capture.global_and_fixture_disabled():
            terminal.write_line(f"\n[system {airflow.name}] {summary}")


@pytest.fixture(scope="module")
def three_stalled_runs(deployment, coordinator, slack_sink, firestore_emulator) -> list[str]:
    """Three triggered runs within minutes, each finding one stalled batch: the third reaches 3 ≥ 3."""
    admin, _ = reset(coordinator, slack_sink, firestore_emulator)
    run_ids = []
    for index in range(1, 4):
        admin.seed([stalled_under_form_params(f"{deployment.name}-stall-{index}")])
        run_id = f"stalls-{index}-{deployment.name}"
        response = deployment.trigger(FORM_PARAMS, run_id=run_id)
        assert response.status_code == 200, f"trigger refused: {response.status_code} {response.text}"
        run = deployment.wait_for_run(run_id)
        assert run["state"] == "success", deployment.explain_run(run_id)
        run_ids.append(run_id)
    return run_ids


def test_dag_is_parsed_without_import_errors_and_unpaused(deployment: Deployment) -> None:
    assert deployment.get("/api/v2/importErrors")["import_errors"] == []
    dag = deployment.dag()
    assert (dag["is_paused"], dag["has_import_errors"]) == (False, False), dag


def test_next_run_is_the_next_quarter_hour_in_new_york(deployment: Deployment) -> None:
    # Not `details["timezone"]`: Airflow 3.3 reports its default time zone there for every DAG.
    details = deployment.get(f"/api/v2/dags/{DAG_ID}/details")
    assert details["timetable_summary"] == "*/15 * * * *", details["timetable_summary"]

    # When first unpaused the DAG runs at once for the quarter hour just begun; until the
    # scheduler has created that run, the next run it lists is in the past.
    deadline = time.monotonic() + NEXT_RUN_TIMEOUT
    while True:
        before = datetime.now(UTC)
        next_run = deployment.dag()["next_dagrun_run_after"]
        after = datetime.now(UTC)
        if next_run and datetime.fromisoformat(next_run) > before:
            break
        assert time.monotonic() < deadline, f"next run still {next_run} at {after}\n{deployment.explain()}"
        time.sleep(1)

    listed = datetime.fromisoformat(next_run)
    expected = {next_quarter_hour(before), next_quarter_hour(after)}  # the call may straddle one
    assert listed in expected, (
        f"next run {listed.astimezone(NEW_YORK)} (New York), "
        f"expected {sorted(e.astimezone(NEW_YORK).isoformat() for e in expected)}"
    )


def test_run_triggered_with_params_succeeds(deployment: Deployment, coordinator) -> None:
    admin = CoordinatorAdmin(coordinator.url)
    admin.reset()
    admin.seed([stalled_under_form_params(f"{deployment.name}-form")])

    response = deployment.trigger(FORM_PARAMS)  # no run id: the form's default
    assert response.status_code == 200, f"trigger refused: {response.status_code} {response.text}"
    run_id = response.json()["dag_run_id"]
    assert response.json()["conf"] == FORM_PARAMS
    run = deployment.wait_for_run(run_id)

    assert run["state"] == "success", deployment.explain_run(run_id)
    states = deployment.task_states(run_id)
    assert states["check_stalled"] == states["record_event"] == states["evaluate"] == "success", states
    [call] = [call for call in admin.calls() if call["idempotency_key"] == f"{DAG_ID}/{run_id}"]
    assert call["body"] == FORM_PARAMS, "the params must reach the coordinator as triggered"
    assert call["api_key_ok"] is True
    assert [batch["status"] for batch in admin.batches()] == ["completed"]
    if deployment.celery:
        worker_log = deployment.component_log("celery-worker")
        assert f"run_id={run_id}/task_id=check_stalled/" in worker_log, "the Celery worker must run the tasks"


def test_invalid_param_is_refused_with_the_schema_message(deployment: Deployment) -> None:
    def manual_runs() -> list[str]:  # a scheduled run may start meanwhile: it does not count
        return [run["dag_run_id"] for run in deployment.runs() if run["run_type"] == "manual"]

    before = manual_runs()
    response = deployment.trigger({**FORM_PARAMS, "min_completion_pct": 150})

    assert response.status_code == 400, f"{response.status_code} {response.text}"
    detail = response.json()["detail"]
    assert "Invalid input for param min_completion_pct: 150 is greater than the maximum of 100" in detail
    assert manual_runs() == before, "a refused trigger must not create a run"


def test_three_stalled_runs_post_one_slack_alert(
    deployment: Deployment, three_stalled_runs: list[str], slack_sink
) -> None:
    sink = SlackSinkAdmin(slack_sink.url)

    [text] = texts(sink)
    link = f"{deployment.base_url}/dags/{DAG_ID}/runs/{quote(three_stalled_runs[-1], safe='')}"
    named = ["3 cleanups in the last 60 minutes", "WARNING", link]
    named += [f"{deployment.name}-stall-{index}" for index in range(1, 4)]
    assert [part for part in named if part not in text] == [], text
    assert sink.messages()[0]["path"] == SLACK_WEBHOOK_PATH


def test_history_rate_counts_the_runs_that_found_nothing_stalled(
    deployment: Deployment, three_stalled_runs: list[str], coordinator, firestore_emulator, monkeypatch
) -> None:
    """The page's rate is over every run's record, which holds what its `check_stalled` returned
    (as this deployment's REST API shows it); a run that found nothing stalled writes no event but
    counts. Runs that ended before the fixture wiped Firestore have no record left: the runs compared
    are those whose record is in Firestore, and the quiet run must be one of them."""
    from google.cloud import firestore

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    db = firestore.Client(project=LOCAL_PROJECT)

    def recorded() -> set[str]:
        mine = firestore.FieldFilter("dag_id", "==", DAG_ID)
        query = db.collection("batch_cleanup_runs").where(filter=mine)
        return {snapshot.get("run_id") for snapshot in query.stream()}

    admin = CoordinatorAdmin(coordinator.url)
    admin.reset()
    admin.seed([{"batch_id": f"{deployment.name}-busy-{i}", "completion_pct": 40} for i in range(5)])
    run_id = f"quiet-{deployment.name}"
    assert deployment.trigger(FORM_PARAMS, run_id=run_id).status_code == 200
    assert deployment.wait_for_run(run_id)["state"] == "success", deployment.explain_run(run_id)

    def results() -> dict[str, dict]:  # what each finished run's check_stalled returned, via the REST API
        found = {}
        records = recorded()
        for run in (run for run in deployment.runs() if run["dag_run_id"] in records):
            path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/check_stalled"
            response = deployment.client.get(f"{path}/xcomEntries/return_value")
            if response.status_code == 200:
                found[run["dag_run_id"]] = response.json()["value"]
        return found

    for _ in range(5):  # a scheduled run may finish meanwhile: read again until nothing moved
        before = results()
        totals = deployment.get("/batch-cleanup/api/cleanups", range="24h")["cleanups"]["totals"]
        if results() == before:
            break
    assert {run_id, *three_stalled_runs} <= set(before), sorted(before)
    assert before[run_id] == {**before[run_id], "batches_checked": 5, "stalled_count": 0}
    assert totals["rate_source"] == "runs", totals
    assert totals["runs"] == len(before), (totals, sorted(before))
    assert totals["checked"] == sum(value["batches_checked"] for value in before.values())
    assert totals["stalled"] == sum(value["stalled_count"] for value in before.values()) >= 3
    assert totals["cleanups"] == 3  # the events: the quiet run wrote none
    assert totals["rate"] == totals["stalled"] / totals["checked"]


def test_task_logs_explain_the_decision_and_hold_no_secret(
    deployment: Deployment, three_stalled_runs: list[str]
) -> None:
    logs = {run_id: deployment.run_logs(run_id) for run_id in three_stalled_runs}

    def evaluate_log(run_id: str) -> str:
        return "\n".join(log.text for log in logs[run_id] if "/evaluate/" in log.where)

    first, second, third = three_stalled_runs
    assert "1 cleanup in the last 60 minutes < 3" in evaluate_log(first), evaluate_log(first)
    assert "2 cleanups in the last 60 minutes < 3" in evaluate_log(second), evaluate_log(second)
    assert "3 cleanups in the last 60 minutes ≥ 3 → WARNING" in evaluate_log(third), evaluate_log(third)
    check_log = "\n".join(log.text for log in logs[third] if "/check_stalled/" in log.where)
    assert f"auto-completed: {deployment.name}-stall-3" in check_log, check_log

    every_log = [log for run_logs in logs.values() for log in run_logs]
    assert len(every_log) >= 3 * 4, [log.where for log in every_log]
    leaks = [f"{log.where} holds {secret!r}" for log in every_log for secret in SECRETS if secret in log.raw]
    assert leaks == []


def test_no_secret_in_any_log_file(deployment: Deployment, three_stalled_runs: list[str]) -> None:
    """Component logs (scheduler, worker, API server, ...) and task log files on disk alike."""
    files = [path for path in deployment.work.rglob("*") if path.is_file() and _is_log(path)]
    leaks = [f"{path} holds {s!r}" for path in files for s in SECRETS if s.encode() in path.read_bytes()]

    assert files, f"no log files under {deployment.work}"
    assert leaks == []


def _is_log(path: Path) -> bool:
    return path.suffix in (".log", ".json") and path.name not in ("passwords.json", "timings.json")
