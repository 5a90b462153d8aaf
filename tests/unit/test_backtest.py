"""The threshold backtest: run times, the window's edges, the replayed incidents and messages, and a
property that it makes the incidents the live steps (`evaluate`, then `record_state`) make."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_cleanup import steps
from batch_cleanup.backtest import RUN_EVERY, Incident, Recorded, Replay, replay, scheduled_runs
from batch_cleanup.config import RUN_TIMEOUT
from batch_cleanup.events import StoredEvent
from batch_cleanup.names import DAG_ID
from batch_cleanup.params import dag_params
from batch_cleanup.policy import CRITICAL, WARNING, PolicyConfig
from tests.support.memory_store import MemoryStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEFAULTS = PolicyConfig()  # WARNING at 3, CRITICAL at 4, 60-minute window, 60-minute cooldown.
PARAMS = {name: param.value for name, param in dag_params().items()}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def dag(minutes: float, *batch_ids: str) -> StoredEvent:
    """A cleanup the DAG recorded, stamped with its run's time."""
    return StoredEvent(
        f"dag-{minutes:g}-{'-'.join(batch_ids)}", at(minutes), list(batch_ids or ["b"]), DAG_ID
    )


def coordinator(minutes: float, *batch_ids: str) -> StoredEvent:
    """A cleanup the coordinator's own tracking recorded (no `dag_id`), stamped with its write time."""
    return StoredEvent(f"coordinator-{minutes:g}", at(minutes), list(batch_ids or ["b"]), None)


def runs_until(minutes: float) -> list[datetime]:
    return scheduled_runs(T0, at(minutes))


def replayed(events, *, until_minutes: float = 360, **config) -> Replay:
    recorded = Recorded(events, within=RUN_TIMEOUT)
    return replay(recorded, runs_until(until_minutes), dataclasses.replace(DEFAULTS, **config))


def incidents(result: Replay) -> list[tuple[float, float | None, str | None, int, int]]:
    """(start, end, peak severity, peak count, messages), minutes after T0."""

    def minutes(value: datetime | None) -> float | None:
        return None if value is None else (value - T0) / timedelta(minutes=1)

    return [
        (minutes(i.opened_at), minutes(i.closed_at), i.peak_severity, i.peak_count, i.messages)
        for i in result.incidents
    ]


def hours(result: Replay) -> tuple[float, float]:
    return tuple(result.time_at[severity] / timedelta(hours=1) for severity in (WARNING, CRITICAL))


# --- run times and the window -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (T0, at(45), [at(0), at(15), at(30), at(45)]),
        (at(1), at(31), [at(15), at(30)]),
        (at(14.99), at(15), [at(15)]),
        (at(30), at(30), [at(30)]),
        (at(31), at(44), []),
    ],
    ids=["aligned", "rounded-up-to-the-next-run", "just-before-a-run", "one-instant", "between-runs"],
)
def test_scheduled_runs_are_every_quarter_hour_between_the_ends(start, end, expected):
    assert scheduled_runs(start, end) == expected


def test_scheduled_runs_are_utc_quarter_hours_whatever_the_zone_of_the_ends():
    new_york = ZoneInfo("America/New_York")
    # The night summer time starts: New York's 02:00-03:00 does not exist, UTC goes on as usual.
    start = datetime(2026, 3, 8, 1, 50, tzinfo=new_york)
    runs = scheduled_runs(start, start + timedelta(hours=1))
    assert runs[0] == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert [b - a for a, b in itertools.pairwise(runs)] == [RUN_EVERY] * 3
    assert all(run.tzinfo is UTC for run in runs)


def test_thirty_days_are_2880_runs():
    assert len(scheduled_runs(T0 + RUN_EVERY, T0 + timedelta(days=30))) == 2880


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        scheduled_runs(datetime(2026, 3, 2, 9), at(60))


