"""The history's pure arithmetic: windows, buckets at their edges, rates, offenders, incidents."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_cleanup.backtest import Recorded, replay, scheduled_runs
from batch_cleanup.events import StoredEvent
from batch_cleanup.policy import PolicyConfig
from batch_cleanup.ui import history
from batch_cleanup.ui.history import Event, Incident, RunCheck, Sums
from tests.ui.history_data import NOTHING_CHECKED

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
H = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def ev(at: datetime, stalled: int = 1, checked: int = 100, *batch_ids: str) -> Event:
    return Event(timestamp=at, stalled_count=stalled, batches_checked=checked, batch_ids=batch_ids)


def incident(opened: datetime, closed: datetime | None, **kw) -> Incident:
    fields = {"severity": "WARNING", "peak_severity": "WARNING", "peak_count": 3, "total_cleanups": 3}
    return Incident.from_document(
        kw.pop("id", f"i-{opened:%H%M}"), {"opened_at": opened, "closed_at": closed, **fields, **kw}
    )


RATE_FIELDS = ("stalled", "checked", "rate", "runs", "rate_source")


def day(name: str, cleanups: int, *rates) -> dict:
    """A row of `history.daily`: the day, its cleanups, then the fields of RATE_FIELDS in order."""
    return {"day": name, "cleanups": cleanups, **dict(zip(RATE_FIELDS, rates, strict=True))}


def totals(cleanups: int, *rates, runs_truncated: bool) -> dict:
    """`history.cleanups`' totals: the cleanups, the fields of RATE_FIELDS in order, `runs_truncated`."""
    return {
        "cleanups": cleanups,
        **dict(zip(RATE_FIELDS, rates, strict=True)),
        "runs_truncated": runs_truncated,
    }


@pytest.mark.parametrize(
    ("name", "start", "hours"),
    [
        ("24h", datetime(2026, 3, 9, 13, tzinfo=UTC), 24),
        ("7d", datetime(2026, 3, 3, 13, tzinfo=UTC), 168),
        ("30d", datetime(2026, 2, 8, 13, tzinfo=UTC), 720),
    ],
)
def test_window_ends_with_the_current_hour(name, start, hours):
    win = history.window(name, NOW)
    assert (win.start, win.end, win.hours) == (start, H + timedelta(hours=1), hours)
    assert win.end - win.start == timedelta(hours=hours)


def test_window_takes_any_timezone_and_works_in_utc():
    new_york = datetime(2026, 3, 10, 8, 30, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("America/New_York")
    )
    assert history.window("24h", new_york).end == datetime(2026, 3, 10, 9, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["1h", "", "30D"])
def test_window_refuses_unknown_ranges(bad):
    with pytest.raises(ValueError, match="24h, 7d, 30d"):
        history.window(bad, NOW)


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        history.window("24h", datetime(2026, 3, 10, 12))


def test_hours_exclude_their_start_and_include_their_end_as_the_dags_window_does():
    win = history.window("24h", NOW)
    events = [
        ev(win.start),  # before the window, as the run at win.start - 1 h ... win.start counted it
        ev(win.start + timedelta(microseconds=1)),  # first bucket
        ev(H),  # the 12:00 run's cleanup: its window (11:00, 12:00] is bucket 22
        ev(win.end),  # last bucket
        ev(win.end + timedelta(microseconds=1)),  # after the window
    ]
    counts = history.hourly_cleanups(events, win)
    assert len(counts) == 24
    assert (counts[0], counts[22], counts[23], sum(counts)) == (1, 1, 1, 3)
    assert [ev.timestamp in win for ev in events] == [False, True, True, True, False]
    # On the hour, `now` closes the last bucket.
    assert history.window("24h", H).end == H


def test_hour_labels_are_the_buckets_starts():
    labels = history.hour_labels(history.window("24h", NOW))
    assert labels[0] == "2026-03-09T13:00:00Z"
    assert labels[-1] == "2026-03-10T12:00:00Z"


def test_cleanups_count_hours_per_threshold_band():
    win = history.window("24h", NOW)
    at = [H - timedelta(hours=h) for h in (1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3)]  # 3, 5 and 4 in an hour
    data = history.cleanups(
        [ev(t) for t in at], Sums(12, 12, 1200), win, truncated=False, warning=3, critical=5
    )
    assert (data["peak"], data["hours_at_warning"], data["hours_at_critical"]) == (5, 2, 1)
    # No run results: the rate is over the cleanups alone, an upper bound.
    assert data["totals"] == totals(12, 12, 1200, 0.01, 0, "cleanups", runs_truncated=False)


