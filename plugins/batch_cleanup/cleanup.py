"""The coordinator's `/check-stalled` answer: validate it, and summarize it for XCom.

The response contract is written down in docs/coordinator-api.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

# The summary travels through XCom; stalled entries are capped so that a 10,000-batch
# answer still yields a small value (ids first, since the alert lists them).
XCOM_IDS_BUDGET_BYTES = 32_000
XCOM_RESULTS_BUDGET_BYTES = 48_000


class CoordinatorResponseError(ValueError):
    """The coordinator answered 2xx, but not with the documented contract."""


def parse_response(body: str) -> dict[str, Any]:
    """Parse and validate a `/check-stalled` body; return the object with its defaults filled in."""
    try:
        data = json.loads(body)
    except ValueError as err:
        raise CoordinatorResponseError(
            f"response body is not JSON ({err}); it starts with {body[:120]!r}"
        ) from None
    if not isinstance(data, dict):
        raise CoordinatorResponseError(f"response body must be a JSON object, got {type(data).__name__}")
    if "results" not in data:
        raise CoordinatorResponseError(
            f"response lacks the field 'results' (fields present: {sorted(data)[:20]})"
        )
    results = data["results"]
    if not isinstance(results, list):
        raise CoordinatorResponseError(f"field 'results' must be a list, got {type(results).__name__}")
    for index, result in enumerate(results):
        _check_result(index, result)
    stalled = sum(1 for result in results if result["was_stalled"])
    data["batches_checked"] = _optional_count(data, "batches_checked", len(results))
    data["batches_completed"] = _optional_count(data, "batches_completed", stalled)
    return data


def _check_result(index: int, result: Any) -> None:
    where = f"results[{index}]"
    if not isinstance(result, dict):
        raise CoordinatorResponseError(f"{where} must be an object, got {type(result).__name__}")
    batch_id = result.get("batch_id")
    if not isinstance(batch_id, str) or not batch_id or not _is_unicode(batch_id):
        raise CoordinatorResponseError(
            f"{where}.batch_id must be a non-empty string of valid Unicode, got {batch_id!r}"
        )
    if not isinstance(result.get("was_stalled"), bool):
        raise CoordinatorResponseError(
            f"{where}.was_stalled must be true or false, got {result.get('was_stalled')!r}"
        )
    # JSON lets "\ud800" through as a lone surrogate; Firestore cannot store it, and retrying won't help.
    if not _is_unicode(json.dumps(result, ensure_ascii=False)):
        raise CoordinatorResponseError(f"{where} contains a lone surrogate escape: not valid Unicode")


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _optional_count(data: dict[str, Any], field: str, default: int) -> int:
    value = data.get(field)
    if value is None:
        return default
    # bool is an int in Python; a count of `true` is still a broken contract.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CoordinatorResponseError(f"field {field!r} must be a non-negative integer, got {value!r}")
    return value


def in_json_list(item: Any) -> int:
    """Bytes `item` adds to a JSON list as XCom stores it (`json.dumps`'s default form, whose `\\uXXXX`
    escapes make it at least as large as compact UTF-8, up to 3x for emoji), with the ", " separator."""
    return len(json.dumps(item)) + 2


def take_within(
    items: list[Any], budget_bytes: int, size: Callable[[Any], int] = in_json_list
) -> tuple[list[Any], int]:
    """The longest prefix of `items` whose sizes add up to at most `budget_bytes`, and that sum."""
    kept: list[Any] = []
    used = 0
    for item in items:
        if used + size(item) > budget_bytes:
            break
        kept.append(item)
        used += size(item)
    return kept, used


def stalled_fingerprint(batch_ids: list[str]) -> str:
    """A stable digest of the whole set of stalled batch ids, whatever the order."""
    # JSON rather than a joined string: ids may contain any separator ("a\nb" vs "a", "b").
    return hashlib.sha256(json.dumps(sorted(batch_ids)).encode()).hexdigest()[:24]


def summarize(response: dict[str, Any]) -> dict[str, Any]:
    """A compact, JSON-able summary of a validated response, for XCom and the event document."""
    stalled = [result for result in response["results"] if result["was_stalled"]]
    stalled_ids = [result["batch_id"] for result in stalled]
    kept_ids, _ = take_within(stalled_ids, XCOM_IDS_BUDGET_BYTES)
    kept_results, _ = take_within(stalled, XCOM_RESULTS_BUDGET_BYTES)
    return {
        "batches_checked": response["batches_checked"],
        "batches_completed": response["batches_completed"],
        "stalled_count": len(stalled),
        "stalled_batch_ids": kept_ids,
        "stalled_results": kept_results,
        "truncated": len(kept_ids) < len(stalled) or len(kept_results) < len(stalled),
        "fingerprint": stalled_fingerprint(stalled_ids),
    }
