"""The prediction coordinator's `/check-stalled` and `/health/deep` endpoints, through the HTTP provider."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import requests
import urllib3
from airflow.providers.http.hooks.http import HttpHook

from batch_cleanup.budget import retry_after_seconds
from batch_cleanup.cleanup import CoordinatorResponseError, parse_response
from batch_cleanup.compat import AirflowException, AirflowFailException
from batch_cleanup.masking import mask_secret, redact

ENDPOINT = "/check-stalled"
HEALTH_ENDPOINT = "/health/deep"
API_KEY_HEADER = "X-API-Key"
# Asking to come back later: retried, after Retry-After when the try has time for it.
LATER = frozenset({408, 429})
# Redirects are never followed (`allow_redirects=False`): requests would resend the key to whatever
# host the Location names, and turn the POST into a GET on 301-303. A 3xx fails, naming the Location.
NO_REDIRECTS = {"allow_redirects": False}
# How much of an answer's body an error quotes, and how long a health check's error may be.
EXCERPT_CHARS = 300
MAX_HEALTH_ERROR_CHARS = 500
# A deep-health answer longer than this is not the small document of the contract; it is not kept.
MAX_HEALTH_ANSWER_CHARS = 100_000


class CoordinatorUnavailable(AirflowException):
    """What a later try may not meet (refused connection, timeout, 5xx, 408, 429): the task retries."""


def excerpt(text: str) -> str:
    """The start of a body, quoted, for an error message. Masked before it is cut: the body may echo
    the key, and half a key would slip past the masker."""
    return repr(redact(text)[:EXCERPT_CHARS])


def redirect_error(response: requests.Response, http_conn_id: str) -> str:
    """What a redirect says about the connection: where it pointed, and what to fix."""
    location = excerpt(response.headers.get("Location") or "(no Location header)")
    return (
        f"redirected (HTTP {response.status_code}) to {location}; not followed, so the API key stays "
        f"with the connection's host: set the host of connection {http_conn_id!r} to where the "
        "coordinator answers"
    )


class CoordinatorHook(HttpHook):
    """Calls `/check-stalled` and `/health/deep`; the API key is the connection's password, sent as
    `X-API-Key`.

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
                extra_options={"timeout": self.timeout, "check_response": False, **NO_REDIRECTS},
            )
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as err:
            if _timed_out(err):
                raise CoordinatorUnavailable(
                    f"{ENDPOINT} on connection {self.http_conn_id!r} did not answer within {self.timeout:g} s"
                ) from None
            raise CoordinatorUnavailable(
                f"cannot reach {ENDPOINT} on connection {self.http_conn_id!r} ({self.base_url}): "
                f"{type(err).__name__}"
            ) from None

    def _validated(self, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        where = f"{ENDPOINT} on connection {self.http_conn_id!r}"
        quoted = excerpt(response.text)
        if status in (401, 403):
            raise AirflowFailException(
                f"{where} rejected the API key (HTTP {status}); fix the password of connection "
                f"{self.http_conn_id!r}. Not retried."
            )
        if 300 <= status < 400:
            raise AirflowFailException(f"{where} {redirect_error(response, self.http_conn_id)}. Not retried.")
        if status >= 500 or status in LATER:
            after = response.headers.get("Retry-After")
            hint = f" (Retry-After: {after!r}, more than this try can wait)" if after else ""
            raise CoordinatorUnavailable(f"{where} answered HTTP {status}{hint}: {quoted}")
        if not 200 <= status < 300:
            raise AirflowFailException(f"{where} answered HTTP {status}: {quoted}. Not retried.")
        try:
            return parse_response(response.text)
        except CoordinatorResponseError as err:
            raise AirflowFailException(
                f"{where} answered HTTP {status} outside the contract: {err}"
            ) from None

    def deep_health(self, timeout_seconds: float) -> dict[str, Any]:
        """One `GET /health/deep` with the API key: a single try, no retries, and it never raises.

        Returns a small JSON-able result (docs/coordinator-api.md):
        `{"ok": True, "http_status": 200, "answer": <the parsed JSON, masked>}`, also for a 503 whose
        body is a health document (deep health checks say "unhealthy" that way), or
        `{"ok": False, "error": "<why, one masked line>"}`, with `http_status` when it answered.
        `timeout_seconds` bounds the connect and each read (requests' timeout), not the whole body.
        """
        where = f"{HEALTH_ENDPOINT} on connection {self.http_conn_id!r}"
        # HttpHook's method is fixed per instance (`run` sends `self.method`): a GET hook on the same
        # connection, so its host, extras, proxies and TLS settings apply as they do to /check-stalled.
        getter = HttpHook(method="GET", http_conn_id=self.http_conn_id)
        try:
            response = getter.run(
                HEALTH_ENDPOINT,
                headers=self._api_key_header(),
                extra_options={"timeout": timeout_seconds, "check_response": False, **NO_REDIRECTS},
            )
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as err:
            if _timed_out(err):
                result: dict[str, Any] = {"ok": False, "error": f"timed out after {timeout_seconds:g} s"}
            else:
                result = {"ok": False, "error": f"cannot connect to {getter.base_url}: {_root_cause(err)}"}
        except Exception as err:  # the diagnosis of an alert must never hold the alert up
            result = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        else:
            result = _health_result(response, self.http_conn_id)
        if result["ok"]:
            self.log.info("%s answered HTTP %d.", where, result["http_status"])
        else:
            result["error"] = " ".join(redact(result["error"]).split())[:MAX_HEALTH_ERROR_CHARS]
            self.log.warning("%s failed: %s", where, result["error"])
        return result


def _health_result(response: requests.Response, http_conn_id: str) -> dict[str, Any]:
    status, text = response.status_code, response.text
    if 300 <= status < 400:
        return {"ok": False, "http_status": status, "error": redirect_error(response, http_conn_id)}
    if len(text) > MAX_HEALTH_ANSWER_CHARS:
        error = f"HTTP {status}: an answer of {len(text)} characters, more than {MAX_HEALTH_ANSWER_CHARS}"
        return {"ok": False, "http_status": status, "error": error}
    try:
        answer = json.loads(text)
    except ValueError:
        if 200 <= status < 300:
            return {"ok": False, "http_status": status, "error": f"not JSON: {excerpt(text)}"}
        answer = None
    health_document = isinstance(answer, dict) and ("status" in answer or "components" in answer)
    if 200 <= status < 300 or (status == 503 and health_document):
        return {"ok": True, "http_status": status, "answer": redact(answer)}
    hint = " (the API key was rejected)" if status in (401, 403) else ""
    return {"ok": False, "http_status": status, "error": f"HTTP {status} {excerpt(text)}{hint}"}


def _timed_out(err: requests.exceptions.RequestException) -> bool:
    """A timeout, also one while reading the body: requests raises that one as a ConnectionError
    around urllib3's ReadTimeoutError, which would otherwise read as "cannot connect"."""
    return isinstance(err, requests.exceptions.Timeout) or any(
        isinstance(arg, urllib3.exceptions.TimeoutError) for arg in err.args
    )


def _root_cause(err: BaseException) -> str:
    """The innermost cause of a connection error (`[Errno 111] Connection refused`), without the
    layers requests and urllib3 wrap around it."""
    for _ in range(10):
        inner = getattr(err, "reason", None) or err.__cause__
        if inner is None and err.args and isinstance(err.args[0], BaseException):
            inner = err.args[0]
        if not isinstance(inner, BaseException):
            break
        err = inner
    return str(err) or type(err).__name__
