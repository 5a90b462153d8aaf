"""The DAG's runs, from Airflow's metadata database (the api-server serving the page has it)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from batch_cleanup.names import CHECK_STALLED, EVALUATE
from batch_cleanup.ui.history import RunCheck

log = logging.getLogger(__name__)

# 30 days at one run per 15 minutes is 2,880 runs; manual runs add a few.
MAX_RUNS = 10_000


def last_run(dag_id: str) -> dict[str, Any] | None:
    """The newest run of `dag_id` by `run_after`, whatever its state; None when it never ran."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(
            DagRun.run_id, DagRun.state, DagRun.run_type, DagRun.run_after, DagRun.start_date, DagRun.end_date
        )
        .where(DagRun.dag_id == dag_id)
        .order_by(DagRun.run_after.desc())
        .limit(1)
    )
    with create_session() as session:
        row = session.execute(query).first()
    if row is None:
        return None
    run = row._asdict()
    for field in ("state", "run_type"):  # enums in the model, plain strings in JSON
        run[field] = getattr(run[field], "value", run[field])
    return run


def evaluated_at(dag_id: str, start: datetime, end: datetime, limit: int = MAX_RUNS) -> list[datetime]:
    """The `run_after` of each run of `dag_id` in `[start, end]` whose `evaluate` succeeded: the times
    the alert policy decided, manual and cleared runs included, oldest first, each once."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(DagRun.run_after)
        .join(TaskInstance, (TaskInstance.dag_id == DagRun.dag_id) & (TaskInstance.run_id == DagRun.run_id))
        .where(
            DagRun.dag_id == dag_id,
            DagRun.run_after >= start,
            DagRun.run_after <= end,
            TaskInstance.task_id == EVALUATE,
            TaskInstance.state == "success",
        )
        .distinct()
        .order_by(DagRun.run_after)
        .limit(limit)
    )
    with create_session() as session:
        return list(session.scalars(query))


def run_checks(
    dag_id: str, start: datetime, end: datetime, limit: int = MAX_RUNS
) -> tuple[list[RunCheck], bool]:
    """What each run's `check_stalled` returned in `(start, end]`, newest first; and whether cut.

    One query on the `xcom` table (the `dag_id, task_id` index, then the time), reading two
    integers out of each JSON value in the database, not the values themselves (a big answer's
    XCom holds up to 500 results). A value the database cannot read that way (a custom XCom
    backend keeps only a reference in the table) is left out and logged.
    """
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(
            XComModel.timestamp,
            XComModel.value["batches_checked"].as_integer(),
            XComModel.value["stalled_count"].as_integer(),
        )
        .where(
            XComModel.dag_id == dag_id,
            XComModel.task_id == CHECK_STALLED,
            XComModel.map_index == -1,
            XComModel.key == "return_value",
            XComModel.timestamp > start,
            XComModel.timestamp <= end,
        )
        .order_by(XComModel.timestamp.desc())
        .limit(limit)
    )
    with create_session() as session:
        rows = session.execute(query).all()
    checks = [RunCheck(*row) for row in rows if None not in row]
    if len(checks) < len(rows):
        log.warning(
            "Batch cleanup history: %d of %d %s results hold no batches_checked or stalled_count "
            "in the xcom table (a custom XCom backend?); the rate leaves them out",
            len(rows) - len(checks),
            len(rows),
            CHECK_STALLED,
        )
    return checks, len(rows) >= limit
