"""The DAG's runs, from Airflow's metadata database (the api-server serving the page has it): the
newest one, and when the alert policy decided (for the backtest). What each run checked comes from
its run record in Firestore (`queries.HistoryStore.runs`), which outlives Airflow's cleaned-up XComs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from batch_cleanup.names import EVALUATE

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
