"""Test-only Airflow cluster policy: make one task fail on its first try, *after* its work is done.

Put this folder on PYTHONPATH and set FAIL_ONCE_AFTER_TASK=<task_id>. It models a worker that
dies after a write reached Firestore but before Airflow heard of it, the case idempotency is for.
"""

from __future__ import annotations

import functools
import os


def task_policy(task) -> None:
    if task.task_id != os.environ.get("FAIL_ONCE_AFTER_TASK"):
        return
    original = task.python_callable

    @functools.wraps(original)
    def fail_first_try(*args, **kwargs):
        from airflow.sdk import get_current_context

        result = original(*args, **kwargs)
        if get_current_context()["ti"].try_number == 1:
            raise RuntimeError(f"injected failure after {task.task_id} finished its work (first try)")
        return result

    task.python_callable = fail_first_try
