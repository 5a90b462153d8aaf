"""The package's one time convention (`text.as_utc`, `text.utc_z`): aware times, in UTC, with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from batch_cleanup.text import as_utc, utc_z
from tests.support.times import NoOffset

PARIS_WINTER = timezone(timedelta(hours=1))


def test_an_aware_time_comes_back_in_utc_as_the_same_instant():
    moment = datetime(2026, 3, 8, 7, 47, tzinfo=PARIS_WINTER)
    assert as_utc(moment, "x") == moment
    assert as_utc(moment, "x").tzinfo is UTC
    assert as_utc(moment, "x").hour == 6


@pytest.mark.parametrize(
    "moment",
    [datetime(2026, 3, 8, 6, 47), datetime(2026, 3, 8, 6, 47, tzinfo=NoOffset())],
    ids=["no-tzinfo", "tzinfo-without-offset"],
)
def test_a_naive_time_is_refused_naming_the_argument_not_written_as_if_it_were_local(moment):
    with pytest.raises(ValueError, match=r"^run_after must be timezone-aware, got naive 2026-03-08T06:47:00"):
        as_utc(moment, "run_after")
    with pytest.raises(ValueError, match=r"^updated_at must be timezone-aware"):
        utc_z(moment, name="updated_at")


def test_a_time_is_written_in_utc_with_a_z():
    assert utc_z(datetime(2026, 3, 8, 7, 47, tzinfo=PARIS_WINTER)) == "2026-03-08T06:47:00Z"
    moment = datetime(2026, 3, 8, 6, 47, 12, 250000, tzinfo=UTC)
    assert utc_z(moment, timespec="auto") == "2026-03-08T06:47:12.250000Z"
    assert utc_z(moment, timespec="milliseconds") == "2026-03-08T06:47:12.250Z"
