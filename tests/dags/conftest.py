"""Fixtures of the end-to-end scenarios: fresh stand-ins and a Firestore client for assertions."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore as gcf

from dev.airflow_env import LOCAL_PROJECT
from tests.conftest import OUTPUT, migrated_airflow
from tests.scenario import reset


@pytest.fixture
def fresh(coordinator, slack_sink, firestore):
    """Empty batches, faults, Slack messages and Firestore before each scenario; this process
    pointed at the emulator."""
    return reset(coordinator, slack_sink, firestore)


@pytest.fixture
def db(firestore):
    """A Firestore client on the emulator, for seeding history and reading what runs wrote."""
    return gcf.Client(project=LOCAL_PROJECT, credentials=AnonymousCredentials())


@pytest.fixture
def events(db):
    return lambda: [doc.to_dict() for doc in db.collection("batch_cleanup_events").stream()]


@pytest.fixture
def second_deployment(coordinator, slack_sink, firestore_emulator):
    """Another Airflow (own metadata database, new each time) pointed at the same services."""
    work = Path(tempfile.mkdtemp(prefix="second-airflow-", dir=OUTPUT))
    return migrated_airflow(work / "home", work / "dag-runs", coordinator, slack_sink, firestore_emulator)
