"""The alert policy: severity, cooldown, escalation, de-escalation, recovery, mute and the records."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_cleanup.events import firestore_size
from batch_cleanup.policy import (
    CRITICAL,
    WARNING,
    Decision,
    Kind,
    PolicyConfig,
    State,
    decide,
    incident_record,
    mute_until,
    rate_rule,
    repeat_offenders,
)
from batch_cleanup.policy import forced_test_decision as make_test_decision
from batch_cleanup.ports import RunRecord
from batch_cleanup.rules import BURN_RATE, COUNT, RULES, RateRule, reading

DAG_ID = "stalled_batch_cleanup"
CONFIG = PolicyConfig()  # WARNING at 3, CRITICAL at 4, 60-minute window, 60-minute cooldown.
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
COOLDOWN = timedelta(minutes=CONFIG.cooldown_minutes)
COUNTS = {"none": 2, "warning": 3, "critical": 4}
RANK = {None: 0, WARNING: 1, CRITICAL: 2}


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


# The rate rule's reading at each level: (batches checked, auto-completed) per run, newest first,
# one run every 15 minutes ending at the evaluation's time.
RATE_RULE = RateRule()
LEVELS = {
    "none": [(300, 1)] * 16,  # 0.3 %: no severity, and an open incident does not hold
    "hold": [(300, 4)] * 4,  # 1.3×: no severity, but an open incident holds
    "warning": [(300, 9)] * 4,  # 3×
    "critical": [(300, 30)] * 2,  # 10×
}
LEVEL_OF = {None: "none", WARNING: "warning", CRITICAL: "critical"}


def rate_at(level: str, at: datetime):
    runs = [RunRecord(at - timedelta(minutes=15 * i), c, s) for i, (c, s) in enumerate(LEVELS[level])]
    return reading(runs, at, RATE_RULE)


def run(
    state: State, count: int, at: datetime, *, events=None, rule: str = COUNT, **inputs
) -> tuple[Decision, State]:
    """One evaluation (`inputs`: decide()'s muted, config, auto_completed, rate...); by default the
    window holds one event named after the run's time, and no repeat offenders. Under the rate
    `rule`, the reading is at the level the count would be (unless `inputs` give one), so that
    both rules decide the same."""
    if events is None:
        events = {f"event-{at:%H%M%S%f}": [f"batch-{at:%H%M}"]} if count else {}
    inputs = {"offenders": (), "config": CONFIG} | inputs
    if rule == BURN_RATE and "rate" not in inputs:
        inputs["rate"] = rate_at(LEVEL_OF[inputs["config"].severity(count)], at)
    return decide(state, count=count, now=at, window_events=events, **inputs)


@pytest.fixture(params=RULES)
def rule(request) -> str:
    return request.param


@pytest.fixture(name="run")
def run_under_rule(rule):
    """`run` under each rule (a test taking this fixture as `run`): under the rate rule, a reading
    at the level the count would be."""
    return functools.partial(run, rule=rule)


# --- the previous states, each reached through decide() itself ---------------------------------


def opened(severity: str, rule: str = COUNT) -> State:
    decision, state = run(State(), COUNTS[severity.lower()], T0, rule=rule)
    assert (decision.kind, state.severity) == (Kind.ALERT, severity)
    return state


def deescalated(rule: str = COUNT) -> State:
    """CRITICAL at T0, back to WARNING 15 minutes later: quiet, noted in the next reminder."""
    decision, state = run(opened(CRITICAL, rule), COUNTS["warning"], minutes(15), rule=rule)
    assert decision.kind is Kind.NONE
    assert (state.severity, state.deescalated_from, state.last_notified_at) == (WARNING, CRITICAL, T0)
    return state


PREVIOUS = {
    "closed": lambda rule: State(),
    "open-warning": lambda rule: opened(WARNING, rule),
    "open-critical": lambda rule: opened(CRITICAL, rule),
    "warning-deescalated-from-critical": deescalated,
}
INSIDE, OUTSIDE = minutes(30), minutes(90)
NONE, ALERT, ESCALATION = Kind.NONE, Kind.ALERT, Kind.ESCALATION
REMINDER, RESOLVED = Kind.REMINDER, Kind.RESOLVED
DEESCALATED = "warning-deescalated-from-critical"

# fmt: off
TRANSITIONS = [
    # previous state, count,      cooldown,  → message,  severity, open after, de-escalation noted
    ("closed",       "none",     "inside",  NONE,       None,     False,      None),
    ("closed",       "none",     "outside", NONE,       None,     False,      None),
    ("closed",       "warning",  "inside",  ALERT,      WARNING,  True,       None),
    ("closed",       "warning",  "outside", ALERT,      WARNING,  True,       None),
    ("closed",       "critical", "inside",  ALERT,      CRITICAL, True,       None),
    ("closed",       "critical", "outside", ALERT,      CRITICAL, True,       None),
    ("open-warning", "none",     "inside",  RESOLVED,   WARNING,  False,      None),
    ("open-warning", "none",     "outside", RESOLVED,   WARNING,  False,      None),
    ("open-warning", "warning",  "inside",  NONE,       WARNING,  True,       None),
    ("open-warning", "warning",  "outside", REMINDER,   WARNING,  True,       None),
    ("open-warning", "critical", "inside",  ESCALATION, CRITICAL, True,       None),
    ("open-warning", "critical", "outside", ESCALATION, CRITICAL, True,       None),
    ("open-critical", "none",    "inside",  RESOLVED,   CRITICAL, False,      None),
    ("open-critical", "none",    "outside", RESOLVED,   CRITICAL, False,      None),
    ("open-critical", "warning", "inside",  NONE,       WARNING,  True,       None),
    ("open-critical", "warning", "outside", REMINDER,   WARNING,  True,       CRITICAL),
    ("open-critical", "critical", "inside", NONE,       CRITICAL, True,       None),
    ("open-critical", "critical", "outside", REMINDER,  CRITICAL, True,       None),
    (DEESCALATED,    "none",     "inside",  RESOLVED,   CRITICAL, False,      None),
    (DEESCALATED,    "none",     "outside", RESOLVED,   CRITICAL, False,      None),
    (DEESCALATED,    "warning",  "inside",  NONE,       WARNING,  True,       None),
    (DEESCALATED,    "warning",  "outside", REMINDER,   WARNING,  True,       CRITICAL),
    (DEESCALATED,    "critical", "inside",  ESCALATION, CRITICAL, True,       None),
    (DEESCALATED,    "critical", "outside", ESCALATION, CRITICAL, True,       None),
]
# fmt: on
SEVERITY_OF = {"none": None, "warning": WARNING, "critical": CRITICAL}


def test_the_transition_table_covers_every_pair():
    every = itertools.product(PREVIOUS, COUNTS, ("inside", "outside"))
    assert sorted(row[:3] for row in TRANSITIONS) == sorted(every)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize(
    ("previous", "count", "cooldown", "kind", "severity", "still_open", "deescalated_from"),
    TRANSITIONS,
    ids=[f"{previous}/{count}/{cooldown}-cooldown" for previous, count, cooldown, *_ in TRANSITIONS],
)
def test_transition(previous, count, cooldown, kind, severity, still_open, deescalated_from, rule):
    at = INSIDE if cooldown == "inside" else OUTSIDE
    decision, after = run(PREVIOUS[previous](rule), COUNTS[count], at, rule=rule)
    assert (decision.kind, decision.severity) == (kind, severity)
    assert decision.notify is (kind is not NONE)
    assert decision.deescalated_from == deescalated_from
    assert after.open is still_open
    if still_open:
        assert after.severity == SEVERITY_OF[count]
    else:
        assert after == State(evaluated_at=after.evaluated_at)


# --- the rate rule: its reading decides the severity, and an open incident holds ----------------

# fmt: off
HOLDING = [
    # previous state, cooldown, → message, severity, open after, de-escalation noted
    ("closed",        "inside",  NONE,     None,    False, None),  # the hold opens nothing
    ("open-warning",  "inside",  NONE,     WARNING, True,  None),
    ("open-warning",  "outside", REMINDER, WARNING, True,  None),
    ("open-critical", "inside",  NONE,     WARNING, True,  None),
    ("open-critical", "outside", REMINDER, WARNING, True,  CRITICAL),
]
# fmt: on


@pytest.mark.parametrize(
    ("previous", "cooldown", "kind", "severity", "still_open", "deescalated_from"),
    HOLDING,
    ids=[f"{previous}/{cooldown}-cooldown" for previous, cooldown, *_ in HOLDING],
)
def test_an_open_incident_holds_as_a_warning_between_the_hold_and_warning(
    previous, cooldown, kind, severity, still_open, deescalated_from
):
    at = INSIDE if cooldown == "inside" else OUTSIDE
    hold = rate_at("hold", at)
    assert (hold.severity, hold.holds) == (None, True)
    decision, after = run(PREVIOUS[previous](BURN_RATE), 0, at, rate=hold)
    assert (decision.kind, decision.severity, decision.deescalated_from) == (kind, severity, deescalated_from)
    assert after.open is still_open
    if still_open:
        assert "below WARNING, but the incident holds" in decision.reason


def test_under_the_rate_rule_the_count_no_longer_decides():
    many, _ = run(State(), 9, T0, rate=rate_at("none", T0))  # 9 cleanups at a busy hour: variance
    few, _ = run(State(), 1, T0, rate=rate_at("critical", T0))  # one run of an outage
    assert (many.kind, many.count, many.severity) == (Kind.NONE, 9, None)
    assert (few.kind, few.count, few.severity) == (Kind.ALERT, 1, CRITICAL)
    resolved, _ = run(opened(WARNING, BURN_RATE), 9, minutes(15), rate=rate_at("none", minutes(15)))
    assert (resolved.kind, resolved.severity) == (Kind.RESOLVED, WARNING)


def test_the_decision_carries_the_readings_figures_and_the_reason_its_words():
    reading_ = rate_at("warning", T0)
    decision, _ = run(State(), 3, T0, rate=reading_)
    assert decision.reason == f"{reading_.words()} → WARNING"
    assert decision.rate == {**reading_.to_dict(), "words": reading_.words()}
    assert decision.rate["hour_factor"] == pytest.approx(3.0)
    assert (decision.rate["hour_auto_completed"], decision.rate["hour_checked"]) == (36, 1200)
    assert Decision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision
    assert run(State(), 3, T0)[0].rate is None, "the count rule carries no rate"
    resolved, _ = run(opened(WARNING, BURN_RATE), 0, minutes(15), rate=rate_at("none", minutes(15)))
    assert resolved.reason.endswith("below the hold → RESOLVED after 15 min")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, None),
        ({"alert_rule": COUNT, "rate_objective_pct": 50}, None),  # the rate rule's limit is its own
        ({"alert_rule": BURN_RATE}, RateRule()),
        ({"alert_rule": BURN_RATE, "rate_objective_pct": 0.5}, RateRule(objective_pct=0.5)),
        ({"alert_rule": BURN_RATE, "rate_objective_pct": 12.5}, RateRule(objective_pct=12.5)),
    ],
    ids=["default", "count", "burn-rate", "half-a-percent", "highest-that-works"],
)
def test_the_params_choose_the_rule(params, expected):
    assert rate_rule(params) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"alert_rule": "burnrate"}, "alert_rule must be one of count, burn_rate, got 'burnrate'"),
        ({"alert_rule": COUNT, "rate_objective_pct": 0}, "rate_objective_pct must be a number above 0"),
        ({"alert_rule": BURN_RATE, "rate_objective_pct": 101}, "at most 100, got 101"),
        ({"alert_rule": BURN_RATE, "rate_objective_pct": "1"}, "got '1'"),
        ({"alert_rule": BURN_RATE, "rate_objective_pct": True}, "got True"),
        (
            {"alert_rule": BURN_RATE, "rate_objective_pct": 17},
            r"rate_objective_pct 17 cannot work with alert_rule burn_rate: CRITICAL needs 6× the objective, "
            r"102 % of the batches checked, which can never happen \(at most 16.7 works\)",
        ),
    ],
    ids=["unknown-rule", "zero", "above-100", "text", "boolean", "critical-unreachable"],
)
def test_a_rule_the_params_cannot_work_with_is_refused_naming_them(params, message):
    with pytest.raises(ValueError, match=message):
        rate_rule(params)


@pytest.mark.parametrize("severity", [WARNING, CRITICAL])
@pytest.mark.parametrize(
    ("elapsed", "kind"),
    [(COOLDOWN, Kind.REMINDER), (COOLDOWN - timedelta(microseconds=1), Kind.NONE)],
    ids=["exactly-at-cooldown", "1us-before-cooldown"],
)
def test_the_cooldown_edge(severity, elapsed, kind, run, rule):
    assert run(opened(severity, rule), COUNTS[severity.lower()], T0 + elapsed)[0].kind is kind


def test_the_cooldown_counts_from_the_last_message_not_from_the_opening(run, rule):
    _, state = run(opened(WARNING, rule), COUNTS["warning"], minutes(60))  # reminder
    assert run(state, COUNTS["warning"], minutes(119))[0].kind is Kind.NONE
    assert run(state, COUNTS["warning"], minutes(120))[0].kind is Kind.REMINDER


def test_an_escalation_notifies_at_once_right_after_the_alert(run, rule):
    decision, state = run(opened(WARNING, rule), COUNTS["critical"], minutes(15))
    assert (decision.kind, decision.severity, decision.notify) == (Kind.ESCALATION, CRITICAL, True)
    assert (state.severity, state.peak_severity, state.last_notified_at) == (CRITICAL, CRITICAL, minutes(15))
    assert decision.opened_at == T0
    assert run(opened(WARNING, rule), 9, minutes(15))[0].kind is Kind.ESCALATION, "before getting worse"


def test_a_deescalation_is_noted_in_the_next_reminder_only(run, rule):
    _, state = run(deescalated(rule), COUNTS["warning"], minutes(30))
    reminder, state = run(state, COUNTS["warning"], minutes(60))
    later, _ = run(state, COUNTS["warning"], minutes(120))
    assert (reminder.kind, reminder.deescalated_from) == (Kind.REMINDER, CRITICAL)
    assert (later.kind, later.deescalated_from) == (Kind.REMINDER, None)


def test_a_reminder_names_the_count_the_age_and_the_batches_new_since_the_last_message(run, rule):
    _, state = run(State(), 3, T0, events={"e0": ["b0"], "e1": ["b1", "b2"]})
    reminder, _ = run(state, 3, minutes(60), events={"e1": ["b1", "b2"], "e2": ["b2", "b3"], "e3": ["b4"]})
    assert (reminder.kind, reminder.count, reminder.opened_at) == (Kind.REMINDER, 3, T0)
    assert reminder.duration == timedelta(minutes=60)
    assert reminder.batch_ids == ("b1", "b2", "b3", "b4")
    assert reminder.new_batch_ids == ("b3", "b4")


def test_batches_stalled_between_messages_are_named_even_after_leaving_the_window(run, rule):
    """With a window shorter than the cooldown, a quiet run's batches leave the window before the reminder."""
    config = PolicyConfig(window_minutes=30, cooldown_minutes=60)
    _, state = run(State(), 3, T0, events={"e1": ["b1"]}, config=config)
    quiet, state = run(state, 3, minutes(15), events={"e1": ["b1"], "e2": ["b2"]}, config=config)
    reminder, state = run(state, 3, minutes(60), events={"e3": ["b3"]}, config=config)
    quiet_again, state = run(state, 3, minutes(75), events={"e3": ["b3"], "e4": ["b4"]}, config=config)
    resolved, _ = run(state, 0, minutes(120), events={}, config=config)
    assert quiet.kind is quiet_again.kind is Kind.NONE
    assert reminder.new_batch_ids == ("b2", "b3")
    assert resolved.batch_ids == ("b1", "b2", "b3", "b4")
    assert resolved.total_cleanups == 4


def test_resolved_gives_the_duration_the_total_and_the_batches_involved(run, rule):
    _, state = run(State(), 3, T0, events={"e1": ["b1"], "e2": ["b2"], "e3": ["b1"]})
    _, state = run(state, 5, minutes(15), events={"e2": ["b2"], "e3": ["b1"], "e4": ["b3"], "e5": ["b4"]})
    _, state = run(state, 3, minutes(30), events={"e4": ["b3"], "e5": ["b4"], "e6": ["b5"]})
    resolved, after = run(state, 1, minutes(105), events={"e6": ["b5"]})
    assert (resolved.kind, resolved.notify, resolved.opened_at) == (Kind.RESOLVED, True, T0)
    assert (resolved.duration, resolved.total_cleanups) == (timedelta(minutes=105), 6)
    assert resolved.batch_ids == ("b1", "b2", "b3", "b4", "b5")
    assert (resolved.severity, resolved.peak_severity) == (CRITICAL, CRITICAL)
    assert after == State(evaluated_at=minutes(105))
    assert run(after, 1, minutes(120))[0].kind is Kind.NONE


def test_a_muted_alert_is_logged_not_posted_and_the_state_moves_on(run, rule):
    decision, state = run(State(), 3, T0, muted=True)
    assert (decision.kind, decision.suppressed, decision.notify) == (Kind.ALERT, True, False)
    assert "muted" in decision.reason
    assert (state.open, state.last_notified_at, state.notifications) == (True, T0, 0)
    assert len(state.muted) == 1 and "ALERT WARNING" in state.muted[0]
    assert incident_record(DAG_ID, decision, State(), state, T0)["notifications"] == 0, "recorded, not sent"


def test_the_first_message_after_the_mute_names_what_was_muted(run, rule):
    _, state = run(State(), 3, T0, muted=True)
    _, state = run(state, 5, minutes(15), muted=True)  # escalation, muted
    _, state = run(state, 5, minutes(30), muted=True)  # inside the cooldown: nothing to hold back
    decision, after = run(state, 5, minutes(45))
    assert (decision.kind, decision.notify) == (Kind.REMINDER, True)  # at once, inside the cooldown
    held = [note.split(" at ")[0] for note in decision.muted_before]
    assert held == ["ALERT WARNING", "ESCALATION CRITICAL"]
    assert (after.muted, after.notifications) == ((), 1)
    assert run(after, 5, minutes(60))[0].kind is Kind.NONE
    _, held_nothing = run(opened(WARNING, rule), 3, minutes(15), muted=True)
    assert run(held_nothing, 3, minutes(30))[0].kind is Kind.NONE, "a mute that held nothing: no reminder"


def test_an_incident_resolved_while_muted_is_named_by_the_next_alert(run, rule):
    _, state = run(State(), 3, T0, muted=True)
    resolved, state = run(state, 0, minutes(30), muted=True)
    quiet, state = run(state, 0, minutes(45))
    alert, after = run(state, 3, minutes(300))
    assert (resolved.kind, resolved.suppressed) == (Kind.RESOLVED, True)
    assert not state.open and len(state.muted) == 2
    assert quiet.kind is Kind.NONE
    assert [note.split()[0] for note in alert.muted_before] == ["ALERT", "RESOLVED"]
    assert after.muted == ()


# --- properties over random sequences ---------------------------------------------------------

# fmt: off
configs = st.builds(  # warning, critical above it, window, cooldown
    lambda warning, gap, window, cooldown: PolicyConfig(warning, warning + gap, window, cooldown),
    st.integers(1, 4), st.integers(1, 3), st.sampled_from([15, 30, 60]), st.sampled_from([15, 45, 60, 90]),
)
# fmt: on
steps = st.lists(
    st.tuples(
        st.integers(0, 9),  # cleanups in the window
        st.integers(0, 120),  # minutes since the previous run
        st.booleans() | st.just(False),  # muted, mostly not
        st.lists(st.sampled_from(["b1", "b2", "b&3", "b<4>"]), max_size=3),  # this run's batches
    ),
    min_size=1,
    max_size=40,
)


def replay(config: PolicyConfig, sequence, rule: str = COUNT):
    """Every (before, inputs, decision, after) of a sequence, each run starting from the last state;
    under the rate `rule`, each reading at the level its count would be."""
    state, now, history = State(), T0, []
    for i, (count, elapsed, muted, batches) in enumerate(sequence):
        now += timedelta(minutes=elapsed)
        events = {f"event-{i}": batches} if count else {}
        inputs = {"count": count, "window_events": events, "offenders": (), "now": now, "muted": muted}
        if rule == BURN_RATE:
            inputs["rate"] = rate_at(LEVEL_OF[config.severity(count)], now)
        decision, after = decide(state, config=config, **inputs)
        history.append((state, inputs, decision, after))
        state = after
    return history


@settings(max_examples=300)
@given(configs, steps, st.sampled_from(RULES))
def test_the_policy_invariants(config, sequence, rule):
    resolutions: list[int] = []  # RESOLVED messages of each incident, in order
    held_back = 0
    seen: set[str] = set()  # batches cleaned up during the open incident
    named: set[str] = set()  # ... and named in its messages
    for before, inputs, decision, after in replay(config, sequence, rule):
        severity = config.severity(inputs["count"])

        # Never two notifications for one decision: the same run again, on the state it returned.
        again, _ = decide(after, config=config, **inputs)
        assert again.kind is Kind.NONE, (decision, again)

        # A closed incident is opened or left alone, never reminded.
        if not before.open:
            assert decision.kind in (Kind.NONE, Kind.ALERT)

        # Escalation always notifies, cooldown or not.
        if before.open and RANK[severity] > RANK[before.severity] and not inputs["muted"]:
            assert (decision.kind, decision.notify) == (Kind.ESCALATION, True)

        # No WARNING for an incident whose state is CRITICAL; a WARNING reminder out of CRITICAL
        # carries the de-escalation.
        if after.open and after.severity == CRITICAL:
            assert decision.severity != WARNING
        if decision.notify and before.severity == CRITICAL and decision.severity == WARNING:
            assert (decision.kind, decision.deescalated_from) == (Kind.REMINDER, CRITICAL)

        # At most one reminder per cooldown, unless a mute just ended.
        if decision.kind is Kind.REMINDER and not (before.muted and not inputs["muted"]):
            assert inputs["now"] - before.last_notified_at >= timedelta(minutes=config.cooldown_minutes)

        # Muted: nothing posted, and the next message names everything held back.
        if inputs["muted"]:
            assert not decision.notify
            held_back += decision.suppressed
        if before.open and before.muted and not inputs["muted"] and severity is not None:
            assert decision.notify  # the mute ended during the incident: say so at once
        if decision.notify:
            assert len(decision.muted_before) == held_back
            held_back = 0

        # Every opened incident that drops below the threshold gets exactly one RESOLVED.
        if decision.kind is Kind.ALERT:
            resolutions.append(0)
        if decision.kind is Kind.RESOLVED:
            assert before.open and severity is None
            resolutions[-1] += 1
        if before.open and severity is None:
            assert decision.kind is Kind.RESOLVED
        assert after.open is (severity is not None)

        # Every batch of the incident is named once, in the first message after its cleanup.
        batches = {b for ids in inputs["window_events"].values() for b in ids}
        if decision.kind is Kind.ALERT:
            seen, named = set(batches), set(decision.batch_ids)
        elif before.open:
            seen |= batches
            if decision.kind in (Kind.ESCALATION, Kind.WORSENING, Kind.REMINDER):
                assert not named & set(decision.new_batch_ids)
                named |= set(decision.new_batch_ids)
            if decision.kind is Kind.RESOLVED:
                named = set(decision.batch_ids)
        if decision.kind is not Kind.NONE:
            assert named == seen

    assert resolutions == [1] * (len(resolutions) - after.open) + [0] * after.open


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(list(LEVELS)), st.integers(0, 120), st.booleans()), max_size=40))
def test_under_the_rate_rule_an_incident_opens_on_a_severity_and_closes_when_it_no_longer_holds(sequence):
    state, now = State(), T0
    for level, elapsed, muted in sequence:
        now += timedelta(minutes=elapsed)
        rate = rate_at(level, now)
        decision, after = run(state, 1, now, rate=rate, muted=muted)
        assert after.open is (rate.severity is not None or (state.open and rate.holds))
        assert (decision.kind is Kind.RESOLVED) is (state.open and not rate.holds)
        assert decision.kind is not Kind.ALERT or rate.severity is not None
        if after.open:
            assert after.severity == (rate.severity or WARNING)
        state = after


