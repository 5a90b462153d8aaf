"""The DAG as the scheduler sees it: it loads, and its schedule, params and graph are as specified."""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
import sys
from datetime import timedelta

import pytest

try:  # Airflow 3.2 and later
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import ParamValidationError
except ImportError:  # 3.1
    from airflow.exceptions import ParamValidationError
    from airflow.models.dagbag import DagBag

from batch_cleanup.budget import MARGIN_FRACTION, RetryBudget, backoff_multiplier
from tests.conftest import REPO

DAG_ID = "stalled_batch_cleanup"
# Every DAG of the project: the conventions below hold for each (the weekly digest's own checks are
# in test_weekly_digest_dag.py).
DAG_IDS = ("stalled_batch_cleanup", "batch_cleanup_weekly_digest")  # each in dags/<id>.py


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags[DAG_ID]


@pytest.fixture(params=DAG_IDS)
def each_dag(request, dagbag):
    return dagbag.dags[request.param]


def test_dag_files_import_without_errors(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors
    assert sorted(dagbag.dag_ids) == sorted(DAG_IDS)


def test_schedule_is_every_quarter_hour_in_new_york(dag):
    from batch_cleanup.backtest import RUN_EVERY
    from batch_cleanup.names import SCHEDULE

    assert dag.schedule == SCHEDULE == "*/15 * * * *"
    assert timedelta(minutes=15) == RUN_EVERY, "the backtest replays the DAG's own runs"
    assert (dag.timezone.name, dag.catchup, dag.max_active_runs) == ("America/New_York", False, 1)
    assert dag.dagrun_timeout < timedelta(minutes=15)


def test_conventions_owner_tags_docs(each_dag):
    dag = each_dag
    assert {"prediction-platform", "batch-cleanup"} <= set(dag.tags), "the DAG needs the project's tags"
    assert dag.doc_md and "Runbook" in dag.doc_md
    for task in dag.tasks:
        assert task.owner not in ("", "airflow"), f"{task.task_id} has no owner"
        assert task.doc_md, f"{task.task_id} has no docstring: the UI shows it"


# Tasks whose failure must never page, nor be retried: the next run does their work again.
QUIET = {"read_labels"}


def test_tasks_retry_with_exponential_backoff(each_dag):
    for task in (task for task in each_dag.tasks if task.task_id not in QUIET):
        assert task.retries >= 1, f"{task.task_id} has no retries"
        assert backoff_multiplier(task.retry_exponential_backoff) > 1, (
            f"{task.task_id} has no exponential backoff"
        )
        assert task.max_retry_delay is not None
        assert task.on_failure_callback, f"{task.task_id} would fail silently"


def test_check_stalled_tries_and_back_off_end_before_the_run_times_out(dag):
    """Built from the DAG as loaded: changing the timeout, the retries or the delays alone fails here."""
    task = dag.get_task("check_stalled")
    budget = RetryBudget(
        try_timeout=task.execution_timeout,
        retries=task.retries,
        retry_delay=task.retry_delay,
        backoff=backoff_multiplier(task.retry_exponential_backoff),
        max_retry_delay=task.max_retry_delay,
    )
    assert budget.worst_case() <= dag.dagrun_timeout * (1 - MARGIN_FRACTION), (
        f"check_stalled may take {budget.worst_case()} of the run's {dag.dagrun_timeout}"
    )


def test_each_task_pushes_one_xcom(each_dag):
    """A dict return annotation would make TaskFlow push every key again, doubling check_stalled's XCom."""
    assert [task.task_id for task in each_dag.tasks if getattr(task, "multiple_outputs", False)] == []


def test_a_run_that_fails_as_a_whole_tells_slack(each_dag):
    assert each_dag.on_failure_callback, (
        "a timed-out run skips its tasks and their callbacks: the DAG must post"
    )
    assert each_dag.dagrun_timeout, "a hung run must end, and say so"


def test_a_hung_run_is_a_deadline_alert_from_3_2_and_the_run_timeout_on_3_1(dag):
    from batch_cleanup.compat import airflow_minor
    from batch_cleanup.config import DEADLINE_MINUTES, RUN_TIMEOUT

    deadline = dag.deadline[0] if isinstance(dag.deadline, list) else dag.deadline
    if airflow_minor() < (3, 2):
        assert deadline is None
    else:
        assert deadline.interval == timedelta(minutes=DEADLINE_MINUTES)
        assert type(deadline.reference).__name__ == "DagRunQueuedAtDeadline"
    # Either way a hung run ends, and its end is posted (test_a_run_that_fails_as_a_whole_tells_slack).
    assert dag.dagrun_timeout == RUN_TIMEOUT


def test_task_graph(dag):
    """Each task's downstream tasks; the keys are also every task id, each one of the shared names."""
    from batch_cleanup import names

    alerts = {"send_alert", "send_resolved"}
    assert {up: {down.task_id for down in dag.get_task(up).downstream_list} for up in dag.task_ids} == {
        "check_stalled": {"record_event", "evaluate", *alerts, "record_state", "report_metrics"},
        "record_event": {"evaluate"},
        "evaluate": {"choose_alert", *alerts, "no_alert", "record_state", "report_metrics"},
        "choose_alert": {*alerts, "no_alert"},
        "send_alert": {"record_state", "report_metrics"},
        "send_resolved": {"record_state", "report_metrics"},
        "no_alert": {"record_state"},
        "record_state": {"report_metrics", "read_labels"},
        "report_metrics": set(),
        "read_labels": set(),
    }
    assert {task_id: getattr(names, task_id.upper()) for task_id in dag.task_ids} == {
        task_id: task_id for task_id in dag.task_ids
    }


def test_the_metrics_task_runs_however_the_run_went_and_never_decides_its_state(dag):
    task = dag.get_task("report_metrics")
    assert task.is_teardown and not task.on_failure_fail_dagrun
    inputs = {"check_stalled", "evaluate", "send_alert", "send_resolved"}  # arguments, not pulled by name
    assert task.upstream_task_ids == {*inputs, "record_state"}


def test_the_labels_task_runs_however_the_run_went_and_never_pages(dag):
    task = dag.get_task("read_labels")
    assert task.is_teardown and not task.on_failure_fail_dagrun
    assert task.upstream_task_ids == {"record_state"}, "after the state names the incident's thread"
    assert task.retries == 0 and not task.on_failure_callback


def test_params_defaults(dag):
    assert dag.params.validate() == {
        "stall_threshold_minutes": 10,
        "min_completion_pct": 90,
        "warning_threshold": 3,
        "critical_threshold": 4,
        "window_minutes": 60,
        "cooldown_minutes": 60,
        "alert_rule": "count",
        "rate_objective_pct": 1.0,
        "notify": True,
        "force_alert": False,
    }


INVALID_PARAMS = {
    "stall_threshold_minutes": (0, 1441, 2.5, "10"),
    "min_completion_pct": (-1, 100.5, "ninety"),
    "warning_threshold": (0,),
    "critical_threshold": (-5,),
    "window_minutes": (0, 1441),
    "cooldown_minutes": (0,),
    "alert_rule": ("burnrate", "BURN_RATE", None),
    "rate_objective_pct": (0, -1, 100.5, "1"),
    "notify": ("yes",),
    "force_alert": (1,),
}


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, values in INVALID_PARAMS.items() for v in values])
def test_invalid_params_are_refused(dag, name, value):
    params = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError, match=name):
        params[name] = value
        params.validate()


