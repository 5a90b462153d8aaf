"""The threshold backtest: run times, the window's edges, the replayed incidents and messages, their
score against labelled real incidents, and a property that it makes the incidents the live steps
(`evaluate`, then `record_state`) make."""

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
from batch_cleanup.backtest import (
    RUN_EVERY,
    Incident,
    RealIncident,
    Recorded,
    Replay,
    overlapped,
    replay,
    scheduled_runs,
    score,
)
from batch_cleanup.config import RUN_TIMEOUT
from batch_cleanup.events import StoredEvent
from batch_cleanup.names import DAG_ID
from batch_cleanup.params import dag_params
from batch_cleanup.policy import CRITICAL, WARNING, PolicyConfig
from batch_cleanup.ports import RunRecord
from batch_cleanup.rules import BURN_RATE, COUNT, RULES, RateRule
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


def minutes(value: datetime | None) -> float | None:
    return None if value is None else (value - T0) / timedelta(minutes=1)


def incidents(result: Replay) -> list[tuple[float, float | None, str | None, int, int]]:
    """(start, end, peak severity, peak count, messages), minutes after T0."""
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


# --- the rate rule -------------------------------------------------------------------------------

BASELINE = {m: (300, 1) for m in range(0, 361, 15)}  # 0.3 % of 300 batches a run: a stall every run
OUTAGE = BASELINE | {120: (300, 30), 135: (300, 30)}  # 10 % for two runs


def history(per_run: dict[int, tuple[int, int]]) -> tuple[list[StoredEvent], list[RunRecord]]:
    """The events and run records of runs at `{minutes: (batches checked, auto-completed)}`."""
    events = [dag(m, *(f"b{m}-{i}" for i in range(n))) for m, (_, n) in per_run.items() if n]
    return events, [RunRecord(at(m), checked, n, dag_id=DAG_ID) for m, (checked, n) in per_run.items()]


def rated(per_run: dict[int, tuple[int, int]], **options) -> Replay:
    events, runs = history(per_run)
    recorded = Recorded(events, within=RUN_TIMEOUT)
    return replay(recorded, runs_until(360), DEFAULTS, runs=runs, rule=BURN_RATE, **options)


def test_the_rate_rule_tells_an_outage_from_a_busy_baseline_where_the_count_cannot():
    events, _ = history(OUTAGE)
    by_count, by_rate = replayed(events), rated(OUTAGE)
    assert [i[:3] for i in incidents(by_count)] == [
        (30, None, CRITICAL)
    ]  # a stall in every run: paged all day
    # 5.2× over the half hour at 120 (WARNING), 10× at 135 (CRITICAL), back to WARNING at 150 quietly,
    # held while the hour stays at 1× or above, RESOLVED at 195.
    assert incidents(by_rate) == [(120, 195, CRITICAL, 4, 3)]
    assert by_rate.messages == {"alert": 1, "escalation": 1, "resolved": 1}
    assert by_rate.critical_pages == 1
    assert hours(by_rate) == (1.0, 0.25)
    assert (by_rate.rule, by_rate.rate_rule, by_count.rule, by_count.rate_rule) == (
        BURN_RATE, RateRule(), COUNT, None,
    )  # fmt: skip
    assert rated(BASELINE).incidents == ()


def test_the_rate_rules_settings_are_the_ones_replayed():
    lenient = rated(OUTAGE, rate_rule=RateRule(critical_factor=20))
    assert incidents(lenient) == [(120, 195, WARNING, 4, 3)]  # no escalation: a reminder at 180
    assert lenient.messages == {"alert": 1, "reminder": 1, "resolved": 1}
    assert lenient.critical_pages == 0
    assert rated(OUTAGE, rate_rule=RateRule(objective_pct=10)).incidents == ()


def test_without_run_records_the_rate_rule_sees_no_batch_checked():
    events, _ = history(OUTAGE)
    assert (
        replay(Recorded(events, within=RUN_TIMEOUT), runs_until(360), DEFAULTS, rule=BURN_RATE).incidents
        == ()
    )
    with pytest.raises(ValueError, match="rule must be one of count, burn_rate, got 'rate'"):
        replay(Recorded(events, within=RUN_TIMEOUT), runs_until(360), DEFAULTS, rule="rate")


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