@settings(max_examples=200)
@given(configs, steps, st.sampled_from(RULES))
def test_states_and_decisions_round_trip(config, sequence, rule):
    for _, _, decision, after in replay(config, sequence, rule):
        assert State.from_dict(after.to_dict()) == after
        assert State.from_dict(json.loads(json.dumps(after.to_dict(iso=True)))) == after
        assert Decision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision


def test_an_empty_or_missing_state_document_is_a_closed_incident_and_unknown_fields_are_ignored():
    assert State.from_dict(None) == State.from_dict({}) == State()
    stored = {**opened(WARNING).to_dict(), "lease": {"run_id": "r"}, "updated_at": T0, "version": 4}
    assert State.from_dict(stored) == opened(WARNING)


def test_a_state_in_another_offset_round_trips_as_the_same_instant():
    new_york = timezone(-timedelta(hours=5))
    state = State(open=True, severity=WARNING, opened_at=datetime(2026, 3, 2, 4, tzinfo=new_york))
    assert State.from_dict(state.to_dict(iso=True)).opened_at == datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("count", "severity"),
    [(0, None), (2, None), (3, WARNING), (4, CRITICAL), (5, CRITICAL), (1_000, CRITICAL)],
)
def test_the_severity_of_a_count(count, severity):
    assert CONFIG.severity(count) == severity
    assert CONFIG.threshold(severity) == {None: 3, WARNING: 3, CRITICAL: 4}[severity]


