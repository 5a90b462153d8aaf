"""The DAG's settings from Airflow's configuration (section `[batch_cleanup]`), each with its default."""

from __future__ import annotations

import dataclasses
import functools
import logging
from datetime import timedelta

from batch_cleanup.budget import RetryBudget, backoff_multiplier
from batch_cleanup.compat import conf
from batch_cleanup.rule_defaults import COUNT, OBJECTIVE_PCT
from batch_cleanup.text import is_absolute_url

log = logging.getLogger(__name__)

SECTION = "batch_cleanup"

RUN_TIMEOUT = timedelta(minutes=conf.getint(SECTION, "run_timeout_minutes", fallback=14))
DEADLINE_MINUTES = conf.getint(SECTION, "deadline_minutes", fallback=10)
# One request to the coordinator; a try of check_stalled may make a second one after a 429's Retry-After.
COORDINATOR_TIMEOUT_SECONDS = conf.getint(SECTION, "coordinator_timeout_seconds", fallback=60)
RETRY_DELAY = timedelta(seconds=conf.getint(SECTION, "retry_delay_seconds", fallback=30))

# Every task's tries (both DAGs' default_args: dag_args.default_args) unless the task sets its own.
RETRIES = 3
# Airflow 3.1 takes a bool here; 3.2 and later read True as a multiplier of 2. Both double each wait.
RETRY_EXPONENTIAL_BACKOFF = True
MAX_RETRY_DELAY = timedelta(seconds=60)
# Each try of any task is stopped after this long; check_stalled's tries are shorter (CHECK_BUDGET).
TASK_TIMEOUT = timedelta(minutes=6)
# How long one Firestore call retries a Firestore that refuses connections before the task fails
# (and Airflow retries it): Google's client default. The record of a message Slack accepted is
# retried longer, up to a little below the task's timeout: a retry of the task would post it again.
FIRESTORE_RETRY_SECONDS = conf.getint(SECTION, "firestore_retry_seconds", fallback=60)
RECORD_POST_SECONDS = conf.getint(
    SECTION, "record_post_seconds", fallback=int(TASK_TIMEOUT.total_seconds()) - 30
)

# A try may send two requests (the second after a 429's Retry-After); the hook stops at CHECK_TRY_SECONDS,
# and Airflow's execution_timeout a little later, so what fails the try is the hook's own error.
CHECK_TRY_SECONDS = 2 * COORDINATOR_TIMEOUT_SECONDS
CHECK_BUDGET = RetryBudget(
    try_timeout=timedelta(seconds=CHECK_TRY_SECONDS + 5),
    retries=RETRIES,
    retry_delay=RETRY_DELAY,
    backoff=backoff_multiplier(RETRY_EXPONENTIAL_BACKOFF),
    max_retry_delay=MAX_RETRY_DELAY,
)
# Any other task's tries. The weekly digest runs two such tasks one after the other: its run's
# timeout leaves each half (the DAG checks it fits).
TASK_BUDGET = dataclasses.replace(CHECK_BUDGET, try_timeout=TASK_TIMEOUT)
DIGEST_RUN_TIMEOUT = timedelta(minutes=75)


# The alert rule a run uses unless its params choose another (params.py checks both): `count` or
# `burn_rate` (rule_defaults.RULES), and the rate rule's objective, in % of batches checked.
ALERT_RULE = conf.get(SECTION, "alert_rule", fallback=COUNT).strip()
RATE_OBJECTIVE_PCT = conf.getfloat(SECTION, "rate_objective_pct", fallback=OBJECTIVE_PCT)

# Cloud Monitoring's API; set only to point the run's metrics at a stand-in (local runs, tests).
MONITORING_API_ENDPOINT = conf.get(SECTION, "monitoring_api_endpoint", fallback="") or None

# The alert's diagnosis: one short try of the coordinator's `GET /health/deep` (requests' timeout, for
# connecting and for each read), so that a hung coordinator holds the alert up by about this much.
HEALTH_TIMEOUT_SECONDS = conf.getint(SECTION, "health_timeout_seconds", fallback=5)
# The Logs Explorer query behind the alert's worker-logs link; empty means this default.
DEFAULT_WORKER_LOGS_QUERY = 'resource.type="cloud_run_revision" severity>=WARNING'
WORKER_LOGS_QUERY = conf.get(SECTION, "worker_logs_query", fallback="") or DEFAULT_WORKER_LOGS_QUERY

# Bot-token mode: the reactions on an incident's first message that label it real or noise
# (labels.py); emoji names as Slack gives them, without colons (":no_bell:" is read as "no_bell").
REAL_REACTION = conf.get(SECTION, "real_reaction", fallback="").strip().strip(":") or "white_check_mark"
NOISE_REACTION = conf.get(SECTION, "noise_reaction", fallback="").strip().strip(":") or "no_bell"


def api_base_url() -> str | None:
    """`[api] base_url`, the root of the links in Slack messages; None unless it is absolute (unset by
    default), for Slack refuses a whole message for one relative link. The first time, the log says why."""
    base_url = conf.get("api", "base_url", fallback="") or ""
    if is_absolute_url(base_url):
        return base_url
    _no_links(base_url)
    return None


@functools.cache  # once per process (and value), not once per message
def _no_links(base_url: str) -> None:
    log.warning(
        "[api] base_url is %s, not an absolute http(s) URL: Slack messages carry no links to Airflow "
        "(Slack refuses a message with a relative one), only the run's id. Set [api] base_url "
        "(AIRFLOW__API__BASE_URL) to the address people open Airflow at.",
        repr(base_url) if base_url else "unset",
    )
