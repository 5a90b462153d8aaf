"""The weekly digest's DAG as the scheduler sees it: Mondays 09:00 in New York, created paused,
two tasks that fit its run, its params (the conventions every DAG keeps are checked in
test_stalled_batch_cleanup_dag.py)."""

from __future__ import annotations

import copy
from datetime import timedelta

import pendulum
import pytest

try:  # Airflow 3.2 and later
    from airflow.sdk.exceptions import ParamValidationError
except ImportError:  # 3.1
    from airflow.exceptions import ParamValidationError

from batch_cleanup.budget import MARGIN_FRACTION, RetryBudget, backoff_multiplier
from tests.dags.test_stalled_batch_cleanup_dag import dagbag  # noqa: F401  (the parsed DAG folder)

DIGEST_ID = "batch_cleanup_weekly_digest"


@pytest.fixture(scope="module")
def dag(dagbag):  # noqa: F811
    return dagbag.dags[DIGEST_ID]


def test_its_ids_are_the_shared_names(dag):
    from batch_cleanup import names

    assert (names.DIGEST_DAG_ID, dag.task_ids) == (DIGEST_ID, [names.SUMMARIZE_WEEK, names.POST_DIGEST])
    assert dag.get_task("summarize_week").downstream_task_ids == {"post_digest"}


def test_it_runs_mondays_at_nine_in_new_york_and_is_created_paused(dag):
    from airflow.timetables.base import DataInterval, TimeRestriction

    try:  # 3.2 and later: the SDK's timetable, made the scheduler's
        from airflow.serialization.encoders import coerce_to_core_timetable
    except ImportError:  # 3.1
        timetable = dag.timetable
    else:
        timetable = coerce_to_core_timetable(dag.timetable)
    assert (dag.timezone.name, dag.catchup, dag.max_active_runs) == ("America/New_York", False, 1)
    assert dag.is_paused_upon_creation is True, "unpaused, it would post last Monday's digest at once"
    # Across both of 2026's DST changes: always Monday 09:00 on New York's clock.
    start = pendulum.datetime(2026, 3, 1, tz="America/New_York")
    restriction = TimeRestriction(earliest=start, latest=start.add(weeks=40), catchup=True)
    runs, last = [], None
    while (
        info := timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
    ) is not None:
        runs.append(info.run_after.in_timezone("America/New_York"))
        last = DataInterval(info.run_after, info.run_after)
    assert len(runs) == 40
    assert {(run.day_of_week, run.hour, run.minute) for run in runs} == {(pendulum.MONDAY, 9, 0)}


def test_both_tasks_tries_and_back_off_end_before_the_run_times_out(dag):
    """Built from the DAG as loaded: the two tasks run one after the other."""
    worst = timedelta()
    for task in dag.tasks:
        worst += RetryBudget(
            try_timeout=task.execution_timeout,
            retries=task.retries,
            retry_delay=task.retry_delay,
            backoff=backoff_multiplier(task.retry_exponential_backoff),
            max_retry_delay=task.max_retry_delay,
        ).worst_case()
    assert worst <= dag.dagrun_timeout * (1 - MARGIN_FRACTION), f"{worst} of the run's {dag.dagrun_timeout}"


def test_params_defaults_and_refusals(dag):
    assert dag.params.validate() == {"notify": True, "test_digest": False}
    for name in ("notify", "test_digest"):
        params = copy.deepcopy(dag.params)
        with pytest.raises(ParamValidationError, match=name):
            params[name] = "yes"
            params.validate()


def test_the_runbook_names_its_test_param_and_that_it_starts_paused(dag):
    assert "`test_digest`" in dag.doc_md and "created **paused**" in dag.doc_md