@pytest.mark.parametrize("field", [field.name for field in dataclasses.fields(PolicyConfig)])
@pytest.mark.parametrize(
    "value", [0, -1, 1.5, "3", None, True], ids=["zero", "negative", "float", "str", "none", "bool"]
)
def test_a_setting_must_be_an_integer_of_at_least_one(field, value):
    with pytest.raises(ValueError, match=rf"{field} must be an integer ≥ 1, got {value!r}"):
        PolicyConfig(**{"warning_threshold": 3, "critical_threshold": 1_000, field: value})


@pytest.mark.parametrize(("warning", "critical"), [(3, 3), (5, 3)], ids=["equal", "below"])
def test_critical_must_be_above_warning(warning, critical):
    refused = rf"critical_threshold \({critical}\) must be greater than warning_threshold \({warning}\)"
    with pytest.raises(ValueError, match=refused):
        PolicyConfig(warning_threshold=warning, critical_threshold=critical)


def test_the_config_takes_its_settings_from_the_dag_params_and_ignores_the_rest():
    params = {"warning_threshold": 2, "critical_threshold": 4, "cooldown_minutes": 30, "notify": True}
    assert PolicyConfig.from_params(params) == PolicyConfig(2, 4, 60, 30)


# fmt: off
OFFENDERS = {
    "none": ([], ()), "once-each": ([["b1"], ["b2"]], ()), "twice": ([["b1"], ["b1"]], (("b1", 2),)),
    "twice-in-one-event": ([["b1", "b1"]], ()),
    "most-often-first": ([["b2", "b1"], ["b1", "b2"], ["b1"], ["b3"]], (("b1", 3), ("b2", 2))),
    "ties-by-id": ([["b", "a"], ["a", "b"]], (("a", 2), ("b", 2))),
    "one-pass": (iter([["b1"], ["b1"], ["b1"]]), (("b1", 3),)),
}
# fmt: on


