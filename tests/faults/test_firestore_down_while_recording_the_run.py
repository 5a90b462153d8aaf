"""What if Firestore goes away just as a run writes its record (`record_state`, a run with nothing
to post: the record is its one write). The outage begins once `evaluate` has succeeded, before
`record_state` starts. The record must land once, whole: retried in place when the outage is
shorter than Google's client retries, or by Airflow's retry of the task when it outlasts them;
the retry writes the same document (its id is the run's), never a second one."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime, timedelta

import pytest

from tests.scenario import DAG_ID, alert_state, healthy, run_with_outage, stalled

pytestmark = pytest.mark.e2e


def evaluated_runs(airflow) -> set[str]:
    """Runs of the DAG whose `evaluate` has succeeded, from the Airflow home's metadata database."""
    with contextlib.closing(sqlite3.connect(airflow.home / "airflow.db", timeout=10)) as db:
        rows = db.execute(
            "SELECT run_id FROM task_instance WHERE dag_id = ? AND task_id = ? AND state = 'success'",
            (DAG_ID, "evaluate"),
        ).fetchall()
    return {run_id for (run_id,) in rows}


def task_seconds(airflow, run_id: str, task_id: str) -> float:
    with contextlib.closing(sqlite3.connect(airflow.home / "airflow.db", timeout=10)) as db:
        [(started, ended)] = db.execute(
            "SELECT start_date, end_date FROM task_instance WHERE run_id = ? AND task_id = ?",
            (run_id, task_id),
        ).fetchall()
    return (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()


def run_cut_before_the_record(
    airflow, fresh, proxy, outage_seconds: float, env: dict[str, str] | None = None
):
    """One stalled batch of three (an event, then nothing to post); the DAG run through the proxy;
    once its `evaluate` succeeded, Firestore refuses connections for `outage_seconds`."""
    coordinator, sink = fresh
    coordinator.seed([stalled("b-record-cut"), healthy("b-ok-1"), healthy("b-ok-2")])
    before = evaluated_runs(airflow)
    run = run_with_outage(
        airflow,
        proxy,
        lambda: bool(evaluated_runs(airflow) - before),
        outage_seconds,
        what="the run's evaluate succeeding",
        name="record-cut",
        env=env,
    )
    assert run.state == "success", run.explain()
    assert sink.messages() == [], "nothing to post, and no failure"
    return run


def the_one_record(db, run) -> dict:
    """The run's record, the only one: whole, with this run's figures."""
    documents = [(doc.id, doc.to_dict()) for doc in db.collection("batch_cleanup_runs").stream()]
    assert len(documents) == 1, documents
    [(document_id, record)] = documents
    assert document_id.startswith(f"{DAG_ID}-") and record["run_id"] == run.run_id
    figures = {key: record[key] for key in ("dag_id", "batches_checked", "stalled_count", "kind", "severity")}
    assert figures == {
        "dag_id": DAG_ID,
        "batches_checked": 3,
        "stalled_count": 1,
        "kind": "none",
        "severity": None,
    }
    assert record["expire_at"] - record["run_after"] == timedelta(days=90)
    assert record["recorded_at"] > record["run_after"]
    return record


def test_an_outage_shorter_than_the_clients_retries_is_waited_out_and_the_record_lands_once(
    airflow, fresh, db, firestore_proxy
):
    outage = 8
    run = run_cut_before_the_record(airflow, fresh, firestore_proxy, outage)
    assert run.tries["record_state"] == 1, "the write was retried in place, the task was not"
    assert task_seconds(airflow, run.run_id, "record_state") >= outage / 2, "the outage met the write"
    the_one_record(db, run)
    assert alert_state(db) == {}, "no state saved: the record was the run's one write"


def test_an_outage_outlasting_the_try_fails_it_and_airflows_retry_writes_the_same_record(
    airflow, fresh, db, firestore_proxy
):
    """Google's client retries cut to 3 s: the first try of `record_state` fails on the outage;
    Airflow retries the task (1 s, then doubling) until Firestore is back."""
    env = {"AIRFLOW__BATCH_CLEANUP__FIRESTORE_RETRY_SECONDS": "3"}
    run = run_cut_before_the_record(airflow, fresh, firestore_proxy, 8, env)
    assert run.tries["record_state"] >= 2, f"the first try must fail on the outage\n{run.explain()}"
    assert "is unreachable (write_run)" in run.output
    the_one_record(db, run)
