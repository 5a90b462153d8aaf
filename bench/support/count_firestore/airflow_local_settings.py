"""Benchmark-only: count Firestore RPCs at the client, in every Airflow process of a run.

Airflow imports `airflow_local_settings` at start-up, so putting this folder on PYTHONPATH (as
tests/support/fail_once does) instruments `airflow dags test` without touching the DAG. Each RPC of
Google's generated Firestore client is appended as one JSON line to `$BENCH_FIRESTORE_LOG`: the
task that made it, documents written, documents returned, lookups that found nothing, and the
value of each count aggregation (Firestore bills one read per 1,000 index entries it counts).
"""

from __future__ import annotations

import functools
import json
import os

from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

RPCS = (
    "get_document",
    "list_documents",
    "create_document",
    "update_document",
    "delete_document",
    "batch_get_documents",
    "begin_transaction",
    "commit",
    "rollback",
    "run_query",
    "run_aggregation_query",
    "partition_query",
    "list_collection_ids",
    "batch_write",
    "execute_pipeline",
)


def _task_id() -> str:
    try:
        from airflow.sdk import get_current_context

        return get_current_context()["ti"].task_id
    except Exception:  # outside a task (parsing, callbacks): attribute it to no task
        return "-"


def _field(request, name: str):
    return request.get(name) if isinstance(request, dict) else getattr(request, name, None)


class _Counted:
    """Passes a response stream through, tallying what it carries; the record is written at its end."""

    def __init__(self, stream, record: dict) -> None:
        self._stream = iter(stream)
        self._record = record
        self._done = False

    def __iter__(self):
        return self

    def __next__(self):
        try:
            response = next(self._stream)
        except StopIteration:
            self._finish()
            raise
        pb = response._pb
        kind = pb.DESCRIPTOR.name
        if kind == "RunQueryResponse" and pb.HasField("document"):
            self._record["documents"] += 1
        elif kind == "BatchGetDocumentsResponse":
            result = pb.WhichOneof("result")
            if result == "found":
                self._record["documents"] += 1
            elif result == "missing":
                self._record["missing"] += 1
        elif kind == "RunAggregationQueryResponse" and pb.HasField("result"):
            for value in pb.result.aggregate_fields.values():
                self._record["aggregate_counts"].append(value.integer_value)
        return response

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            _write(self._record)

    def __del__(self) -> None:  # a caller that stops early (a limit reached) still gets recorded
        self._finish()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _write(record: dict) -> None:
    with open(os.environ["BENCH_FIRESTORE_LOG"], "a") as log:
        log.write(json.dumps(record) + "\n")


def _counting(name: str, original):
    @functools.wraps(original)
    def counted(self, request=None, *args, **kwargs):
        writes = _field(request, "writes") if request is not None else None
        record = {
            "rpc": name,
            "task": _task_id(),
            "pid": os.getpid(),
            "writes": len(writes or ()),
            "documents": 0,
            "missing": 0,
            "aggregate_counts": [],
        }
        result = original(self, request, *args, **kwargs)
        if name in ("batch_get_documents", "run_query", "run_aggregation_query"):
            return _Counted(result, record)
        _write(record)
        return result

    return counted


if os.environ.get("BENCH_FIRESTORE_LOG"):
    for _name in RPCS:
        setattr(FirestoreClient, _name, _counting(_name, getattr(FirestoreClient, _name)))