@pytest.mark.parametrize(
    ("event_minutes", "counted"),
    [(0, False), (0.01, True), (60, True), (60.01, False)],
    ids=["at-the-window-start-out", "just-after-the-start-in", "at-the-run-time-in", "after-the-run-out"],
)
def test_the_window_is_start_exclusive_and_ends_at_the_run(event_minutes, counted):
    recorded = Recorded([dag(event_minutes)], within=RUN_TIMEOUT)
    assert recorded.count(at(0), at(60)) == int(counted)


# --- replayed incidents -------------------------------------------------------------------------

BLIP = [dag(60), dag(75), dag(90)]  # three runs in a row: WARNING for half an hour
BURST = [dag(240), dag(255), dag(270), dag(275, "manual"), dag(285)]  # five in the window at 285
SIX_AT_ONCE = [dag(100 + m, f"b{m}") for m in range(6)]


@pytest.mark.parametrize(
    ("events", "expected", "messages", "pages", "at_level"),
    [
        ([], [], {}, 0, (0, 0)),
        ([dag(60), dag(120), dag(180)], [], {}, 0, (0, 0)),
        # 60 leaves the window at 120 (start exclusive): 75 and 90 are two → RESOLVED.
        (BLIP, [(90, 120, WARNING, 3, 2)], {"alert": 1, "resolved": 1}, 0, (0.5, 0)),
        # WARNING at 270, CRITICAL at 285 (paged) and 300 (four), back to WARNING quietly, RESOLVED at 330.
        (BURST, [(270, 330, CRITICAL, 5, 3)], {"alert": 1, "escalation": 1, "resolved": 1}, 1, (0.5, 0.5)),
        # Six in the window at once: the ALERT is CRITICAL, and pages.
        (SIX_AT_ONCE, [(105, 165, CRITICAL, 6, 2)], {"alert": 1, "resolved": 1}, 1, (0, 1)),
    ],
    ids=["nothing", "one-an-hour", "warning-blip", "escalation-to-critical", "critical-at-once"],
)
def test_incidents_messages_pages_and_hours(events, expected, messages, pages, at_level):
    result = replayed(events)
    assert incidents(result) == expected
    assert (result.messages, result.messages_sent) == (messages, sum(messages.values()))
    assert result.critical_pages == pages
    assert hours(result) == at_level


SUSTAINED = [dag(m) for m in range(60, 211, 15)]  # one cleanup per run from 60 to 210


@pytest.mark.parametrize(
    ("cooldown", "reminders"),
    [(15, 8), (60, 2), (120, 1), (600, 0)],
    ids=["cooldown-15", "cooldown-60", "cooldown-120", "cooldown-600"],
)
def test_the_cooldown_sets_the_reminders_of_a_long_incident(cooldown, reminders):
    result = replayed(SUSTAINED, cooldown_minutes=cooldown)
    # ALERT at 90 (three in the window), CRITICAL at 105 (every run of the window cleaned up: on
    # the schedule alone), RESOLVED at 240 (195 and 210 left).
    assert incidents(result) == [(90, 240, CRITICAL, 4, 3 + reminders)]
    assert result.messages.get("reminder", 0) == reminders


def test_warning_at_4_spares_the_blip_and_still_pages_for_the_burst():
    """The question the backtest is for: fewer messages, and the real incident is not missed."""
    current = replayed(BLIP + BURST)
    candidate = replayed(BLIP + BURST, warning_threshold=4, critical_threshold=5)
    assert [i[:3] for i in incidents(current)] == [(90, 120, WARNING), (270, 330, CRITICAL)]
    # Four is reached only when the burst is at five: CRITICAL at once, over when three are left.
    assert incidents(candidate) == [(285, 315, CRITICAL, 5, 2)]
    assert (current.messages_sent, candidate.messages_sent) == (5, 2)
    assert current.critical_pages == candidate.critical_pages == 1
    assert candidate.missed(current) == (current.incidents[0],)  # the blip only
    assert current.missed(candidate) == ()


