"""Past DAG runs, each with the `check_stalled` XCom a real run leaves, written into Airflow's DB.

The history page reads the auto-completion rate's denominator from those XComs. A test cannot
wait 30 days for real runs, so this writes the rows a run writes (`dag_run`, `task_instance`,
`xcom` holding what the DAG's own `summarize` makes of a coordinator answer) at the times the
test chooses. Seeded runs have run ids starting `seeded__`, and each
call first deletes the previous ones of the DAG.

In-process: `replace_runs(dag_id, runs)`. For another Airflow home (a running api-server's):
`python -m tests.support.seed_runs DAG_ID < runs.json`, run with that home's environment, where
runs.json is `[{"at": ISO time, "checked": n, "stalled": n}, ...]`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from batch_cleanup.cleanup import summarize
from batch_cleanup.names import CHECK_STALLED as CHECK_TASK_ID

PREFIX = "seeded__"


def summary(checked: int, stalled: int) -> dict[str, Any]:
    """`check_stalled`'s XCom for an answer that checked `checked` batches, `stalled` of them stalled."""
    results = [{"batch_id": f"seeded-batch-{i}", "was_stalled": i < stalled} for i in range(checked)]
    return summarize({"results": results, "batches_checked": checked, "batches_completed": stalled})


def replace_runs(dag_id: str, runs: Iterable[Mapping[str, Any]]) -> int:
    """Delete the DAG's seeded runs, then write one successful run per `{at, checked, stalled}`."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete, insert, select

    seeded = PREFIX + "%"
    written = 0
    with create_session() as session:
        for model in (XComModel, TaskInstance, DagRun):
            session.execute(delete(model).where(model.dag_id == dag_id, model.run_id.like(seeded)))
        for index, run in enumerate(runs):
            at: datetime = run["at"]
            run_id = f"{PREFIX}{at.isoformat()}-{index}"
            ids = {"dag_id": dag_id, "run_id": run_id}
            times = {"run_after": at - timedelta(seconds=30), "start_date": at - timedelta(seconds=20)}
            dag_run_id = session.execute(
                insert(DagRun)
                .values(**ids, **times, end_date=at + timedelta(seconds=20), run_type="scheduled")
                .values(state="success", clear_number=0)
                .returning(DagRun.id)
            ).scalar_one()
            task = {**ids, "task_id": CHECK_TASK_ID, "map_index": -1}
            session.execute(
                insert(TaskInstance).values(**task, state="success", pool="default_pool", try_number=1)
            )
            value = summary(run["checked"], run["stalled"])
            session.add(
                XComModel(**task, dag_run_id=dag_run_id, key="return_value", value=value, timestamp=at)
            )
            written += 1
        session.flush()
        count = select(XComModel.run_id).where(XComModel.dag_id == dag_id, XComModel.run_id.like(seeded))
        assert len(session.execute(count).all()) == written
    return written


def to_json(runs: Iterable[Mapping[str, Any]]) -> str:
    return json.dumps([{**run, "at": run["at"].isoformat()} for run in runs])


def main() -> None:
    [dag_id] = sys.argv[1:]
    runs = [{**run, "at": datetime.fromisoformat(run["at"])} for run in json.load(sys.stdin)]
    print(replace_runs(dag_id, runs))


if __name__ == "__main__":
    main()
