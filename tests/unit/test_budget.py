"""The run's time budget: check_stalled's tries and back-off against the run's timeout; Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batch_cleanup.budget import RetryBudget, backoff_multiplier, check_fits, retry_after_seconds
from batch_cleanup.config import CHECK_BUDGET, RUN_TIMEOUT

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def budget(**changes) -> RetryBudget:
    values = {"try_timeout": timedelta(seconds=125), "retries": 3, "retry_delay": timedelta(seconds=30)}
    values |= {"backoff": 2.0, "max_retry_delay": timedelta(seconds=60)}
    return RetryBudget(**(values | changes))


def test_the_default_settings_fit_the_run():
    check_fits(CHECK_BUDGET, RUN_TIMEOUT)


def test_the_numbers_before_the_fix_did_not_fit():
    """300 s a try, 4 tries, back-off up to 4 minutes, in a 14-minute run: the run timed out first."""
    old = budget(try_timeout=timedelta(seconds=300), max_retry_delay=timedelta(minutes=4))
    with pytest.raises(ValueError, match=r"check_stalled's 4 tries of up to 300 s each"):
        check_fits(old, timedelta(minutes=14))


@pytest.mark.parametrize(
    "change",
    [
        {"try_timeout": timedelta(seconds=200)},
        {"retries": 5},
        {"retry_delay": timedelta(seconds=120), "max_retry_delay": timedelta(minutes=5)},
    ],
    ids=["longer-timeout", "more-retries", "longer-delays"],
)
def test_changing_one_number_without_the_others_is_refused(change):
    check_fits(budget(), timedelta(minutes=14))
    with pytest.raises(ValueError, match="Lower the timeout, the retries or the retry delay"):
        check_fits(budget(**change), timedelta(minutes=14))


def test_the_worst_case_adds_every_try_and_the_capped_back_off():
    # Tries 4 x 125 s; waits bounded by 2 x 30, min(60, 2 x 60), min(60, 2 x 120).
    assert budget().worst_case() == timedelta(seconds=4 * 125 + 60 + 60 + 60)


@pytest.mark.parametrize(("retry", "bound"), [(1, 60), (2, 120), (3, 240), (4, 480)])
def test_the_delay_bound_is_twice_airflows_exponential_base(retry, bound):
    # Airflow waits base * backoff^(retry-1) plus a jitter below that much again.
    assert budget(max_retry_delay=timedelta(hours=1)).delay_bound(retry) == timedelta(seconds=bound)


# fmt: off
RETRY_AFTER = {
    "seconds": ("2", 2.0), "spaces": (" 120 ", 120.0), "http-date": ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
    "date-in-the-past": ("Sun, 01 Mar 2026 11:59:00 GMT", 0.0), "absent": (None, None), "empty": ("", None),
    "words": ("soon", None), "negative": ("-5", None), "fraction": ("1.5", None),
}
# fmt: on


@pytest.mark.parametrize(("header", "seconds"), RETRY_AFTER.values(), ids=list(RETRY_AFTER))
def test_retry_after_is_read_as_seconds_or_an_http_date(header, seconds):
    assert retry_after_seconds(header, NOW) == seconds


@pytest.mark.parametrize(("value", "multiplier"), [(True, 2.0), (False, 1.0), (0, 1.0), (2.0, 2.0), (3, 3.0)])
def test_the_backoff_multiplier_is_what_the_scheduler_reads(value, multiplier):
    assert backoff_multiplier(value) == multiplier
