"""The DAG's settings from Airflow's configuration (section `[batch_cleanup]`), each with its default.

Airflow 3.2 and later export `conf` from `airflow.sdk`; 3.1 has it in `airflow.configuration` only.
"""

from __future__ import annotations

from datetime import timedelta

from batch_cleanup.budget import RetryBudget

try:  # Airflow 3.2 and later
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf

__all__ = ["conf"]

SECTION = "batch_cleanup"

RUN_TIMEOUT = timedelta(minutes=conf.getint(SECTION, "run_timeout_minutes", fallback=14))
DEADLINE_MINUTES = conf.getint(SECTION, "deadline_minutes", fallback=10)
# One request to the coordinator; a try of check_stalled may make a second one after a 429's Retry-After.
COORDINATOR_TIMEOUT_SECONDS = conf.getint(SECTION, "coordinator_timeout_seconds", fallback=60)
RETRY_DELAY = timedelta(seconds=conf.getint(SECTION, "retry_delay_seconds", fallback=30))

RETRIES = 3
RETRY_BACKOFF = 2.0
MAX_RETRY_DELAY = timedelta(seconds=60)
# Each try of any task is stopped after this long; check_stalled's tries are shorter (CHECK_BUDGET).
TASK_TIMEOUT = timedelta(minutes=6)

# A try may send two requests (the second after a 429's Retry-After); the hook stops at CHECK_TRY_SECONDS,
# and Airflow's execution_timeout a little later, so what fails the try is the hook's own error.
CHECK_TRY_SECONDS = 2 * COORDINATOR_TIMEOUT_SECONDS
CHECK_BUDGET = RetryBudget(
    try_timeout=timedelta(seconds=CHECK_TRY_SECONDS + 5),
    retries=RETRIES,
    retry_delay=RETRY_DELAY,
    backoff=RETRY_BACKOFF,
    max_retry_delay=MAX_RETRY_DELAY,
)


def api_base_url() -> str:
    return conf.get("api", "base_url", fallback="")
