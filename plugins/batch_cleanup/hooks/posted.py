"""The last message Slack accepted for a DAG, kept in Airflow's metadata (a Variable per DAG).

The second record of an accepted post, beside the Firestore state's `posted` marker: a retried
task finds it while Firestore is down, so a message Slack accepted is not posted again. It holds
the run id, the kind of message and where it went (channel, ts), never a secret.
"""

from __future__ import annotations

import json
import logging

log = logging.getLogger(__name__)

VARIABLE_PREFIX = "batch_cleanup_posted__"
FIELDS = ("run_id", "kind", "channel", "ts")


class AirflowPostRecord:
    """One Variable per DAG, `batch_cleanup_posted__<dag_id>`, overwritten by each post."""

    @staticmethod
    def key(dag_id: str) -> str:
        return VARIABLE_PREFIX + dag_id

    def get(self, dag_id: str) -> dict[str, str] | None:
        """The last accepted post; None when there is none or it is not the record this writes."""
        from airflow.sdk import Variable

        raw = Variable.get(self.key(dag_id), default=None)
        if raw is None:
            return None
        try:
            posted = json.loads(raw)
        except ValueError:
            posted = None
        if not isinstance(posted, dict):
            log.error("Variable %s is not a record of a post: ignored.", self.key(dag_id))
            return None
        return {key: str(posted[key]) for key in FIELDS if key in posted}

    def put(self, dag_id: str, posted: dict[str, str]) -> None:
        """Overwrite the record with `posted` (only its run id, kind, channel and ts)."""
        from airflow.sdk import Variable

        record = {key: str(posted[key]) for key in FIELDS if key in posted}
        Variable.set(
            self.key(dag_id),
            json.dumps(record),
            description="The last Slack message this DAG posted: a retried task does not post it again.",
        )
