"""Airflow's secrets masker for what leaves the process: the same redaction the task log gets."""

from __future__ import annotations

from typing import Any

# `airflow.sdk.log` has both in Airflow 3.1, 3.2 and 3.3; `mask_secret` there also tells the
# task's supervisor process.
from airflow.sdk.log import mask_secret
from airflow.sdk.log import redact as _redact

__all__ = ["mask_secret", "redact"]


def redact(value: Any) -> Any:
    """`value` with every registered secret replaced by `***`, at any depth.

    The masker's own walk stops at a fixed depth and returns deeper values unredacted; Slack's
    blocks nest deeper than that, so this walks the structure itself and redacts each string.
    """
    if isinstance(value, str):
        return _redact(value)
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value