@pytest.mark.parametrize(("events", "expected"), OFFENDERS.values(), ids=list(OFFENDERS))
def test_repeat_offenders(events, expected):
    assert repeat_offenders(events) == expected


def test_an_alert_opens_the_incidents_timeline_entry():
    decision, after = run(State(), 3, T0, events={"e1": ["b1", "b2"]})
    # fmt: off
    assert incident_record(DAG_ID, decision, State(), after, T0) == {
        "id": "stalled_batch_cleanup-20260302T090000Z", "dag_id": DAG_ID, "opened_at": T0, "closed_at": None,
        "severity": WARNING, "peak_severity": WARNING, "peak_count": 3, "total_cleanups": 1,
        "batch_count": 2, "batch_ids": ["b1", "b2"], "notifications": 1,
    }
    # fmt: on
    decision, after = run(State(), 3, T0.astimezone(timezone(-timedelta(hours=5))))
    record = incident_record(DAG_ID, decision, State(), after, T0)
    assert record["id"] == "stalled_batch_cleanup-20260302T090000Z", "in UTC whatever the offset"


def test_every_message_of_an_incident_updates_the_same_entry_until_resolved(run, rule):
    states, records = [State()], []
    for count, at in [(3, T0), (6, minutes(15)), (4, minutes(75)), (1, minutes(90))]:
        decision, after = run(states[-1], count, at)
        records.append(incident_record(DAG_ID, decision, states[-1], after, at))
        states.append(after)
    assert {record["id"] for record in records} == {"stalled_batch_cleanup-20260302T090000Z"}
    closing = records[-1]
    assert closing["closed_at"] == minutes(90)
    assert (closing["severity"], closing["peak_severity"], closing["peak_count"]) == (CRITICAL, CRITICAL, 6)
    assert (closing["total_cleanups"], closing["notifications"]) == (4, 4)
    assert [r["closed_at"] for r in records[:-1]] == [None, None, None]