# --- the score against labelled incidents ---------------------------------------------------------


def real(start: float, end: float) -> RealIncident:
    return RealIncident(at(start), at(end), f"real-{start:g}")


def sent(result: Replay) -> list[list[tuple[float, str, str | None]]]:
    """Each incident's messages: (minutes after T0, kind, severity)."""
    return [[(minutes(m.at), m.kind, m.severity) for m in i.sent] for i in result.incidents]


def scored(caught, missed, noise, pages, delay) -> dict:
    return {
        "real_caught": caught, "real_missed": missed, "noise_pages": noise, "critical_pages": pages,
        "detection_delay_minutes": delay,
    }  # fmt: skip


# The blip is noise; the burst is real (labelled from 265, before the DAG's first message); and a
# real incident between them left no cleanup at all.
LABELLED = [real(150, 180), real(265, 320)]


def test_each_incident_keeps_its_messages_and_names_the_real_incidents_it_overlaps():
    result = replayed(BLIP + BURST)
    assert sent(result) == [
        [(90, "alert", WARNING), (120, "resolved", WARNING)],
        [(270, "alert", WARNING), (285, "escalation", CRITICAL), (330, "resolved", CRITICAL)],
    ]
    assert [overlapped(i, LABELLED) for i in result.incidents] == [(), (real(265, 320),)]


def test_the_current_thresholds_catch_the_burst_miss_the_quiet_one_and_page_once_for_noise():
    # The burst's ALERT comes 5 minutes after its start; the quiet one had no message at all.
    assert score(replayed(BLIP + BURST).incidents, LABELLED) == scored(1, 1, 1, 1, 5.0)


def test_warning_at_4_spares_the_noise_and_still_catches_the_burst_later():
    candidate = replayed(BLIP + BURST, warning_threshold=4, critical_threshold=5)
    # Its one incident opens at CRITICAL at 285: 20 minutes into the real one, and a page.
    assert score(candidate.incidents, LABELLED) == scored(1, 1, 0, 1, 20.0)


def test_one_incident_overlapping_two_real_ones_catches_each_with_its_own_message():
    """SUSTAINED: ALERT at 90, CRITICAL at 105, reminders at 165 and 225, RESOLVED at 240."""
    [incident] = replayed(SUSTAINED).incidents
    first, second = real(80, 100), real(200, 230)
    assert overlapped(incident, [first, second]) == (first, second)
    # 90 - 80 and 225 - 200 (the reminder): the median of 10 and 25.
    assert score([incident], [first, second]) == scored(2, 0, 0, 1, 17.5)


@pytest.mark.parametrize(
    ("labelled", "expected"),
    [
        ((120, 200), scored(1, 0, 0, 1, 45.0)),  # the reminder at 165 is the first message during it
        ((110, 160), scored(0, 1, 0, 1, None)),  # open all along, silent during it: missed, yet no noise
    ],
    ids=["caught-only-by-a-late-reminder", "overlapped-without-a-message"],
)
def test_a_real_incident_that_begins_inside_an_open_incident_is_caught_by_a_message_during_it(
    labelled, expected
):
    [incident] = replayed(SUSTAINED).incidents
    assert incident.opened_at < at(labelled[0])
    assert score([incident], [real(*labelled)]) == expected


def test_an_incident_still_open_catches_a_real_one_still_open():
    result = replayed([dag(300), dag(315), dag(330), dag(345)], until_minutes=345)
    [incident] = result.incidents
    ongoing = real(340, 360)  # labelled while open: until the span's end
    assert (incident.closed_at, overlapped(incident, [ongoing])) == (None, (ongoing,))
    # The escalation to CRITICAL at 345 is the first message during it.
    assert score(result.incidents, [ongoing]) == scored(1, 0, 0, 1, 5.0)


def test_no_labelled_incident_is_no_score_and_none_labelled_real_makes_every_incident_noise():
    incidents = replayed(BLIP + BURST).incidents
    assert score(incidents, None) is None
    assert score(incidents, []) == scored(0, 0, 2, 1, None)
    assert score([], LABELLED) == scored(0, 2, 0, 0, None)


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