def test_a_longer_window_sees_an_incident_a_short_one_does_not():
    spread = [dag(0), dag(45), dag(90), dag(135)]
    assert replayed(spread).incidents == ()
    assert incidents(replayed(spread, window_minutes=120)) == [
        (90, 120, WARNING, 3, 2),  # 0, 45 and 90 in the window; 0 leaves it at 120
        (135, 165, WARNING, 3, 2),  # 45, 90 and 135; 45 leaves at 165
    ]


def test_an_incident_open_at_the_end_is_reported_open_until_the_end():
    result = replayed([dag(300), dag(315), dag(330), dag(345)], until_minutes=345)
    assert incidents(result) == [(330, None, CRITICAL, 4, 2)]
    assert result.until == at(360)  # one interval after the last run, by default
    assert hours(result) == (0.25, 0.25)


def test_an_open_incident_lasts_until_the_given_end():
    recorded = Recorded([dag(0), dag(15), dag(30)], within=RUN_TIMEOUT)
    result = replay(recorded, runs_until(30), DEFAULTS, until=at(40))
    assert (result.incidents[0].closed_at, result.incidents[0].end(result.until)) == (None, at(40))
    assert result.time_at[WARNING] == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("copy", "expected"),
    [
        (coordinator(78, "b"), []),  # the coordinator's copy of the 75 cleanup: counted once
        (coordinator(95, "b"), [(105, 120, WARNING, 3, 2)]),  # 20 min after: beyond the run, counted
        (coordinator(78, "other"), [(90, 120, WARNING, 3, 2)]),  # other batches: another cleanup
    ],
    ids=["copy-within-the-run", "copy-after-the-run", "not-a-copy"],
)
def test_a_cleanup_the_coordinator_recorded_too_counts_once(copy, expected):
    assert incidents(replayed([dag(60), dag(75), copy])) == expected


def test_a_copy_whose_original_left_the_read_counts_as_the_live_run_counts_it():
    """A day-long window reaches back to the edge of the 24 h read: the DAG event exactly 24 h
    before is not read, so its coordinator copy is not known to be one, in the live run as here."""
    events, run_after = [dag(0, "x"), coordinator(5, "x"), dag(600), dag(1425, "y")], at(24 * 60)
    params = {**PARAMS, "window_minutes": 1440}
    live = steps.evaluate(store_of(events), params, dag_id=DAG_ID, run_after=run_after, mute_value=None)
    result = replay(Recorded(events, within=RUN_TIMEOUT), [run_after], PolicyConfig(window_minutes=1440))
    assert live["decision"]["kind"] == "alert"
    assert [i.opened_at for i in result.incidents] == [run_after]
    assert result.incidents[0].peak_count == live["decision"]["count"] == 3


# --- comparing two replays ----------------------------------------------------------------------


def incident(start: float, end: float | None) -> Incident:
    return Incident(at(start), None if end is None else at(end), WARNING, 3, 2)


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        (incident(0, 30), incident(15, 45), True),
        (incident(0, 30), incident(30, 45), False),
        (incident(0, 60), incident(15, 30), True),
        (incident(0, None), incident(100, 110), True),
        (incident(0, 30), incident(200, None), False),
    ],
    ids=["crossing", "touching", "inside", "open-until-the-end", "later-and-open"],
)
def test_incidents_overlap_while_both_are_open(a, b, overlap):
    until = at(120)
    assert a.overlaps(b, until) is b.overlaps(a, until) is overlap


# --- the property: the backtest decides what the live steps decide ------------------------------