def test_totals_rate_counts_every_run_in_the_window_also_those_that_cleaned_up_nothing():
    win = history.window("24h", NOW)
    cleanups = [ev(H - timedelta(hours=1), 2, 100)]
    checks = [
        RunCheck(H - timedelta(hours=1), 100, 2),  # the run that wrote the event
        RunCheck(H - timedelta(minutes=45), 300, 0),
        RunCheck(win.end, 100, 0),  # the window's last instant counts
        RunCheck(win.start, 5000, 0),  # before the window
        RunCheck(win.end + timedelta(microseconds=1), 5000, 5),  # after it
    ]
    data = history.cleanups(
        cleanups, Sums(1, 2, 100), win, truncated=False, warning=3, critical=5, checks=checks,
        checks_truncated=True,
    )  # fmt: skip
    assert data["totals"] == totals(1, 2, 500, 2 / 500, 3, "runs", runs_truncated=True)


def test_nothing_checked_and_nothing_cleaned_up_has_no_rate_and_no_source():
    data = history.cleanups(
        [], Sums(0, 0, 0), history.window("24h", NOW), truncated=False, warning=3, critical=5
    )
    assert data["totals"] == {
        "cleanups": 0,
        **NOTHING_CHECKED,
        "runs_truncated": False,
    }


@pytest.mark.parametrize(("stalled", "checked", "expected"), [(1, 200, 0.005), (0, 50, 0.0), (3, 0, None)])
def test_rate(stalled, checked, expected):
    assert history.rate(stalled, checked) == expected


def test_daily_sums_per_utc_day_including_days_without_cleanups():
    win = history.window("7d", NOW)
    events = [
        ev(datetime(2026, 3, 9, 0, 0, tzinfo=UTC), 2, 200),  # midnight closes March 8
        ev(datetime(2026, 3, 9, 0, 0, 1, tzinfo=UTC), 1, 100),
        ev(datetime(2026, 3, 9, 6, 0, tzinfo=UTC), 3, 100),
        ev(datetime(2026, 3, 3, 13, 0, tzinfo=UTC), 5, 5),  # the window's start: before its first hour
    ]
    days = {d["day"]: d for d in history.daily(events, win)}
    assert list(days) == [(date(2026, 3, 3) + timedelta(days=i)).isoformat() for i in range(8)]
    # Without run results, each day's rate is over its cleanups: an upper bound.
    assert days["2026-03-08"] == day("2026-03-08", 1, 2, 200, 0.01, 0, "cleanups")
    assert days["2026-03-09"] == day("2026-03-09", 2, 4, 200, 0.02, 0, "cleanups")
    assert days["2026-03-03"] == {
        "day": "2026-03-03",
        "cleanups": 0,
        **NOTHING_CHECKED,
    }


def test_daily_rate_is_over_the_days_runs_where_airflow_holds_them():
    win = history.window("7d", NOW)
    events = [
        ev(datetime(2026, 3, 8, 10, 0, 5, tzinfo=UTC), 2, 200),
        ev(datetime(2026, 3, 9, 6, 0, 5, tzinfo=UTC), 3, 100),
    ]
    checks = [
        RunCheck(datetime(2026, 3, 9, 6, 0, tzinfo=UTC), 100, 3),  # the run of March 9's cleanup
        RunCheck(datetime(2026, 3, 9, 6, 15, tzinfo=UTC), 250, 0),  # runs that found nothing
        RunCheck(datetime(2026, 3, 10, 0, 0, tzinfo=UTC), 250, 0),  # midnight: still March 9
        RunCheck(datetime(2026, 3, 10, 0, 15, tzinfo=UTC), 400, 0),  # the next day
    ]
    days = {d["day"]: d for d in history.daily(events, win, checks)}
    assert days["2026-03-09"] == day("2026-03-09", 1, 3, 600, 0.005, 3, "runs")
    # A day of healthy runs has a rate of 0, not "none".
    assert days["2026-03-10"] == day("2026-03-10", 0, 0, 400, 0.0, 1, "runs")
    # March 8 has a cleanup but no run left in Airflow's database: the upper bound, marked so.
    assert days["2026-03-08"]["rate_source"] == "cleanups"
    assert (days["2026-03-08"]["rate"], days["2026-03-08"]["runs"]) == (0.01, 0)