@pytest.mark.parametrize("quiet", [True, False], ids=["quiet", "test"])
def test_no_entry_when_no_incident_changes(quiet):
    state = opened(WARNING)
    decision, after = run(state, 3, minutes(15)) if quiet else (make_test_decision(3, {}, ()), state)
    assert incident_record(DAG_ID, decision, state, after, minutes(15)) is None


def test_the_test_decision_carries_todays_numbers_and_touches_no_incident():
    decision = make_test_decision(4, {"e1": ["b1", "b2"], "e2": ["b2", "b3"]}, (("b2", 2),))
    assert (decision.kind, decision.severity, decision.count, decision.notify) == (Kind.TEST, None, 4, True)
    assert (decision.batch_ids, decision.repeat_offenders) == (("b1", "b2", "b3"), (("b2", 2),))
    assert decision.opened_at is None and decision.muted_before == ()
    assert Decision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision


VARIABLE = "batch_cleanup_mute_until"
SIX_PM = datetime(2026, 11, 28, 18, tzinfo=UTC)


# fmt: off
MUTES = {
    "utc-offset": ("2026-11-28T18:00:00+00:00", SIX_PM), "z": ("2026-11-28T18:00:00Z", SIX_PM),
    "new-york-offset": ("2026-11-28T13:00:00-05:00", SIX_PM), "space": ("2026-11-28 18:00", SIX_PM),
    "no-offset-is-utc": ("2026-11-28T18:00:00", SIX_PM), "padded": ("  2026-11-28T18:00:00+00:00\n", SIX_PM),
    "date-only": ("2026-11-28", datetime(2026, 11, 28, tzinfo=UTC)),
}
# fmt: on


