"""`airflow dags test` with a chosen run time: the CLI always runs "now", and the alert policy's
tests need a clock they control (cooldowns, a quiet hour). Same call the CLI makes: `DAG.test()`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from batch_cleanup.compat import conf

try:  # Airflow 3.2 and later
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # 3.1
    from airflow.models.dagbag import DagBag


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dag_id")
    parser.add_argument("--run-after", required=True, type=datetime.fromisoformat)
    parser.add_argument("--conf", default="{}")
    args = parser.parse_args()
    dag = DagBag(dag_folder=conf.get("core", "dags_folder")).dags[args.dag_id]
    run = dag.test(logical_date=args.run_after, run_after=args.run_after, run_conf=json.loads(args.conf))
    sys.exit(0 if run.state == "success" else 1)


if __name__ == "__main__":
    main()