@pytest.mark.parametrize(
    ("name", "value"),
    [("stall_threshold_minutes", 1440), ("min_completion_pct", 0), ("rate_objective_pct", 100)],
)
def test_params_edges_are_accepted(dag, name, value):
    params = copy.deepcopy(dag.params)
    params[name] = value
    assert params.validate()[name] == value


HEAVY_CLIENTS = ("google", "grpc", "slack_sdk", "requests", "aiohttp")


def probe(code: str) -> list[str]:
    """What `code`, run in a fresh interpreter, prints last as JSON."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_parsing_loads_no_heavy_client_library(dag_id):
    """Parsing may load what `import airflow.sdk` loads, and nothing of the Google, Slack or HTTP clients,
    nor the policy's modules: the tasks import them."""
    added = probe(f"""
import json, sys, runpy
import airflow.sdk
before = set(sys.modules)
runpy.run_path({str(REPO / "dags" / f"{dag_id}.py")!r})
print(json.dumps(sorted(set(sys.modules) - before)))
""")
    heavy = [m for m in added if m.split(".")[0] in HEAVY_CLIENTS]
    assert heavy == [], f"parsing the DAG imported {heavy[:10]}"
    # Building their dataclasses took 4 ms of a 35 ms parse: the params read `rule_defaults` instead.
    decisions = [m for m in added if m in ("batch_cleanup.policy", "batch_cleanup.rules")]
    assert decisions == [], f"parsing the DAG imported {decisions}"
    assert any(m.startswith("batch_cleanup") for m in added), "the probe did not load the DAG's package"


def test_plugin_scan_skips_the_package():
    """Airflow imports every .py under plugins/ as a top-level module; plugins/.airflowignore keeps
    the package (and the Google client it would load) out of every Airflow process's start-up."""
    loaded = probe("""
import json, sys
from airflow import plugins_manager
# 3.2 and later; 3.1 loads them with ensure_plugins_loaded()
(getattr(plugins_manager, "_get_plugins", None) or plugins_manager.ensure_plugins_loaded)()
print(json.dumps([m for m in sys.modules if m in ("policy", "cleanup", "firestore", "slack", "history")]
         + [m for m in sys.modules if m.startswith("google.cloud.firestore")]))
""")
    assert loaded == []


@pytest.mark.parametrize(
    ("day", "local_hours"),
    [("2026-03-08", 23), ("2026-11-01", 25), ("2026-06-15", 24)],
    ids=["spring-forward", "fall-back", "ordinary-day"],
)
def test_schedule_fires_every_15_minutes_across_dst_days(dag, day, local_hours):
    import pendulum
    from airflow.timetables.base import DataInterval, TimeRestriction

    try:  # 3.2 and later: the SDK's timetable, made the scheduler's
        from airflow.serialization.encoders import coerce_to_core_timetable
    except ImportError:  # 3.1: the DAG holds the scheduler's timetable itself
        timetable = dag.timetable
    else:
        timetable = coerce_to_core_timetable(dag.timetable)
    start = pendulum.parse(day, tz="America/New_York")
    end = start.add(days=1)
    restriction = TimeRestriction(earliest=start, latest=end - timedelta(microseconds=1), catchup=True)
    runs, last = [], None
    while (
        info := timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
    ) is not None:
        runs.append(info.run_after)
        last = DataInterval(info.run_after, info.run_after)
    gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(runs)}
    assert gaps == {15 * 60}, f"gaps between runs in seconds: {sorted(gaps)}"
    assert len(runs) == local_hours * 4
    assert runs[0] == start