@pytest.mark.parametrize(("value", "expected"), MUTES.values(), ids=list(MUTES))
def test_mute_until_reads_an_iso_date_time(value, expected):
    until = mute_until(value, variable=VARIABLE)
    assert (until, until.tzinfo is not None) == (expected, True)


@pytest.mark.parametrize("value", [None, "", "   ", "\n"], ids=["unset", "empty", "spaces", "newline"])
def test_a_blank_mute_is_no_mute(value):
    assert mute_until(value, variable=VARIABLE) is None


@pytest.mark.parametrize("value", ["tomorrow", "28/11/2026 18:00", "2026-13-01T00:00:00", "1"])
def test_a_garbled_mute_names_the_variable_and_the_expected_form(value):
    with pytest.raises(ValueError, match=rf"Variable '{VARIABLE}' must be an ISO date-time") as raised:
        mute_until(value, variable=VARIABLE)
    assert repr(value) in str(raised.value)


# --- a run older than the last evaluation (issue 17, item 1) -------------------------------------


@pytest.mark.parametrize("hours_back", [3, 0.25], ids=["3-hours-back", "one-run-back"])
def test_a_run_older_than_the_last_evaluation_neither_posts_nor_moves_the_state(hours_back, run, rule):
    state = opened(WARNING, rule)  # open since T0, evaluated at T0
    _, state = run(state, 3, minutes(15))
    decision, after = run(state, 0, minutes(15) - timedelta(hours=hours_back))
    assert (decision.kind, decision.notify, after) == (Kind.NONE, False, state)
    assert "older than the last evaluation (09:15 UTC)" in decision.reason
    assert "It would have said RESOLVED" in decision.reason


