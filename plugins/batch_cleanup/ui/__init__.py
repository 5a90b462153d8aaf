"""The cleanup-history page in Airflow's UI: a FastAPI app that `plugins/batch_cleanup_ui.py` registers.

Light on purpose: Airflow imports the plugin file in every process, and the plugin file imports
this. FastAPI, the Firestore client and Airflow's API security are imported by `app` only,
which the api-server builds when it mounts the plugin.
"""

from __future__ import annotations

from batch_cleanup.names import DAG_ID

__all__ = ["DAG_ID", "URL_PREFIX"]

URL_PREFIX = "/batch-cleanup"