BATCHES = ("b1", "b2", "b3", "b4")
# fmt: off
configs = st.builds(  # warning, critical above it, window, cooldown
    lambda warning, above, window, cooldown: PolicyConfig(warning, warning + above, window, cooldown),
    st.integers(1, 5), st.integers(1, 3), st.sampled_from([15, 30, 45, 60, 90, 180, 1440]),
    st.sampled_from([15, 30, 60, 120]),
)
# fmt: on
# Most cleanups at a run's time, some from manual or cleared runs minutes later; some written by
# the coordinator, a few of them copies of a DAG cleanup (within the run's timeout or after).
cleanups = st.tuples(
    st.integers(-8, 60),  # the run slot, from two hours before the first run
    st.sampled_from([0, 0, 0, 0, 1, 7, 14]),  # minutes after the slot's run
    st.sampled_from(["dag", "dag", "dag", "coordinator"]),
    st.lists(st.sampled_from(BATCHES), min_size=1, max_size=3, unique=True),
)
copies = st.tuples(st.integers(0, 10_000), st.integers(0, 20 * 60))  # which DAG cleanup, seconds after


def history_of(drawn_cleanups, drawn_copies) -> list[StoredEvent]:
    events = [
        StoredEvent(f"e{i}", at(slot * 15 + late), batch_ids, DAG_ID if writer == "dag" else None)
        for i, (slot, late, writer, batch_ids) in enumerate(drawn_cleanups)
    ]
    recorded = [event for event in events if event.dag_id]
    for i, (which, seconds) in enumerate(drawn_copies):
        if recorded:
            original = recorded[which % len(recorded)]
            late = original.timestamp + timedelta(seconds=seconds)
            events.append(StoredEvent(f"copy{i}", late, list(reversed(original.batch_ids)), None))
    return events


def store_of(events: list[StoredEvent]) -> MemoryStore:
    store = MemoryStore()
    for event in events:
        document = {"timestamp": event.timestamp, "batch_ids": event.batch_ids}
        store.events[event.id] = {**document, "dag_id": event.dag_id} if event.dag_id else document
    return store


def live_incidents(events: list[StoredEvent], runs: list[datetime], config: PolicyConfig):
    """Each run through `steps.evaluate` and `steps.record_state`, delivered as `send` would."""
    store = store_of(events)
    params = {**PARAMS, **dataclasses.asdict(config)}
    messages: Counter[str] = Counter()
    for run_after in runs:
        run = {"dag_id": DAG_ID, "run_after": run_after}
        recorded = any(e.dag_id and e.timestamp == run_after for e in events)
        evaluation = steps.evaluate(store, params, mute_value=None, recorded=recorded, **run)
        decision = evaluation["decision"]
        delivered = decision["kind"] != "none" and not decision["suppressed"]
        messages.update([decision["kind"]] if delivered else [])
        outcome = "sent" if delivered else None
        run_id = f"scheduled__{run_after.isoformat()}"
        summary = {"batches_checked": 10, "stalled_count": int(recorded)}
        steps.record_state(store, summary, evaluation, outcome, params, run_id=run_id, **run)
    peaks = ("peak_severity", "peak_count", "notifications")
    found = {(i["opened_at"], i["closed_at"], *map(i.get, peaks)) for i in store.incidents.values()}
    found = {incident for incident in found if incident[1] is not None}
    state = store.state
    if state.get("open"):  # its incident document has the peak as of its last message; the state has it now
        found.add((state["opened_at"], None, *map(state.get, peaks)))
    return sorted(found, key=lambda i: i[0]), dict(messages)


@settings(max_examples=150)
@given(
    config=configs,
    drawn_cleanups=st.lists(cleanups, max_size=60),
    drawn_copies=st.lists(copies, max_size=8),
    n_runs=st.integers(1, 48),
)
def test_the_backtest_makes_the_incidents_the_live_steps_make(config, drawn_cleanups, drawn_copies, n_runs):
    events = history_of(drawn_cleanups, drawn_copies)
    runs = scheduled_runs(T0, T0 + (n_runs - 1) * RUN_EVERY)
    result = replay(Recorded(events, within=RUN_TIMEOUT), runs, config)
    expected, messages = live_incidents(events, runs, config)
    found = [(i.opened_at, i.closed_at, i.peak_severity, i.peak_count, i.messages) for i in result.incidents]
    assert found == expected
    assert result.messages == messages