def test_an_old_run_opens_no_incident_for_its_old_window(run, rule):
    _, state = run(State(), 1, T0)  # a healthy run: no incident, but evaluated
    decision, after = run(state, 5, T0 - timedelta(hours=3))
    assert decision.kind is Kind.NONE and after == state
    assert "It would have said ALERT" in decision.reason


def test_every_evaluation_remembers_its_run_time(run, rule):
    _, state = run(State(), 1, T0)
    _, opened_state = run(state, 3, minutes(15))
    _, resolved = run(opened_state, 0, minutes(30))
    evaluated = [state.evaluated_at, opened_state.evaluated_at, resolved.evaluated_at]
    assert evaluated == [T0, minutes(15), minutes(30)]
    retry, after = run(state, 3, T0)
    assert retry.kind is Kind.ALERT and after.open, "a retry of the latest run is not older"


# --- CRITICAL on the schedule alone (issue 17, item 2) -------------------------------------------


def test_every_scheduled_run_of_the_window_cleaning_up_is_critical():
    state, kinds = State(), []
    for count, at in enumerate((0, 15, 30, 45), 1):  # one cleanup per scheduled run: the window holds 4
        decision, state = run(state, count, minutes(at))
        kinds.append((decision.kind, decision.severity))
    assert kinds[2:] == [(Kind.ALERT, WARNING), (Kind.ESCALATION, CRITICAL)]


@pytest.mark.parametrize(
    ("config", "unreachable"),
    [
        (PolicyConfig(), ()),
        (PolicyConfig(critical_threshold=5), ("critical_threshold 5",)),
        (PolicyConfig(3, 5, window_minutes=75), ()),
        (PolicyConfig(3, 5, window_minutes=61), ()),  # (T − 61, T] holds five runs
        (PolicyConfig(2, 3, window_minutes=15), ("warning_threshold 2", "critical_threshold 3")),
    ],
    ids=["defaults", "critical-5", "75-min-window", "61-min-window", "15-min-window"],
)
def test_a_threshold_the_window_cannot_reach_on_the_schedule_is_named(config, unreachable):
    notes = config.unreachable()
    assert [" ".join(note.split()[:2]) for note in notes] == list(unreachable)
    for note in notes:
        assert f"the {config.window_minutes}-minute window holds" in note


# --- getting worse inside an open incident (issue 17, item 3) ------------------------------------


def test_more_cleanups_than_any_message_told_are_said_at_once_inside_the_cooldown(run, rule):
    state = opened(CRITICAL, rule)  # CRITICAL at 4
    same, state = run(state, 4, minutes(15))
    worse, state = run(state, 6, minutes(20))  # manual runs add cleanups
    again, state = run(state, 6, minutes(30))
    lower_then_back, state = run(state, 5, minutes(45))
    assert same.kind is Kind.NONE
    assert (worse.kind, worse.severity, worse.notify) == (Kind.WORSENING, CRITICAL, True)
    assert worse.worse == "6 cleanups in the window, up from 4"
    assert state.last_notified_at == minutes(20), "it resets the cooldown"
    assert again.kind is lower_then_back.kind is Kind.NONE


def test_twice_the_batches_of_any_message_is_worse_and_one_becoming_two_is_not(run, rule):
    events = {"e1": ["b1"], "e2": ["b2"], "e3": ["b3"], "e4": ["b4"]}
    _, state = run(State(), 4, T0, events=events)  # told: 4 batches
    assert state.told_batches == 4
    assert run(state, 4, minutes(15), events=events, auto_completed=7)[0].kind is Kind.NONE  # less than twice
    worse, _ = run(state, 4, minutes(15), events=events, auto_completed=8)
    assert (worse.kind, worse.worse) == (Kind.WORSENING, "8 batches auto-completed in the window, up from 4")
    _, one_told = run(State(), 3, T0)  # one batch becoming two is not worse
    assert run(one_told, 3, minutes(15), events={"e": ["x"]}, auto_completed=2)[0].kind is Kind.NONE


