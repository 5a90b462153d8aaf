"""The prediction coordinator's `/check-stalled` endpoint, through the HTTP provider."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpHook

from batch_cleanup.budget import retry_after_seconds
from batch_cleanup.cleanup import CoordinatorResponseError, parse_response
from batch_cleanup.compat import AirflowException, AirflowFailException
from batch_cleanup.masking import mask_secret, redact

ENDPOINT = "/check-stalled"
API_KEY_HEADER = "X-API-Key"
# Asking to come back later: retried, after Retry-After when the try has time for it.
LATER = frozenset({408, 429})


class CoordinatorUnavailable(AirflowException):
    """What a later try may not meet (refused connection, timeout, 5xx, 408, 429): the task retries."""


class CoordinatorHook(HttpHook):
    """Calls `/check-stalled`; the API key is the connection's password, sent as `X-API-Key`.

    `timeout` bounds one request; `try_seconds` bounds the whole call, a Retry-After wait included.
    """

    def __init__(self, *, http_conn_id: str, timeout: float, try_seconds: float | None = None) -> None:
        super().__init__(method="POST", http_conn_id=http_conn_id)
        self.timeout = timeout
        self.try_seconds = try_seconds if try_seconds is not None else timeout

    def _api_key_header(self) -> dict[str, str]:
        connection = self.get_connection(self.http_conn_id)
        if connection.password:
            return {API_KEY_HEADER: connection.password}
        if API_KEY_HEADER in connection.extra_dejson:
            # HttpHook sends extras as headers; Airflow masks the extra only as a whole JSON text.
            mask_secret(connection.extra_dejson[API_KEY_HEADER])
            return {}
        raise AirflowFailException(
            f"Connection {self.http_conn_id!r} has no API key: set its password (sent as {API_KEY_HEADER})."
        )

    def check_stalled(
        self, *, stall_threshold_minutes: float, min_completion_pct: float, idempotency_key: str
    ) -> dict[str, Any]:
        """POST the thresholds; return the validated response, or raise saying what went wrong.

        A 408 or 429 with a Retry-After that this try has time for is waited out and sent again
        (same idempotency key); otherwise it is left to Airflow's retries.
        """
        ends = time.monotonic() + self.try_seconds
        headers = {"Content-Type": "application/json", "X-Idempotency-Key": idempotency_key}
        headers.update(self._api_key_header())
        body = {"stall_threshold_minutes": stall_threshold_minutes, "min_completion_pct": min_completion_pct}
        response = self._post(body, headers)
        if response.status_code in LATER:
            wait = retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))
            if wait is not None and time.monotonic() + wait + self.timeout <= ends:
                self.log.info(
                    "%s answered HTTP %d; waiting %g s (Retry-After), then asking again.",
                    ENDPOINT,
                    response.status_code,
                    wait,
                )
                time.sleep(wait)
                response = self._post(body, headers)
        return self._validated(response)

    def _post(self, body: dict[str, Any], headers: dict[str, str]) -> requests.Response:
        try:
            return self.run(
                ENDPOINT,
                json=body,
                headers=headers,
                extra_options={"timeout": self.timeout, "check_response": False},
            )
        except requests.exceptions.Timeout:
            raise CoordinatorUnavailable(
                f"{ENDPOINT} on connection {self.http_conn_id!r} did not answer within {self.timeout:g} s"
            ) from None
        except requests.exceptions.ConnectionError as err:
            raise CoordinatorUnavailable(
                f"cannot reach {ENDPOINT} on connection {self.http_conn_id!r} ({self.base_url}): "
                f"{type(err).__name__}"
            ) from None

    def _validated(self, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        where = f"{ENDPOINT} on connection {self.http_conn_id!r}"
        # Masked before it is cut: the body may echo the key, and half a key would slip past the masker.
        excerpt = repr(redact(response.text)[:300])
        if status in (401, 403):
            raise AirflowFailException(
                f"{where} rejected the API key (HTTP {status}); fix the password of connection "
                f"{self.http_conn_id!r}. Not retried."
            )
        if status >= 500 or status in LATER:
            after = response.headers.get("Retry-After")
            hint = f" (Retry-After: {after!r}, more than this try can wait)" if after else ""
            raise CoordinatorUnavailable(f"{where} answered HTTP {status}{hint}: {excerpt}")
        if not 200 <= status < 300:
            raise AirflowFailException(f"{where} answered HTTP {status}: {excerpt}. Not retried.")
        try:
            return parse_response(response.text)
        except CoordinatorResponseError as err:
            raise AirflowFailException(
                f"{where} answered HTTP {status} outside the contract: {err}"
            ) from None
