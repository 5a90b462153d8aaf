"""Small builders shared by the end-to-end scenarios."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from dev import services
from dev.airflow_env import LOCAL_PROJECT
from dev.coordinator import CoordinatorAdmin
from dev.slack_sink import SlackSinkAdmin

DAG_ID = "stalled_batch_cleanup"


def reset(coordinator, slack_sink, firestore_emulator) -> tuple[CoordinatorAdmin, SlackSinkAdmin]:
    """Empty batches, faults, Slack messages and Firestore; the stand-ins' admin clients."""
    services.wipe_firestore(firestore_emulator.url, LOCAL_PROJECT)
    admins = CoordinatorAdmin(coordinator.url), SlackSinkAdmin(slack_sink.url)
    for admin in admins:
        admin.reset()
    return admins


def stalled(batch_id: str, minutes: float = 30, pct: float = 95.0) -> dict:
    """A batch the coordinator will auto-complete under the default thresholds."""
    return {"batch_id": batch_id, "completion_pct": pct, "stalled_minutes": minutes}


def healthy(batch_id: str) -> dict:
    return {"batch_id": batch_id, "completion_pct": 40.0, "stalled_minutes": 1}


def record_events(db, at: datetime, *batches: str | list[str]) -> None:
    """A cleanup event at `at` for each of `batches` (one batch id, or the ids one run completed),
    as `record_event` writes it."""
    for ids in batches:
        ids = [ids] if isinstance(ids, str) else ids
        event = {"timestamp": at, "batch_ids": ids, "stalled_count": len(ids)}
        db.collection("batch_cleanup_events").add(event)


def alert_state(db) -> dict:
    return db.collection("batch_cleanup_alert_state").document(DAG_ID).get().to_dict() or {}


def texts(sink: SlackSinkAdmin) -> list[str]:
    return [message["payload"].get("text", "") for message in sink.messages()]


def explains(failure: str, error: str) -> bool:
    """A task-failure message carries the task's `error`. On Airflow 3.1 and 3.2, `airflow dags test`
    hands the failure callback no exception (their in-process runner leaves `context["exception"]`
    unset; 3.3 sets it), so there the message points at the task log instead. Deployed, their task
    runner sets it."""
    from batch_cleanup.compat import airflow_minor

    if airflow_minor() < (3, 3):
        return "unknown error (see the task log)" in failure
    return error in failure


def run_with_outage(
    airflow, proxy, when: Callable[[], bool], outage_seconds: float, *, what: str, name: str, env=None
):
    """`airflow dags test` with Firestore behind `proxy`; once `when()` holds (`what` names it, for
    a run that never gets there), Firestore refuses connections for `outage_seconds`, then comes
    back with its data. The finished run."""
    extra_env = {"FIRESTORE_EMULATOR_HOST": proxy.address, **(env or {})}
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(airflow.dags_test, DAG_ID, name=name, extra_env=extra_env)
        deadline = time.monotonic() + 180
        while not when():
            assert run.running() and time.monotonic() < deadline, f"{what} never happened"
            time.sleep(0.05)
        proxy.refuse()
        time.sleep(outage_seconds)
        proxy.back()
        return run.result(timeout=300)
