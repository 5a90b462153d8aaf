"""The runs' results the rate is computed from, read from Airflow's database (`ui/runs.py`).

A real run through `airflow dags test` writes its `check_stalled` XCom into the test session's
SQLite database; the history reads two integers out of it there.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from dev.coordinator import CoordinatorAdmin
from tests.scenario import healthy, stalled
from tests.support import seed_runs
from tests.ui import history_data

pytestmark = pytest.mark.e2e

OTHER_DAG = "ui_runs_test_dag"  # seeded runs of a DAG of their own: the real DAG's are left alone


def test_a_real_runs_xcom_gives_what_it_checked_and_what_stalled(airflow, coordinator, firestore):
    from batch_cleanup.ui.runs import run_checks

    admin = CoordinatorAdmin(coordinator.url)
    admin.reset()
    admin.seed([stalled("b-runs-1"), healthy("b-runs-2"), healthy("b-runs-3"), healthy("b-runs-4")])
    before = datetime.now(UTC)
    run = airflow.dags_test(history_data.DAG_ID, name="ui-run-checks")
    after = datetime.now(UTC)
    assert run.state == "success", run.explain()

    checks, truncated = run_checks(history_data.DAG_ID, before, after)

    assert truncated is False
    assert [(c.checked, c.stalled) for c in checks] == [(4, 1)]
    assert before <= checks[0].timestamp <= after


def test_run_checks_are_bounded_by_the_window_and_the_limit(airflow):
    from batch_cleanup.ui.runs import run_checks

    start = datetime(2026, 3, 1, tzinfo=UTC)
    end = start + timedelta(days=1)
    at = [start, start + timedelta(hours=1), end, end + timedelta(microseconds=1)]  # read as (start, end]
    seed_runs.replace_runs(OTHER_DAG, [{"at": t, "checked": 10 * i, "stalled": i} for i, t in enumerate(at)])

    checks, truncated = run_checks(OTHER_DAG, start, end)
    assert [(c.timestamp, c.checked, c.stalled) for c in checks] == [(at[2], 20, 2), (at[1], 10, 1)]
    assert truncated is False

    newest, truncated = run_checks(OTHER_DAG, start, start + timedelta(days=2), limit=2)
    assert [c.timestamp for c in newest] == [at[3], at[2]]
    assert truncated is True


def test_a_result_without_the_counts_is_left_out_and_logged(airflow, caplog):
    """A custom XCom backend keeps only a reference in the table: no count to read there."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    from batch_cleanup.ui.runs import run_checks

    start = datetime(2026, 4, 1, tzinfo=UTC)
    runs = [{"at": start + timedelta(minutes=15 * i), "checked": 100, "stalled": 0} for i in range(3)]
    seed_runs.replace_runs(OTHER_DAG, runs)
    with create_session() as session:
        session.execute(
            update(XComModel)
            .where(XComModel.dag_id == OTHER_DAG, XComModel.timestamp == runs[0]["at"])
            .values(value="s3://xcom-bucket/stalled_batch_cleanup/check_stalled.json")
        )

    with caplog.at_level(logging.WARNING, logger="batch_cleanup.ui.runs"):
        checks, _ = run_checks(OTHER_DAG, start - timedelta(minutes=1), start + timedelta(hours=1))

    assert [c.timestamp for c in checks] == [runs[2]["at"], runs[1]["at"]]
    assert "1 of 3 check_stalled results hold no batches_checked or stalled_count" in caplog.text
