"""Firestore down when a run comes to record its cleanup or to evaluate, then back: the Firestore
client's retries (and Airflow's, past them) carry the run through, and a cleanup is recorded once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore as gcf

from dev import services
from dev.airflow_env import LOCAL_PROJECT
from tests.conftest import SERVICE_LOGS
from tests.scenario import DAG_ID, healthy, stalled

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 18


@pytest.fixture
def own_emulator():
    """An emulator of this test's own, on a port it can come back to."""
    port = services.free_port()
    emulator = services.start_firestore_emulator(SERVICE_LOGS, port=port)
    yield port, emulator
    emulator.stop()


@pytest.mark.parametrize(
    ("batches", "first_task", "done_marker", "recorded"),
    [
        ([stalled("b-during-outage")], "record_event", "Recorded event", [["b-during-outage"]]),
        ([healthy("b-busy")], "evaluate", "cleanups in the last 60 minutes", []),
    ],
    ids=["outage-during-record_event", "outage-during-evaluate"],
)
def test_firestore_outage_then_back(
    airflow, fresh, own_emulator, monkeypatch, batches, first_task, done_marker, recorded
):
    """With a stalled batch `record_event` meets the outage first; without one (it is skipped)
    `evaluate` does."""
    coordinator, sink = fresh
    port, emulator = own_emulator
    coordinator.seed(batches)
    emulator.stop()  # down before the run reaches Firestore
    extra_env = {"FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{port}"}
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(airflow.dags_test, DAG_ID, name="firestore-outage", extra_env=extra_env)
        time.sleep(OUTAGE_SECONDS)
        back_at = datetime.now(UTC)
        back = services.start_firestore_emulator(SERVICE_LOGS, port=port)
    try:
        run = running.result(timeout=300)
        assert run.state == "success", run.explain()
        started = _logged_at(run.output, f"[DAG TEST] starting task_id={first_task}")
        done = _logged_at(run.output, done_marker)
        assert started < back_at < done, (
            f"{first_task} must start in the outage ({started}) and finish after it ({done}); "
            f"Firestore came back at {back_at}"
        )
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{port}")
        client = gcf.Client(project=LOCAL_PROJECT, credentials=AnonymousCredentials())
        documents = [doc.to_dict() for doc in client.collection("batch_cleanup_events").stream()]
        assert [doc["batch_ids"] for doc in documents] == recorded
        assert sink.messages() == []
    finally:
        back.stop()


def _logged_at(output: str, marker: str) -> datetime:
    [line] = [line for line in output.splitlines() if marker in line][:1]
    return datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))
