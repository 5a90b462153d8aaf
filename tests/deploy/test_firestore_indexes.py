"""deploy/firestore.indexes.json, checked against the queries the hook really sends: the emulator
serves any query without an index, production Firestore refuses one that has none. Each run-record
query that filters on `dag_id` gets exactly the composite index Firestore asks for: its equality
(and `in`) fields, then its order."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.types import StructuredQuery

from batch_cleanup.hooks.firestore import FirestoreHook
from batch_cleanup.names import DAG_ID, RUN_COLLECTION
from tests.conftest import REPO

INDEXES = json.loads((REPO / "deploy" / "firestore.indexes.json").read_text())
AT = datetime(2026, 3, 1, tzinfo=UTC)
EQUALITY = {StructuredQuery.FieldFilter.Operator.EQUAL, StructuredQuery.FieldFilter.Operator.IN}


@pytest.fixture
def hook(monkeypatch) -> FirestoreHook:
    """The hook's queries, built on a client that never connects (no request is sent)."""
    connection = {"conn_type": "google_cloud_platform", "extra": {"project": "p", "is_anonymous": True}}
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(connection))
    hook = FirestoreHook()
    hook.client = firestore.Client(project="p", credentials=AnonymousCredentials())
    return hook


def needed_index(query: firestore.Query) -> list[dict[str, str]]:
    """The composite index Firestore asks for: equality fields (ascending), then the order."""
    structured = query._to_protobuf()
    filters = [f.field_filter for f in structured.where.composite_filter.filters] or [
        structured.where.field_filter
    ]
    equal = sorted(f.field.field_path for f in filters if f.op in EQUALITY)
    order = [
        (
            o.field.field_path,
            "ASCENDING" if o.direction == StructuredQuery.Direction.ASCENDING else "DESCENDING",
        )
        for o in structured.order_by
    ]
    fields = [(name, "ASCENDING") for name in equal] + order
    return [{"fieldPath": name, "order": direction} for name, direction in fields]


def declared() -> list[list[dict[str, str]]]:
    assert {index["collectionGroup"] for index in INDEXES["indexes"]} == {RUN_COLLECTION}
    assert {index["queryScope"] for index in INDEXES["indexes"]} == {"COLLECTION"}
    return [index["fields"] for index in INDEXES["indexes"]]


def test_each_run_record_query_of_one_dag_has_its_index_and_the_file_no_other(hook):
    queries = [hook.runs_query(AT, AT, DAG_ID, 10), hook.last_evaluation_query(DAG_ID)]
    needed = [needed_index(query) for query in queries]
    assert needed[1][:2] == [
        {"fieldPath": "dag_id", "order": "ASCENDING"},
        {"fieldPath": "kind", "order": "ASCENDING"},
    ], "the check sees the `in` filter"
    assert sorted(map(json.dumps, needed)) == sorted(map(json.dumps, declared()))


def test_the_query_over_every_dag_needs_no_composite_index(hook):
    assert needed_index(hook.runs_query(AT, AT, None, 10)) == [
        {"fieldPath": "run_after", "order": "ASCENDING"}
    ], "one field: Firestore's automatic single-field index serves it"