def test_a_state_written_before_worsening_existed_is_not_worse_at_once():
    stored = {**opened(CRITICAL).to_dict(), "peak_count": 5}
    for field in ("told_count", "told_batches"):
        del stored[field]
    assert run(State.from_dict(stored), 5, minutes(15))[0].kind is Kind.NONE


# --- a bounded state (issue 17, item 4) --------------------------------------------------------

LONG = 500


def long_id(run_index: int, which: int) -> str:
    return f"{run_index:06d}-{which}-" + "x" * (LONG - 9)


def thirty_day_incident(*, muted_until: int = 0) -> tuple[list[State], list[dict]]:
    """An incident open for 30 days: every run cleans up two new batches of 500-character ids; the
    runs before index `muted_until` are muted."""
    state, states, records = State(), [], []
    window: dict[str, list[str]] = {}
    for index in range(30 * 96):
        at = T0 + timedelta(minutes=15 * index)
        window = {f"e{index:05d}": [long_id(index, 1), long_id(index, 2)], **dict(list(window.items())[:3])}
        decision, after = run(state, 4, at, events=window, muted=index < muted_until)
        if record := incident_record(DAG_ID, decision, state, after, at):
            records.append(record)
        states.append(after)
        state = after
    return states, records


def test_the_state_and_the_incident_stay_under_64_kib_for_a_30_day_incident_with_long_ids():
    states, records = thirty_day_incident(muted_until=30 * 96 - 4)
    last = states[-1]
    assert (last.open, last.total_cleanups, last.batch_count) == (True, 30 * 96, 2 * 30 * 96)
    assert max(firestore_size(state.to_dict()) for state in states) < 64 * 1024
    assert max(firestore_size(record) for record in records) < 64 * 1024
    assert records[-1]["batch_count"] > 2 * 29 * 96  # as of the incident's last message
    held = states[-5].muted  # a month of muted reminders
    assert len(held) == 20 and held[0].endswith(" earlier messages") and int(held[0].split()[0]) > 700


def test_batches_are_named_once_even_after_thousands():
    states, _ = thirty_day_incident()
    index, told = next(
        (i, s) for i, s in reversed(list(enumerate(states))) if s.last_notified_at == s.evaluated_at
    )
    events = {"again": [long_id(index, 1)], "new": ["fresh"]}
    decision, _ = run(told, 4, told.evaluated_at + timedelta(hours=1), events=events)
    assert (decision.kind, decision.new_batch_ids) == (Kind.REMINDER, ("fresh",))


def test_a_state_written_with_the_old_unbounded_lists_still_loads():
    # fmt: off
    old = {
        "open": True, "severity": "CRITICAL", "peak_severity": "CRITICAL", "opened_at": T0, "muted": [],
        "last_notified_at": T0, "last_count": 5, "peak_count": 6, "notifications": 9, "version": 41,
        "reported_batch_ids": [f"batch-{i}" + "y" * 500 for i in range(2_000)],
        "unreported_batch_ids": [f"new-{i}" for i in range(300)],
        "event_ids": [f"{i:040d}" for i in range(3_000)],
    }
    # fmt: on
    state = State.from_dict(old)
    assert (state.total_cleanups, state.batch_count, state.told_count) == (3_000, 2_300, 6)
    assert len(state.unreported_batch_ids) + state.unreported_more == 300
    assert firestore_size(state.to_dict()) < 64 * 1024
    decision, _ = run(state, 5, minutes(90), events={"e": ["batch-1999" + "y" * 500, "new-7", "brand-new"]})
    assert decision.kind is Kind.REMINDER and decision.new_batch_count == 301
    assert len(decision.new_batch_ids) == 100  # the first to show; the message says "+201 more"


# fmt: off
GARBAGE = [
    ("open", "yes"), ("opened_at", "last tuesday"), ("opened_at", 17), ("last_count", "3"), ("muted", [1, 2]),
    ("peak_count", -1), ("total_cleanups", True), ("event_ids", "e1,e2"), ("severity", 3),
    ("evaluated_at", {"seconds": 1}),
]
# fmt: on


@pytest.mark.parametrize(("field", "garbage"), GARBAGE)
def test_a_field_of_the_wrong_type_is_logged_by_name_and_dropped(field, garbage, caplog):
    stored = {**opened(WARNING).to_dict(), field: garbage}
    with caplog.at_level("WARNING"):
        state = State.from_dict(stored)
    assert getattr(state, field) == getattr(State(), field)
    assert repr(field) in caplog.text


def test_a_decisions_lists_are_capped_and_say_how_many_there_are():
    decision, _ = run(State(), 200, T0, events={f"e{i}": [long_id(i, 1), long_id(i, 2)] for i in range(200)})
    assert decision.batch_count == 400 and len(decision.batch_ids) < 400
    assert firestore_size(list(decision.batch_ids)) <= 8_192


# --- the muted note (issue 17, item 5) -------------------------------------------------------------


def test_the_muted_note_gives_the_time_as_people_read_it():
    _, state = run(State(), 3, datetime(2026, 3, 2, 14, 39, 30, tzinfo=UTC), muted=True)
    assert state.muted == ("ALERT WARNING at 14:39 UTC",)
