"""Cleanup events in Firestore, with credentials and project from a Google Cloud connection."""

from __future__ import annotations

import os
from datetime import datetime
from functools import cached_property
from typing import Any

from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
from google.api_core.exceptions import AlreadyExists
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from batch_cleanup.events import COLLECTION

EMULATOR_PROJECT = "demo-batch-cleanup"


class FirestoreHook(GoogleBaseHook):
    """Writes and counts `batch_cleanup_events`; uses the emulator when `FIRESTORE_EMULATOR_HOST` is set."""

    def __init__(
        self,
        *,
        gcp_conn_id: str = "google_cloud_default",
        database: str = "(default)",
        collection: str = COLLECTION,
    ) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id)
        self.database = database
        self.collection = collection

    @cached_property
    def client(self) -> firestore.Client:
        if os.environ.get("FIRESTORE_EMULATOR_HOST"):
            # Google's client needs no credentials for the emulator; GoogleBaseHook would look for some.
            project = self._get_field("project") or os.environ.get("GOOGLE_CLOUD_PROJECT") or EMULATOR_PROJECT
            return firestore.Client(
                project=project, credentials=AnonymousCredentials(), database=self.database
            )
        credentials, project = self.get_credentials_and_project_id()
        return firestore.Client(project=project, credentials=credentials, database=self.database)

    def get_conn(self) -> firestore.Client:
        return self.client

    @property
    def events(self) -> firestore.CollectionReference:
        return self.client.collection(self.collection)

    def create_event(self, document_id: str, document: dict[str, Any]) -> bool:
        """Create the event unless it exists; False means an earlier try already wrote it (kept as is)."""
        try:
            self.events.document(document_id).create(document)
        except AlreadyExists:
            return False
        return True

    def count_since(self, start: datetime) -> int:
        """Events whose `timestamp` is at or after `start`: one aggregation, no documents read."""
        query = self.events.where(filter=FieldFilter("timestamp", ">=", start))
        [[result]] = query.count(alias="n").get()
        return int(result.value)

    def batch_ids_since(self, start: datetime, limit: int = 200) -> list[str]:
        """Stalled batch ids of the newest `limit` events since `start`, newest first."""
        query = (
            self.events.where(filter=FieldFilter("timestamp", ">=", start))
            .order_by("timestamp", direction=firestore.Query.DESCENDING)
            .select(["batch_ids"])
            .limit(limit)
        )
        return [batch_id for snapshot in query.stream() for batch_id in snapshot.get("batch_ids") or []]
