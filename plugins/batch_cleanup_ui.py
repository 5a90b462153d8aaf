"""Cleanup history in Airflow's UI: a page at `/batch-cleanup/`, linked from the Browse menu.

Airflow imports this file in every process that loads plugins (scheduler, DAG processor, task
runners, the api-server). Only the api-server needs the FastAPI app, so it is built the first
time `fastapi_apps` is read, which the api-server does when it mounts plugins; everywhere else
this file costs the import of `AirflowPlugin` and nothing more. See docs/ui.md.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from batch_cleanup.ui import URL_PREFIX

NAME = "Batch cleanup history"


class _BuiltWhenRead:
    """A class attribute whose value, `[{"app": <FastAPI app>, ...}]`, is made on first read, once."""

    def __init__(self) -> None:
        self._apps: list[dict[str, Any]] | None = None

    def __get__(self, instance: object, owner: type | None = None) -> list[dict[str, Any]]:
        if self._apps is None:
            from batch_cleanup.ui.app import create_app

            self._apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": NAME}]
        return self._apps


class BatchCleanupUIPlugin(AirflowPlugin):
    name = "batch_cleanup_ui"
    fastapi_apps = _BuiltWhenRead()
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Batch cleanup",
            # Relative, so that it follows Airflow's base URL; the UI shows it in a frame at
            # /plugin/batch-cleanup, and the page is also usable on its own at /batch-cleanup/.
            "href": URL_PREFIX.lstrip("/") + "/",
            "url_route": "batch-cleanup",
            "destination": "nav",
            "category": "browse",
        }
    ]
