"""On a real scheduler: a run that times out as a whole (its tasks never got a worker slot, so no
task callback runs) still tells Slack why, once, through the DAG-level failure callback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.scenario import reset
from tests.system.deployment import Deployment, new_deployment, running
from tests.system.test_scheduler import FORM_PARAMS

pytestmark = pytest.mark.system

CALLBACK_WAIT = 90.0


@pytest.fixture(scope="module")
def deployment(coordinator, slack_sink, firestore_emulator) -> Iterator[Deployment]:
    # A one-minute run: check_stalled's tries (2 s requests, 1 s back-off) still fit in it.
    one_minute = {"RUN_TIMEOUT_MINUTES": "1", "COORDINATOR_TIMEOUT_SECONDS": "2", "DEADLINE_MINUTES": "30"}
    with running(
        new_deployment("run-timeout", coordinator, slack_sink, firestore_emulator, **one_minute)
    ) as airflow:
        yield airflow


def test_a_timed_out_run_posts_its_cause_once(
    deployment: Deployment, coordinator, slack_sink, firestore_emulator
):
    _, sink = reset(coordinator, slack_sink, firestore_emulator)
    # No slot for any task: the run can only time out, and no task callback can speak for it.
    closed = deployment.client.patch(
        "/api/v2/pools/default_pool", params={"update_mask": "slots"}, json={"slots": 0}
    )
    assert closed.status_code == 200, closed.text
    try:
        assert deployment.trigger(FORM_PARAMS, run_id="timed-out-run").status_code == 200
        run = deployment.wait_for_run("timed-out-run")
        waited = time.monotonic() + CALLBACK_WAIT
        while not about(sink, "timed-out-run") and time.monotonic() < waited:
            time.sleep(1)
        time.sleep(3)  # a second message would come right after the first
    finally:
        deployment.client.patch(
            "/api/v2/pools/default_pool", params={"update_mask": "slots"}, json={"slots": 128}
        )

    assert run["state"] == "failed", deployment.explain_run("timed-out-run")
    texts = about(sink, "timed-out-run")
    assert len(texts) == 1, f"expected one message, got {texts}\n{deployment.explain()}"
    assert "run timed-out-run of DAG stalled_batch_cleanup" in texts[0]
    assert "dagrun_timeout" in texts[0] and "unfinished: task check_stalled" in texts[0]


def about(sink, run_id: str) -> list[str]:
    """Texts naming `run_id`: the DAG is unpaused at creation, so a scheduled run may time out too."""
    return [text for m in sink.messages() if f"run {run_id} " in (text := m["payload"]["text"])]
