"""Small hooks for the coordinator, Firestore and Slack, and the DAG's way of building them.

The builders are named `*_hook` so that no submodule (`hooks.firestore`) shadows them.

They load client libraries: import them inside tasks, never at DAG parse time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from batch_cleanup.names import COORDINATOR_CONN_ID, GCP_CONN_ID, SLACK_CONN_ID

if TYPE_CHECKING:
    from batch_cleanup.hooks.coordinator import CoordinatorHook
    from batch_cleanup.hooks.firestore import FirestoreHook
    from batch_cleanup.hooks.monitoring import MonitoringHook


def coordinator_hook() -> CoordinatorHook:
    from batch_cleanup.config import CHECK_TRY_SECONDS, COORDINATOR_TIMEOUT_SECONDS
    from batch_cleanup.hooks.coordinator import CoordinatorHook

    return CoordinatorHook(
        http_conn_id=COORDINATOR_CONN_ID, timeout=COORDINATOR_TIMEOUT_SECONDS, try_seconds=CHECK_TRY_SECONDS
    )


def firestore_hook() -> FirestoreHook:
    from batch_cleanup.config import FIRESTORE_RETRY_SECONDS, RECORD_POST_SECONDS
    from batch_cleanup.hooks.firestore import FirestoreHook

    return FirestoreHook(
        gcp_conn_id=GCP_CONN_ID, retry_seconds=FIRESTORE_RETRY_SECONDS, record_seconds=RECORD_POST_SECONDS
    )


def monitoring_hook() -> MonitoringHook:
    from batch_cleanup.config import MONITORING_API_ENDPOINT
    from batch_cleanup.hooks.monitoring import MonitoringHook

    return MonitoringHook(gcp_conn_id=GCP_CONN_ID, api_endpoint=MONITORING_API_ENDPOINT)


def posting_args(dag_run: Any) -> dict[str, Any]:
    """What posting to Slack at most once needs, from the run and its connections: `retry` says an
    earlier try of the task ran (it may have posted); `posts` is Airflow's record of a post."""
    from airflow.sdk import get_current_context

    from batch_cleanup.config import api_base_url
    from batch_cleanup.hooks.posted import AirflowPostRecord
    from batch_cleanup.hooks.slack import OnCallChannel

    return {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "run_after": dag_run.run_after,
        "base_url": api_base_url(),
        "slack": OnCallChannel(SLACK_CONN_ID),
        "retry": get_current_context()["ti"].try_number > 1,
        "posts": AirflowPostRecord(),
    }


def delivery_args(dag_run: Any) -> dict[str, Any]:
    """`steps.send`'s arguments: `posting_args`, with `now`, the incident card's "updated", and the
    coordinator, for the alert's diagnosis."""
    return {**posting_args(dag_run), "now": datetime.now(UTC), "coordinator": coordinator_hook()}
