"""The DAG's last run, from Airflow's metadata database (the api-server serving the page has it)."""

from __future__ import annotations

from typing import Any


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
