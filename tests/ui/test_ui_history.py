"""The history's pure arithmetic: windows, buckets at their edges, rates, offenders, incidents."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_cleanup.backtest import Recorded, replay, scheduled_runs
from batch_cleanup.events import StoredEvent
from batch_cleanup.policy import PolicyConfig
from batch_cleanup.ports import RunRecord
from batch_cleanup.ui import history
from batch_cleanup.ui.history import Event, Sums
from tests.ui.history_data import NOTHING_CHECKED

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
H = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
NEW_YORK = datetime(2026, 3, 10, 8, 30, tzinfo=UTC).astimezone(ZoneInfo("America/New_York"))
RATE_FIELDS = ("stalled", "checked", "rate", "runs", "rate_source")


def ago(**delta) -> datetime:
    return H - timedelta(**delta)


def ev(at: datetime, stalled: int = 1, checked: int = 100, *batch_ids: str) -> Event:
    return Event(timestamp=at, stalled_count=stalled, batches_checked=checked, batch_ids=batch_ids)


def incident(name: str, opened: datetime, closed: datetime | None, **kw) -> dict:
    fields = {"severity": "WARNING", "peak_severity": "WARNING", "peak_count": 3, "total_cleanups": 3}
    return {"id": name, "opened_at": opened, "closed_at": closed, **fields, **kw}


def cleanups(events: list[Event], sums: Sums, win: history.Window, **kw) -> dict:
    return history.cleanups(events, sums, win, truncated=False, warning=3, critical=5, **kw)


def tally(count: int, *rates, **more) -> dict:
    """A row of `history.daily` (more: its `day`) or `history.cleanups`' totals (`runs_truncated`): the
    cleanups, then the fields of RATE_FIELDS in order."""
    return {"cleanups": count, **dict(zip(RATE_FIELDS, rates, strict=True)), **more}


@pytest.mark.parametrize(
    ("name", "now", "start", "hours"),
    [
        ("24h", NOW, datetime(2026, 3, 9, 13, tzinfo=UTC), 24),
        ("7d", NOW, datetime(2026, 3, 3, 13, tzinfo=UTC), 168),
        ("30d", NOW, datetime(2026, 2, 8, 13, tzinfo=UTC), 720),
        ("24h", NEW_YORK, datetime(2026, 3, 9, 9, tzinfo=UTC), 24),  # any timezone, worked in UTC
    ],
)
def test_window_ends_with_the_current_hour(name, now, start, hours):
    win = history.window(name, now)
    assert (win.start, win.end, win.hours) == (start, start + timedelta(hours=hours), hours)


@pytest.mark.parametrize(
    ("name", "now", "error"),
    [("1h", NOW, "24h, 7d, 30d"), ("", NOW, "24h, 7d, 30d"), ("30D", NOW, "24h, 7d, 30d"),
     ("24h", datetime(2026, 3, 10, 12), "timezone-aware")],
)  # fmt: skip
def test_window_refuses_unknown_ranges_and_naive_times(name, now, error):
    with pytest.raises(ValueError, match=error):
        history.window(name, now)


def test_hours_exclude_their_start_include_their_end_as_the_dags_window_does_and_are_labelled_by_it():
    win = history.window("24h", NOW)
    events = [
        ev(win.start),  # before the window, as the run at win.start - 1 h ... win.start counted it
        ev(win.start + timedelta(microseconds=1)),  # first bucket
        ev(H),  # the 12:00 run's cleanup: its window (11:00, 12:00] is bucket 22
        ev(win.end),  # last bucket
        ev(win.end + timedelta(microseconds=1)),  # after the window
    ]
    counts = history.hourly_cleanups(events, win)
    assert (len(counts), counts[0], counts[22], counts[23], sum(counts)) == (24, 1, 1, 1, 3)
    assert [ev.timestamp in win for ev in events] == [False, True, True, True, False]
    # On the hour, `now` closes the last bucket.
    assert history.window("24h", H).end == H
    labels = history.hour_labels(win)  # the buckets' starts
    assert (len(labels), labels[0], labels[-1]) == (24, "2026-03-09T13:00:00Z", "2026-03-10T12:00:00Z")


def test_cleanups_count_hours_per_threshold_band():
    win = history.window("24h", NOW)
    at = [ago(hours=h) for h in (1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3)]  # 3, 5 and 4 in an hour
    data = cleanups([ev(t) for t in at], Sums(12, 12, 1200), win)
    assert (data["peak"], data["hours_at_warning"], data["hours_at_critical"]) == (5, 2, 1)
    # No run results: the rate is over the cleanups alone, an upper bound.
    assert data["totals"] == tally(12, 12, 1200, 0.01, 0, "cleanups", runs_truncated=False)


def test_totals_rate_counts_every_run_in_the_window_also_those_that_cleaned_up_nothing():
    win = history.window("24h", NOW)
    events = [ev(ago(hours=1), 2, 100)]
    checks = [
        RunRecord(ago(hours=1), 100, 2),  # the run that wrote the event
        RunRecord(ago(minutes=45), 300, 0),
        RunRecord(win.end, 100, 0),  # the window's last instant counts
        RunRecord(win.start, 5000, 0),  # before the window
        RunRecord(win.end + timedelta(microseconds=1), 5000, 5),  # after it
    ]
    data = cleanups(events, Sums(1, 2, 100), win, checks=checks, checks_truncated=True)
    assert data["totals"] == tally(1, 2, 500, 2 / 500, 3, "runs", runs_truncated=True)


def test_nothing_checked_and_nothing_cleaned_up_has_no_rate_and_no_source():
    data = cleanups([], Sums(0, 0, 0), history.window("24h", NOW))
    assert data["totals"] == {"cleanups": 0, **NOTHING_CHECKED, "runs_truncated": False}


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
    assert days["2026-03-08"] == tally(1, 2, 200, 0.01, 0, "cleanups", day="2026-03-08")
    assert days["2026-03-09"] == tally(2, 4, 200, 0.02, 0, "cleanups", day="2026-03-09")
    assert days["2026-03-03"] == {"day": "2026-03-03", "cleanups": 0, **NOTHING_CHECKED}


def test_daily_rate_is_over_the_days_runs_where_airflow_holds_them():
    win = history.window("7d", NOW)
    events = [
        ev(datetime(2026, 3, 8, 10, 0, 5, tzinfo=UTC), 2, 200),
        ev(datetime(2026, 3, 9, 6, 0, 5, tzinfo=UTC), 3, 100),
    ]
    checks = [
        RunRecord(datetime(2026, 3, 9, 6, 0, tzinfo=UTC), 100, 3),  # the run of March 9's cleanup
        RunRecord(datetime(2026, 3, 9, 6, 15, tzinfo=UTC), 250, 0),  # runs that found nothing
        RunRecord(datetime(2026, 3, 10, 0, 0, tzinfo=UTC), 250, 0),  # midnight: still March 9
        RunRecord(datetime(2026, 3, 10, 0, 15, tzinfo=UTC), 400, 0),  # the next day
    ]
    days = {d["day"]: d for d in history.daily(events, win, checks)}
    assert days["2026-03-09"] == tally(1, 3, 600, 0.005, 3, "runs", day="2026-03-09")
    # A day of healthy runs has a rate of 0, not "none".
    assert days["2026-03-10"] == tally(0, 0, 400, 0.0, 1, "runs", day="2026-03-10")
    # March 8 has a cleanup but no run record: the upper bound, marked so.
    assert days["2026-03-08"] == tally(1, 2, 200, 0.01, 0, "cleanups", day="2026-03-08")


@given(
    st.lists(st.tuples(st.integers(-3600, 169 * 3600), st.integers(0, 500), st.integers(0, 20)), max_size=60)
)
def test_the_days_add_up_to_the_ranges_totals(runs):
    win = history.window("7d", NOW)
    checks = [RunRecord(win.start + timedelta(seconds=s), checked, stalled) for s, checked, stalled in runs]
    inside = [c for c in checks if win.start < c.run_after <= win.end]

    days = history.daily([], win, checks)
    totals = cleanups([], Sums(0, 0, 0), win, checks=checks)["totals"]

    assert sum(d["runs"] for d in days) == totals["runs"] == len(inside)
    assert sum(d["checked"] for d in days) == totals["checked"] == sum(c.batches_checked for c in inside)
    assert sum(d["stalled"] for d in days) == totals["stalled"] == sum(c.stalled_count for c in inside)
    assert totals["rate_source"] == ("runs" if inside else None)


def test_repeat_offenders_rank_by_cleanups_then_recency_and_count_a_batch_once_per_cleanup():
    events = [
        ev(ago(hours=5), 2, 100, "b-old", "b-old"),  # listed twice in one cleanup: once
        ev(ago(hours=4), 1, 100, "b-old"),
        ev(ago(hours=3), 1, 100, "b-new"),
        ev(ago(hours=2), 1, 100, "b-new", "b-three"),
        ev(ago(hours=1), 1, 100, "b-three"),
        ev(H, 1, 100, "b-three", "b-once"),
    ]
    offenders = history.offender_rows(events)
    assert [(o["batch_id"], o["cleanups"]) for o in offenders] == [("b-three", 3), ("b-new", 2), ("b-old", 2)]
    assert offenders[0]["last_seen"] == "2026-03-10T12:00:00Z"
    assert history.offender_rows(events, limit=1) == offenders[:1]
    assert history.offender_rows(events, minimum=4) == []


def test_incidents_overlapping_the_window_newest_first_with_durations():
    rows = history.incident_rows(
        [
            incident("spans-start", ago(hours=30), ago(hours=22, minutes=30)),
            incident("ended-before", ago(hours=30), ago(hours=23)),  # at the start
            incident("closed", ago(hours=3), ago(hours=1, minutes=55), peak_severity="CRITICAL"),
            incident("open", ago(minutes=20), None),
            incident("open", ago(minutes=20), None),  # read twice: listed once
        ],
        history.window("24h", NOW),
        NOW,
    )
    fields = ("id", "open", "closed_at", "duration", "duration_seconds", "peak_severity")
    assert [tuple(row[f] for f in fields) for row in rows] == [
        ("open", True, None, "50 min", 3000, "WARNING"),
        ("closed", False, "2026-03-10T10:05:00Z", "1 h 05 min", 3900, "CRITICAL"),
        ("spans-start", False, "2026-03-09T13:30:00Z", "7 h 30 min", 27000, "WARNING"),
    ]


def test_incident_without_peak_severity_takes_its_severity():
    document = {"id": "x", "opened_at": H, "closed_at": None, "severity": "CRITICAL"}
    [row] = history.incident_rows([document], history.window("24h", NOW), NOW)
    fields = ("peak_severity", "peak_count", "total_cleanups", "batches", "notifications")
    assert tuple(row[f] for f in fields) == ("CRITICAL", 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 min"), (59, "0 min"), (-5, "0 min"), (2700, "45 min"), (7500, "2 h 05 min"), (273600, "3 d 4 h")],
)
def test_duration_text(seconds, text):
    assert history.duration_text(seconds) == text


@pytest.mark.parametrize(
    "document", [{}, {"open": False, "severity": "WARNING", "opened_at": H}], ids=["none", "closed-lingering"]
)
def test_current_state_without_a_document_or_closed_is_no_incident_even_if_a_severity_lingers(document):
    unknown = ("severity", "peak_severity", "opened_at", "open_for", "last_notified_at", "last_notified_kind")
    known = {"open": False, "last_count": 0, "peak_count": 0, "muted_decisions": 0, "updated_at": None}
    assert history.current_state(document, NOW) == dict.fromkeys(unknown) | known


def test_current_state_of_an_open_incident():
    document = {"open": True, "severity": "CRITICAL", "peak_severity": "CRITICAL", "opened_at": ago(hours=1)}
    document |= {"last_count": 5, "peak_count": 6, "muted": [{"kind": "reminder"}]}
    state = history.current_state(
        {**document, "last_notified_kind": "escalation", "last_notified_at": H}, NOW
    )
    fields = ("open_for", "severity", "muted_decisions", "last_notified_at")
    assert tuple(state[f] for f in fields) == ("1 h 30 min", "CRITICAL", 1, "2026-03-10T12:00:00Z")


RUN = {"run_id": "scheduled__1", "state": "success", "run_type": "scheduled", "run_after": H}
RUN |= {"start_date": H, "end_date": None}


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
    fields = ("stalled_count", "run_id", "run_after", "end_date")
    assert tuple(outcome[f] for f in fields) == (stalled, "scheduled__1", "2026-03-10T12:00:00Z", None)
    assert history.run_outcome(None, None) is None, "no run, no outcome"


def test_the_backtest_comparison_puts_both_replays_side_by_side():
    # Three cleanups in a row at 09:00-09:30 (WARNING at 3 only), and from 11:00 one a run (still open).
    times = [ago(hours=3) + timedelta(minutes=15 * i) for i in range(3)]
    times += [ago(hours=1) + timedelta(minutes=15 * i) for i in range(5)]
    events = [StoredEvent(f"e{i}", t, ["b"], "dag") for i, t in enumerate(times)]
    recorded, runs = Recorded(events, within=timedelta(minutes=14)), scheduled_runs(ago(hours=4), H)
    configs = (PolicyConfig(3, 5), PolicyConfig(4, 6))
    current, candidate = (replay(recorded, runs, config, until=NOW) for config in configs)

    body = history.backtest_comparison(current, candidate, events_read=8, events_truncated=False)

    assert (body["runs"], body["first_run"], body["last_run"], body["until"]) == (
        17, "2026-03-10T08:00:00Z", "2026-03-10T12:00:00Z", "2026-03-10T12:30:00Z"
    )  # fmt: skip
    assert body["current"]["totals"] == {
        "incidents": 2,
        "messages_sent": 4,  # ALERT and RESOLVED at 09:30 and 10:00, ALERT at 11:30, worse at 11:45
        "critical_pages": 0,
        "hours_at_warning": 1.5,  # 09:30-10:00, then 11:30 to now
        "hours_at_critical": 0.0,
        "missed": 0,
    }
    messages = {"alert": 2, "escalation": 0, "worsening": 1, "reminder": 0, "resolved": 1}
    assert body["current"]["messages"] == messages
    fields = ("opened_at", "open", "closed_at", "duration", "duration_seconds", "matched")
    assert [tuple(i[f] for f in fields) for i in body["current"]["incidents"]] == [  # newest first
        ("2026-03-10T11:30:00Z", True, None, "1 h 00 min", 3600, True),
        ("2026-03-10T09:30:00Z", False, "2026-03-10T10:00:00Z", "30 min", 1800, False),
    ]
    assert body["candidate"]["settings"]["warning_threshold"] == 4
    assert [i["opened_at"] for i in body["candidate"]["incidents"]] == ["2026-03-10T11:45:00Z"]
    assert body["candidate"]["totals"]["missed"] == 1  # the 09:30 blip


# --- the backtest's score: labelled incidents and the answer -----------------------------------------


def test_the_incidents_labelled_real_are_scored_one_still_open_until_now():
    def labelled(name: str, value, opened: datetime, closed: datetime | None) -> dict:
        return {"id": name, "opened_at": opened, "closed_at": closed, "label": value}

    found = [
        labelled("open", {"value": "real"}, ago(hours=1), None),
        labelled("noise", {"value": "noise"}, ago(hours=5), ago(hours=4)),
        labelled("disputed", {"value": "disputed"}, ago(hours=6), ago(hours=5)),
        labelled("closed", {"value": "real", "source": "page"}, ago(hours=9), ago(hours=8)),
    ]
    unlabelled = [labelled("x", label, H, None) for label in (None, {}, {"value": None}, "real")]
    assert [history.Labelled.from_document(d) for d in unlabelled] == [None] * 4
    assert history.real_incidents(unlabelled, NOW) is None, "no label with a value: no score"
    real = history.real_incidents(found, NOW)
    assert [(r.id, r.start, r.end) for r in real] == [
        ("closed", ago(hours=9), ago(hours=8)),
        ("open", ago(hours=1), NOW),
    ]
    assert history.real_incidents(found[1:3], NOW) == [], "labelled, none real: scored, all noise"
    assert history.real_incidents([], NOW) is None, "nothing labelled: no score"


def side(rule: str, caught: int, missed: int, noise: int) -> dict:
    score = {"real_caught": caught, "real_missed": missed, "noise_pages": noise}
    return {"rule": rule, "score": score}


@pytest.mark.parametrize(
    ("candidate", "answer"),
    [
        (side("burn_rate", 9, 1, 2), "Yes: the candidate (burn_rate) would have paged 2 times for noise "
         "instead of 12 with the current settings (count), and missed fewer of the 10 real incidents (1, "
         "against 3)."),
        (side("burn_rate", 7, 3, 1), "Yes: the candidate (burn_rate) would have paged 1 time for noise "
         "instead of 12 with the current settings (count), and missed as many of the 10 real incidents (3)."),
        (side("burn_rate", 6, 4, 0), "No: the candidate (burn_rate) would have missed 4 of the 10 real "
         "incidents, the current settings (count) 3."),
        (side("count", 7, 3, 12), "No: the candidate (count) would have paged for noise as often as the "
         "current settings (count) (12 times), and missed as many of the 10 real incidents (3)."),
        (side("burn_rate", 10, 0, 13), "No: the candidate (burn_rate) would have paged 13 times for noise "
         "instead of 12 with the current settings (count), and missed fewer of the 10 real incidents (0, "
         "against 3)."),
    ],
    ids=["fewer-noise-fewer-missed", "fewer-noise-as-many-missed", "more-missed", "as-noisy", "noisier"],
)  # fmt: skip
def test_the_backtest_answers_whether_the_candidate_pages_less_without_missing_real_incidents(
    candidate, answer
):
    assert history.answer(side("count", 7, 3, 12), candidate) == answer


def test_without_scores_there_is_no_answer():
    assert history.answer({"rule": "count", "score": None}, {"rule": "burn_rate", "score": None}) is None
