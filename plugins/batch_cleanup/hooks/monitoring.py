"""A run's figures to Cloud Monitoring; credentials and project from a Google Cloud connection.

Over the API's REST surface (`POST /v3/projects/{project}/timeSeries`, the call behind
`MetricServiceClient.create_time_series`): google-cloud-monitoring 2.32.0, the version the
Google provider pins, ships gRPC transports only, and a REST call lets `api_endpoint` point at
the standard-library stand-in (`dev/monitoring_api.py`). The series are still Google's own
`monitoring_v3.TimeSeries`, serialized by protobuf's JSON mapping, as the REST API reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
from google.api_core import exceptions
from google.auth.transport.requests import AuthorizedSession
from google.cloud import monitoring_v3
from google.protobuf import json_format

DEFAULT_ENDPOINT = "https://monitoring.googleapis.com"
# A write that hangs must not hold up the run: it is given up after this long, and only logged.
TIMEOUT_SECONDS = 10.0


class MonitoringWriteError(RuntimeError):
    """A write to Cloud Monitoring failed; the message names the connection, the project and the cause."""


class MonitoringHook(GoogleBaseHook):
    """Writes one run's figures as custom metrics, in one `timeSeries.create` call.

    `api_endpoint` is the API's base URL: Google's by default, a local stand-in in tests and
    `make run`. Against a stand-in, the connection's `is_anonymous` extra sends no credentials.
    The connection's service account needs `roles/monitoring.metricWriter`.
    """

    def __init__(
        self,
        *,
        gcp_conn_id: str = "google_cloud_default",
        api_endpoint: str | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id)
        self.api_endpoint = (api_endpoint or DEFAULT_ENDPOINT).rstrip("/")
        self.timeout = timeout

    @cached_property
    def client(self) -> AuthorizedSession:
        credentials, _ = self.get_credentials_and_project_id()
        return AuthorizedSession(credentials)

    def get_conn(self) -> AuthorizedSession:
        return self.client

    def write_run(self, series_for: Callable[[str], list[dict[str, Any]]]) -> int:
        """Write the run's series, `series_for(project)` (`monitoring.run_series` of its figures), in
        one call and return how many; raises `MonitoringWriteError`."""
        project = None
        try:
            _, project = self.get_credentials_and_project_id()
            if not project:
                raise ValueError("no project: set `project` in the connection's extra")
            series = [monitoring_v3.TimeSeries(s) for s in series_for(project)]
            self.create_time_series(project, series)
        except Exception as err:
            cause = " ".join(f"{type(err).__name__}: {err}".split())  # one line, whatever the cause
            raise MonitoringWriteError(
                f"Writing run metrics to Cloud Monitoring failed (connection '{self.gcp_conn_id}', "
                f"project {project!r}, {self.api_endpoint}): {cause}"
            ) from err
        self.log.info("Wrote %d time series to Cloud Monitoring (project %s).", len(series), project)
        return len(series)

    def create_time_series(self, project: str, series: list[monitoring_v3.TimeSeries]) -> None:
        """`projects.timeSeries.create`; a Google error answer raises `google.api_core` exceptions."""
        body: dict[str, Any] = {
            "timeSeries": [json_format.MessageToDict(monitoring_v3.TimeSeries.pb(s)) for s in series]
        }
        response = self.client.post(
            f"{self.api_endpoint}/v3/projects/{project}/timeSeries", json=body, timeout=self.timeout
        )
        if not response.ok:
            raise exceptions.from_http_response(response)