@given(
    st.lists(st.tuples(st.integers(-3600, 169 * 3600), st.integers(0, 500), st.integers(0, 20)), max_size=60)
)
def test_the_days_add_up_to_the_ranges_totals(runs):
    win = history.window("7d", NOW)
    checks = [RunCheck(win.start + timedelta(seconds=s), checked, stalled) for s, checked, stalled in runs]
    inside = [c for c in checks if win.start < c.timestamp <= win.end]

    days = history.daily([], win, checks)
    totals = history.cleanups([], Sums(0, 0, 0), win, truncated=False, warning=3, critical=5, checks=checks)[
        "totals"
    ]

    assert sum(d["runs"] for d in days) == totals["runs"] == len(inside)
    assert sum(d["checked"] for d in days) == totals["checked"] == sum(c.checked for c in inside)
    assert sum(d["stalled"] for d in days) == totals["stalled"] == sum(c.stalled for c in inside)
    assert totals["rate_source"] == ("runs" if inside else None)


def test_repeat_offenders_rank_by_cleanups_then_recency_and_count_a_batch_once_per_cleanup():
    events = [
        ev(H - timedelta(hours=5), 2, 100, "b-old", "b-old"),  # listed twice in one cleanup: once
        ev(H - timedelta(hours=4), 1, 100, "b-old"),
        ev(H - timedelta(hours=3), 1, 100, "b-new"),
        ev(H - timedelta(hours=2), 1, 100, "b-new", "b-three"),
        ev(H - timedelta(hours=1), 1, 100, "b-three"),
        ev(H, 1, 100, "b-three", "b-once"),
    ]
    offenders = history.offender_rows(events)
    assert [(o["batch_id"], o["cleanups"]) for o in offenders] == [("b-three", 3), ("b-new", 2), ("b-old", 2)]
    assert offenders[0]["last_seen"] == "2026-03-10T12:00:00Z"
    assert history.offender_rows(events, limit=1) == offenders[:1]
    assert history.offender_rows(events, minimum=4) == []


def test_incidents_overlapping_the_window_newest_first_with_durations():
    win = history.window("24h", NOW)
    rows = history.incident_rows(
        [
            incident(H - timedelta(hours=30), H - timedelta(hours=22, minutes=30), id="spans-start"),
            incident(H - timedelta(hours=30), H - timedelta(hours=23), id="ended-before"),  # at the start
            incident(
                H - timedelta(hours=3),
                H - timedelta(hours=1, minutes=55),
                id="closed",
                peak_severity="CRITICAL",
            ),
            incident(H - timedelta(minutes=20), None, id="open"),
            incident(H - timedelta(minutes=20), None, id="open"),  # read twice: listed once
        ],
        win,
        NOW,
    )
    assert [r["id"] for r in rows] == ["open", "closed", "spans-start"]
    open_, closed, spans = rows
    assert (open_["open"], open_["closed_at"], open_["duration"], open_["duration_seconds"]) == (
        True,
        None,
        "50 min",
        3000,
    )
    assert (closed["duration"], closed["peak_severity"], closed["closed_at"]) == (
        "1 h 05 min",
        "CRITICAL",
        "2026-03-10T10:05:00Z",
    )
    assert spans["duration"] == "7 h 30 min"


def test_incident_without_peak_severity_takes_its_severity():
    [row] = history.incident_rows(
        [Incident.from_document("x", {"opened_at": H, "closed_at": None, "severity": "CRITICAL"})],
        history.window("24h", NOW),
        NOW,
    )
    assert row["peak_severity"] == "CRITICAL"
    assert (row["peak_count"], row["total_cleanups"], row["batches"], row["notifications"]) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 min"),
        (59, "0 min"),
        (45 * 60, "45 min"),
        (2 * 3600 + 5 * 60, "2 h 05 min"),
        (3 * 86400 + 4 * 3600, "3 d 4 h"),
        (-5, "0 min"),
    ],
)
def test_duration_text(seconds, text):
    assert history.duration_text(seconds) == text


def test_current_state_without_a_document_is_no_incident():
    assert history.current_state({}, NOW) == {
        "open": False,
        "severity": None,
        "peak_severity": None,
        "opened_at": None,
        "open_for": None,
        "last_count": 0,
        "peak_count": 0,
        "last_notified_at": None,
        "last_notified_kind": None,
        "muted_decisions": 0,
        "updated_at": None,
    }