def live_incidents(
    events: list[StoredEvent],
    runs: list[datetime],
    config: PolicyConfig,
    records: list[RunRecord] = (),
    rule: str = COUNT,
    objective_pct: float = 1.0,
):
    """Each run through `steps.evaluate` and `steps.record_state`, delivered as `send` would. The
    run `records` of earlier runs are in the store; a replayed run evaluates with its own figures
    (its record), which is written once it ended."""
    store = store_of(events)
    own = {record.run_after: record for record in records}
    for index, record in enumerate(records):
        if record.run_after < runs[0]:
            store.write_run(f"earlier-{index}", record._asdict())
    params = {**PARAMS, **dataclasses.asdict(config), "alert_rule": rule, "rate_objective_pct": objective_pct}
    messages: Counter[str] = Counter()
    for run_after in runs:
        run = {"dag_id": DAG_ID, "run_after": run_after}
        recorded = any(e.dag_id and e.timestamp == run_after for e in events)
        own_figures = {
            "batches_checked": own[run_after].batches_checked,
            "stalled_count": own[run_after].stalled_count,
        } if records else None
        evaluation = steps.evaluate(
            store, params, mute_value=None, recorded=recorded, summary=own_figures, **run
        )
        decision = evaluation["decision"]
        delivered = decision["kind"] != "none" and not decision["suppressed"]
        messages.update([decision["kind"]] if delivered else [])
        outcome = "sent" if delivered else None
        run_id = f"scheduled__{run_after.isoformat()}"
        summary = own_figures or {"batches_checked": 10, "stalled_count": int(recorded)}
        steps.record_state(store, summary, evaluation, outcome, params, run_id=run_id, **run)
    peaks = ("peak_severity", "peak_count", "notifications")
    found = {(i["opened_at"], i["closed_at"], *map(i.get, peaks)) for i in store.incidents.values()}
    found = {incident for incident in found if incident[1] is not None}
    state = store.state
    if state.get("open"):  # its incident document has the peak as of its last message; the state has it now
        found.add((state["opened_at"], None, *map(state.get, peaks)))
    return sorted(found, key=lambda i: i[0]), dict(messages)


# Each run's (batches checked, share auto-completed): a quiet or busy hour, a baseline, a slowdown,
# an outage; earlier runs may have left no record.
figures = st.tuples(st.sampled_from([0, 4, 20, 120, 300]), st.sampled_from([0, 0.003, 0.01, 0.03, 0.1, 0.5]))


def records_of(drawn_figures, runs: list[datetime]) -> list[RunRecord]:
    """A record for each of `runs`, and for the runs of the rule's span before them that have one."""
    earlier = [runs[0] - RUN_EVERY * (i + 1) for i in range(len(drawn_figures) - len(runs))]
    return [
        RunRecord(at_, checked, round(checked * share), dag_id=DAG_ID)
        for at_, (checked, share) in zip([*runs, *earlier], drawn_figures, strict=False)
        if at_ in runs or checked  # an earlier run of no batch: as if it left no record
    ]


@settings(max_examples=150)
@given(
    config=configs,
    drawn_cleanups=st.lists(cleanups, max_size=60),
    drawn_copies=st.lists(copies, max_size=8),
    n_runs=st.integers(1, 48),
    rule=st.sampled_from(RULES),
    objective_pct=st.sampled_from([0.5, 1.0, 3.0]),
    drawn_figures=st.lists(figures, min_size=64, max_size=64),
)
def test_the_backtest_makes_the_incidents_the_live_steps_make(
    config, drawn_cleanups, drawn_copies, n_runs, rule, objective_pct, drawn_figures
):
    events = history_of(drawn_cleanups, drawn_copies)
    runs = scheduled_runs(T0, T0 + (n_runs - 1) * RUN_EVERY)
    records = records_of(drawn_figures, runs)
    options = {"runs": records, "rule": rule, "rate_rule": RateRule(objective_pct=objective_pct)}
    result = replay(Recorded(events, within=RUN_TIMEOUT), runs, config, **options)
    expected, messages = live_incidents(events, runs, config, records, rule, objective_pct)
    found = [(i.opened_at, i.closed_at, i.peak_severity, i.peak_count, i.messages) for i in result.incidents]
    assert found == expected
    assert result.messages == messages
