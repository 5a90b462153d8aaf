"""The prediction coordinator's `/check-stalled` endpoint, through the HTTP provider."""

from __future__ import annotations

from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from batch_cleanup.cleanup import CoordinatorResponseError, parse_response

ENDPOINT = "/check-stalled"
TIMEOUT_SECONDS = 300


class CoordinatorUnavailable(AirflowException):
    """A failure that a later try may not meet (refused connection, timeout, 5xx): the task retries."""


class CoordinatorHook(HttpHook):
    """Calls `/check-stalled`; the API key is the connection's password, sent as `X-API-Key`."""

    conn_name_attr = "http_conn_id"
    default_conn_name = "prediction_coordinator"
    hook_name = "Prediction coordinator"

    def __init__(self, *, http_conn_id: str = default_conn_name, timeout: int = TIMEOUT_SECONDS) -> None:
        super().__init__(method="POST", http_conn_id=http_conn_id)
        self.timeout = timeout

    def _api_key_header(self) -> dict[str, str]:
        connection = self.get_connection(self.http_conn_id)
        if connection.password:
            return {"X-API-Key": connection.password}
        if "X-API-Key" in connection.extra_dejson:
            return {}  # HttpHook sends connection extras as headers.
        raise AirflowFailException(
            f"Connection {self.http_conn_id!r} has no API key: set its password (sent as X-API-Key)."
        )

    def check_stalled(
        self, *, stall_threshold_minutes: float, min_completion_pct: float, idempotency_key: str
    ) -> dict[str, Any]:
        """POST the thresholds; return the validated response, or raise saying what went wrong."""
        headers = {"Content-Type": "application/json", "X-Idempotency-Key": idempotency_key}
        headers.update(self._api_key_header())
        body = {"stall_threshold_minutes": stall_threshold_minutes, "min_completion_pct": min_completion_pct}
        try:
            response = self.run(
                ENDPOINT,
                json=body,
                headers=headers,
                extra_options={"timeout": self.timeout, "check_response": False},
            )
        except requests.exceptions.Timeout:
            raise CoordinatorUnavailable(
                f"{ENDPOINT} on connection {self.http_conn_id!r} did not answer within {self.timeout} s"
            ) from None
        except requests.exceptions.ConnectionError as err:
            raise CoordinatorUnavailable(
                f"cannot reach {ENDPOINT} on connection {self.http_conn_id!r} ({self.base_url}): "
                f"{type(err).__name__}"
            ) from None
        return self._validated(response)

    def _validated(self, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        where = f"{ENDPOINT} on connection {self.http_conn_id!r}"
        if status in (401, 403):
            raise AirflowFailException(
                f"{where} rejected the API key (HTTP {status}); fix the password of connection "
                f"{self.http_conn_id!r}. Not retried."
            )
        if status >= 500:
            raise CoordinatorUnavailable(f"{where} answered HTTP {status}: {response.text[:300]!r}")
        if status >= 400 or status < 200 or status >= 300:
            raise AirflowFailException(
                f"{where} answered HTTP {status}: {response.text[:300]!r}. Not retried."
            )
        try:
            return parse_response(response.text)
        except CoordinatorResponseError as err:
            raise AirflowFailException(
                f"{where} answered HTTP {status} outside the contract: {err}"
            ) from None