def test_current_state_of_an_open_incident():
    state = history.current_state(
        {
            "open": True,
            "severity": "CRITICAL",
            "peak_severity": "CRITICAL",
            "opened_at": H - timedelta(hours=1),
            "last_count": 5,
            "peak_count": 6,
            "muted": [{"kind": "reminder"}],
            "last_notified_kind": "escalation",
            "last_notified_at": H,
        },
        NOW,
    )
    assert state["open_for"] == "1 h 30 min"
    assert (state["severity"], state["muted_decisions"], state["last_notified_at"]) == (
        "CRITICAL",
        1,
        "2026-03-10T12:00:00Z",
    )


def test_a_closed_state_shows_no_severity_even_if_one_lingers():
    state = history.current_state({"open": False, "severity": "WARNING", "opened_at": H}, NOW)
    assert (state["severity"], state["opened_at"], state["open_for"]) == (None, None, None)


RUN = {
    "run_id": "scheduled__1",
    "state": "success",
    "run_type": "scheduled",
    "run_after": H,
    "start_date": H,
    "end_date": None,
}


@pytest.mark.parametrize(
    ("run", "event", "stalled"),
    [
        (RUN, ev(H, 4), 4),
        (RUN, None, 0),  # succeeded without an event: nothing stalled
        ({**RUN, "state": "failed"}, None, None),  # failed before recording: not known
        ({**RUN, "state": "running"}, None, None),
    ],
)
def test_run_outcome(run, event, stalled):
    outcome = history.run_outcome(run, event)
    assert outcome["stalled_count"] == stalled
    assert (outcome["run_id"], outcome["run_after"], outcome["end_date"]) == (
        "scheduled__1",
        "2026-03-10T12:00:00Z",
        None,
    )


def test_no_run_no_outcome():
    assert history.run_outcome(None, None) is None


# --- the backtest's comparison --------------------------------------------------------------------


def test_the_backtest_comparison_puts_both_replays_side_by_side():
    # Three cleanups in a row at 09:00-09:30 (WARNING at 3 only), and from 11:00 one a run (still open).
    times = [H - timedelta(hours=3) + timedelta(minutes=15 * i) for i in range(3)]
    times += [H - timedelta(hours=1) + timedelta(minutes=15 * i) for i in range(5)]
    recorded = Recorded(
        [StoredEvent(f"e{i}", t, ["b"], "dag") for i, t in enumerate(times)], within=timedelta(minutes=14)
    )
    runs = scheduled_runs(H - timedelta(hours=4), H)
    current, candidate = (
        replay(recorded, runs, config, until=NOW) for config in (PolicyConfig(3, 5), PolicyConfig(4, 6))
    )

    body = history.backtest_comparison(current, candidate, events_read=8, events_truncated=False)

    assert (body["runs"], body["first_run"], body["last_run"]) == (
        17,
        "2026-03-10T08:00:00Z",
        "2026-03-10T12:00:00Z",
    )
    assert body["until"] == "2026-03-10T12:30:00Z"
    assert body["current"]["totals"] == {
        "incidents": 2,
        "messages_sent": 4,  # ALERT and RESOLVED at 09:30 and 10:00, ALERT at 11:30, worse at 11:45
        "critical_pages": 0,
        "hours_at_warning": 1.5,  # 09:30-10:00, then 11:30 to now
        "hours_at_critical": 0.0,
        "missed": 0,
    }
    assert body["current"]["messages"] == {
        "alert": 2,
        "escalation": 0,
        "worsening": 1,
        "reminder": 0,
        "resolved": 1,
    }
    [open_now, blip] = body["current"]["incidents"]  # newest first
    assert (open_now["open"], open_now["closed_at"], open_now["duration"]) == (True, None, "1 h 00 min")
    assert open_now["matched"] is True
    assert (blip["opened_at"], blip["duration_seconds"], blip["matched"]) == (
        "2026-03-10T09:30:00Z",
        1800,
        False,
    )
    assert body["candidate"]["settings"]["warning_threshold"] == 4
    assert [i["opened_at"] for i in body["candidate"]["incidents"]] == ["2026-03-10T11:45:00Z"]
    assert body["candidate"]["totals"]["missed"] == 1  # the 09:30 blip
