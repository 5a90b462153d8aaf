"""Past DAG runs, each with the `check_stalled` XCom a real run leaves, written into Airflow's DB.

The history page reads the auto-completion rate's denominator from those XComs. A test cannot
wait 30 days for real runs, so this writes the same rows a run writes (`dag_run`,
`task_instance`, `xcom` with the summary as its JSON value, checked in tests/ui against a real
run's) with the times the test chooses. Seeded runs have run ids starting `seeded__`, and each
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

PREFIX = "seeded__"
TASK_ID = "check_stalled"


def summary(checked: int, stalled: int) -> dict[str, Any]:
    """The XCom `check_stalled` returns (batch_cleanup.cleanup.summarize), for made-up batches."""
    ids = [f"seeded-batch-{i}" for i in range(stalled)]
    return {
        "batches_checked": checked,
        "batches_completed": stalled,
        "stalled_count": stalled,
        "stalled_batch_ids": ids,
        "stalled_results": [{"batch_id": b, "was_stalled": True, "action": "auto_completed"} for b in ids],
        "truncated": False,
        "fingerprint": "seeded",
    }


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
            dag_run_id = session.execute(
                insert(DagRun)
                .values(
                    dag_id=dag_id,
                    run_id=run_id,
                    run_type="scheduled",
                    run_after=at - timedelta(seconds=30),
                    start_date=at - timedelta(seconds=20),
                    end_date=at + timedelta(seconds=20),
                    state="success",
                    clear_number=0,
                )
                .returning(DagRun.id)
            ).scalar_one()
            session.execute(
                insert(TaskInstance).values(
                    dag_id=dag_id,
                    task_id=TASK_ID,
                    run_id=run_id,
                    map_index=-1,
                    state="success",
                    pool="default_pool",
                    try_number=1,
                )
            )
            session.add(
                XComModel(
                    dag_run_id=dag_run_id,
                    dag_id=dag_id,
                    run_id=run_id,
                    task_id=TASK_ID,
                    map_index=-1,
                    key="return_value",
                    value=summary(run["checked"], run["stalled"]),
                    timestamp=at,
                )
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
