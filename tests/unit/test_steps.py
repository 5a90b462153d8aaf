"""The DAG's task steps without Airflow running: an in-memory store and coordinator stand in for the
hooks (the real hooks are tested against the emulator and the stand-ins in tests/integration)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batch_cleanup import steps
from batch_cleanup.compat import AirflowFailException, AirflowSkipException
from batch_cleanup.events import event_id
from batch_cleanup.monitoring import RunFigures
from batch_cleanup.names import NO_ALERT, SEND_ALERT, SEND_RESOLVED
from batch_cleanup.params import dag_params
from batch_cleanup.policy import Evaluation
from batch_cleanup.rules import RateRule
from tests.support.memory_store import MemorySlack, MemoryStore

DAG, RUN = "stalled_batch_cleanup", "scheduled__2026-03-01T12:00:00+00:00"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PARAMS = {name: param.value for name, param in dag_params().items()}
SUMMARY = {"batches_checked": 7, "stalled_count": 1}  # what check_stalled hands on


class Coordinator:
    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.results, self.calls = results, []

    def check_stalled(self, **call):
        self.calls.append(call)
        return {"results": self.results, "batches_checked": len(self.results), "batches_completed": 0}


def check(**stalled: bool) -> tuple[Coordinator, dict[str, Any]]:
    """check_stalled on a coordinator that answers `batch_id=was_stalled` for each batch."""
    coordinator = Coordinator([{"batch_id": b, "was_stalled": was} for b, was in stalled.items()])
    return coordinator, steps.check_stalled(coordinator, PARAMS, dag_id=DAG, run_id=RUN)


def seed(store: MemoryStore, *minutes_ago: float) -> None:
    for i, minutes in enumerate(minutes_ago):
        store.events[f"seeded-{i}"] = {"timestamp": NOW - timedelta(minutes=minutes), "batch_ids": [f"b{i}"]}


def evaluate(store: MemoryStore, mute=None, run_after=NOW, recorded=False, **params) -> dict[str, Any]:
    params = {**PARAMS, **params}
    return steps.evaluate(store, params, dag_id=DAG, run_after=run_after, mute_value=mute, recorded=recorded)


def opened(store: MemoryStore, **kwargs) -> dict[str, Any]:
    """Three cleanups in the window: a WARNING alert, decided on a closed state (version 0)."""
    seed(store, 30, 20, 10)
    return evaluate(store, **kwargs)


def record(store: MemoryStore, evaluation, outcome, run_after=NOW, **params) -> str:
    run_id, params = f"scheduled__{run_after.isoformat()}", {**PARAMS, **params}  # RUN at NOW
    return steps.record_state(
        store, SUMMARY, evaluation, outcome, params, dag_id=DAG, run_id=run_id, run_after=run_after
    )


def send(store, evaluation, slack, posts=None, **params):
    return steps.send(
        store, {"stalled_count": 1}, evaluation, {**PARAMS, **params}, dag_id=DAG, run_id=RUN,
        base_url="https://airflow.example.com", slack=slack, now=NOW, posts=posts,
    )  # fmt: skip


def test_check_stalled_sends_the_params_and_the_runs_idempotency_key():
    coordinator, summary = check(b1=True, b2=False)
    assert coordinator.calls == [
        {"stall_threshold_minutes": 10, "min_completion_pct": 90, "idempotency_key": f"{DAG}/{RUN}"}
    ]
    assert summary["stalled_batch_ids"] == ["b1"] and summary["batches_checked"] == 2


@pytest.mark.parametrize(
    ("params", "refused"),
    [
        ({"critical_threshold": 3}, r"critical_threshold \(3\) must be greater"),
        ({"alert_rule": "burn-rate"}, "alert_rule must be one of count, burn_rate, got 'burn-rate'"),
        ({"alert_rule": "burn_rate", "rate_objective_pct": 20}, "rate_objective_pct 20 cannot work"),
        ({"alert_rule": "burn_rate", "rate_objective_pct": 0}, "rate_objective_pct must be a number above 0"),
    ],
    ids=["critical-not-above-warning", "unknown-rule", "objective-too-high", "objective-zero"],
)
def test_params_that_cannot_work_fail_before_the_coordinator_is_called(params, refused):
    coordinator = Coordinator([])
    with pytest.raises(steps.InvalidParams, match=refused) as raised:
        steps.check_stalled(coordinator, {**PARAMS, **params}, dag_id=DAG, run_id=RUN)
    assert isinstance(raised.value, AirflowFailException), "no retry of a manual mistake"
    assert str(raised.value).endswith("Nothing was done and nothing posted to Slack.")
    assert coordinator.calls == []


def test_an_objective_the_rate_rule_cannot_use_is_fine_under_the_count_rule():
    coordinator = Coordinator([])
    steps.check_stalled(
        coordinator, {**PARAMS, "alert_rule": "count", "rate_objective_pct": 50}, dag_id=DAG, run_id=RUN
    )
    assert len(coordinator.calls) == 1


def test_record_event_is_skipped_when_nothing_stalled():
    with pytest.raises(AirflowSkipException):
        steps.record_event(MemoryStore(), check(b=False)[1], PARAMS, dag_id=DAG, run_id=RUN, run_after=NOW)


def test_record_event_stamps_the_run_time_and_writes_once_per_run_and_stalled_set():
    store, (_, summary) = MemoryStore(), check(b1=True)
    first = steps.record_event(store, summary, PARAMS, dag_id=DAG, run_id=RUN, run_after=NOW)
    again = steps.record_event(store, summary, PARAMS, dag_id=DAG, run_id=RUN, run_after=NOW)
    assert first == again == event_id(DAG, RUN, summary["fingerprint"])
    [event] = store.events.values()
    assert event["timestamp"] == NOW and event["expire_at"] == NOW + timedelta(days=30)


def test_a_healthy_run_reads_no_event_documents_and_costs_one_write_its_record():
    store = MemoryStore()
    seed(store, 5)
    store.writes = 0
    evaluation = evaluate(store)
    assert evaluation["decision"]["kind"] == "none"
    assert store.reads == [], "below the threshold with no open incident, only the count is asked"
    assert steps.choose_alert(evaluation) == NO_ALERT
    assert record(store, evaluation, None) == "State unchanged."
    assert store.writes == 1 and store.state == {} and store.incidents == {}
    [(document_id, document)] = store.runs.items()
    assert document_id == f"{DAG}-20260301T120000Z-{hashlib.sha256(RUN.encode()).hexdigest()[:8]}"
    assert document == {
        "dag_id": DAG,
        "run_id": RUN,
        "run_after": NOW,
        "batches_checked": 7,
        "stalled_count": 1,
        "kind": "none",
        "severity": None,
        "expire_at": NOW + timedelta(days=90),
        "recorded_at": document["recorded_at"],
    }
    assert store.last_evaluation(DAG).run_after == NOW, "the record says when the incident was evaluated"


def test_three_cleanups_in_the_window_open_a_warning_and_the_run_of_an_hour_ago_is_out():
    store = MemoryStore()
    seed(store, 60, 40, 20, 0)
    evaluation = evaluate(store)
    decision = evaluation["decision"]
    assert (decision["kind"], decision["severity"], decision["count"]) == ("alert", "WARNING", 3)
    assert sorted(decision["batch_ids"]) == ["b1", "b2", "b3"]
    assert evaluation["state"]["open"] is True and evaluation["version"] == 0
    assert steps.choose_alert(evaluation) == SEND_ALERT


@pytest.mark.parametrize(
    ("mute", "suppressed"),
    [
        ((NOW + timedelta(hours=1)).isoformat(), True),
        ("tomorrow", False),
        ((NOW - timedelta(minutes=1)).isoformat(), False),
    ],
    ids=["future", "typo", "past"],
)
def test_a_silence_in_the_future_suppresses_the_message_but_tracks_the_incident_others_stay_loud(
    mute, suppressed
):
    evaluation = opened(MemoryStore(), mute=mute)
    assert (evaluation["decision"]["suppressed"], evaluation["state"]["open"]) == (suppressed, True)
    assert steps.choose_alert(evaluation) == (NO_ALERT if suppressed else SEND_ALERT)


def test_force_alert_decides_a_test_message_and_keeps_the_state():
    evaluation = evaluate(MemoryStore(), force_alert=True)
    assert evaluation["decision"]["kind"] == "test"
    assert evaluation["state"] == evaluation["before"]
    assert steps.choose_alert(evaluation) == SEND_ALERT


def test_an_open_incidents_evaluation_crosses_xcom_whole_and_its_recovery_goes_to_send_resolved():
    store = MemoryStore()
    record(store, opened(store), "sent")
    evaluation = evaluate(store)  # a state with times, tuples and a decision of every field
    pulled = Evaluation.from_xcom(json.loads(json.dumps(evaluation)))  # what the next task reads
    assert pulled == Evaluation.from_xcom(evaluation) and pulled.to_xcom() == evaluation
    assert pulled.before.opened_at == NOW and pulled.state.open and pulled.version == 1
    store.events.clear()
    assert steps.choose_alert(evaluate(store)) == SEND_RESOLVED


class Variable:
    """Airflow's record of the last accepted post (hooks.posted.AirflowPostRecord), in memory;
    `broken` makes its write fail as an unreachable metadata database would."""

    def __init__(self, broken: bool = False) -> None:
        self.value: dict[str, str] | None = None
        self.broken = broken

    def get(self, dag_id: str) -> dict[str, str] | None:
        return self.value

    def put(self, dag_id: str, posted: dict[str, str]) -> None:
        if self.broken:
            raise ConnectionError("metadata database unreachable")
        self.value = posted


def test_a_failed_airflow_record_after_slack_accepted_neither_fails_nor_loses_the_post(caplog):
    store, slack = MemoryStore(), MemorySlack()
    with caplog.at_level("ERROR"):
        assert send(store, opened(store), slack, posts=Variable(broken=True)) == "sent"
    assert len(slack.messages) == 1
    assert "Could not record the accepted alert in Airflow's metadata" in caplog.text
    assert store.state["posted"]["run_id"] == RUN, "Firestore's record is still written"


def test_a_retry_that_finds_only_airflows_record_posts_nothing_and_writes_firestores():
    store, slack, variable = MemoryStore(), MemorySlack(), Variable()
    evaluation = opened(store)
    store.lease = RUN  # the first try holds the lease; its Firestore record met an outage
    variable.put(DAG, {"run_id": RUN, "kind": "alert"})
    assert send(store, evaluation, slack, posts=variable) == "sent"
    assert slack.messages == [], "the retry must not post the alert a second time"
    assert store.state["posted"] == {"run_id": RUN, "kind": "alert"}


def test_send_posts_once_and_links_the_run():
    store, slack = MemoryStore(), MemorySlack()
    assert send(store, opened(store), slack) == "sent"
    [message] = slack.messages
    assert message.text.startswith("WARNING: systemic batch stalls")
    assert "https://airflow.example.com/dags/stalled_batch_cleanup/runs/" in message.text
    assert store.lease == RUN


@pytest.mark.parametrize(
    ("lease", "params", "outcome"),
    [("another-run", {}, "skipped"), (None, {"notify": False}, "rendered")],
    ids=["another-run-holds-the-lease", "notify-false"],
)
def test_send_posts_nothing_when_another_run_holds_the_lease_or_notify_is_false(lease, params, outcome):
    store, slack = MemoryStore(), MemorySlack()
    store.lease = lease
    assert (send(store, opened(store), slack, **params), slack.posts, store.lease) == (outcome, [], lease)


def test_a_failed_post_gives_the_lease_back_and_fails():
    store, slack = MemoryStore(), MemorySlack()
    slack.refuse = RuntimeError("Slack is down")
    with pytest.raises(RuntimeError, match="Slack is down"):
        send(store, opened(store), slack)
    assert store.lease is None, "the next try or run may post at once"


def test_record_state_saves_what_was_sent_with_its_incident():
    store = MemoryStore()
    assert record(store, opened(store), "sent") == "State saved: open, WARNING."
    assert store.state["open"] is True and store.state["version"] == 1
    [incident] = store.incidents.values()
    assert incident["severity"] == "WARNING" and incident["notifications"] == 1


UNTOUCHED = "State untouched (force_alert or notify=false)."
CHANGED = "State left as another run wrote it: the state changed since this run decided (version 0 → 4)."


@pytest.mark.parametrize(
    ("outcome", "params", "before", "said"),
    [
        ("skipped", {}, {}, "State unchanged: the alert was not posted by this run (skipped)."),
        (None, {}, {}, "State unchanged: the alert was not posted by this run (None)."),
        ("rendered", {"notify": False}, {}, UNTOUCHED),
        ("sent", {"force_alert": True}, {}, UNTOUCHED),
        ("sent", {}, {"open": True, "version": 4}, CHANGED),
    ],
    ids=["another-run-posted", "send-did-not-run", "notify-false", "force-alert", "another-run-wrote-since"],
)
def test_record_state_leaves_the_state_unless_this_run_delivered_on_the_state_it_decided_on(
    outcome, params, before, said
):
    store = MemoryStore()
    evaluation = opened(store)
    store.state = dict(before)
    assert record(store, evaluation, outcome, **params) == said
    assert store.state == before and store.incidents == {}


@pytest.mark.parametrize(
    ("summary", "outcome", "params", "figures"),
    [
        (SUMMARY, "sent", {}, RunFigures(DAG, NOW, 7, 1, 3, 1, 0, "alert", "WARNING")),
        (SUMMARY, None, {}, RunFigures(DAG, NOW, 7, 1, 3, 0, 1, "alert", "WARNING")),
        (SUMMARY, "skipped", {}, RunFigures(DAG, NOW, 7, 1, 3, 0, 0, "alert", "WARNING")),
        (SUMMARY, "rendered", {"notify": False}, RunFigures(DAG, NOW, 7, 1, 3, 0, 0, "alert", "WARNING")),
        (None, None, {}, RunFigures(DAG, NOW)),
    ],
    ids=["sent", "send-failed", "another-run-sent-it", "notify-false", "the-check-failed"],
)
def test_a_message_counts_as_failed_only_when_it_was_due_and_no_send_said_what_became_of_it(
    summary, outcome, params, figures
):
    """A figure a failed check never learnt is left unknown (None)."""
    evaluation = opened(MemoryStore()) if summary else None
    said = steps.run_figures(summary, evaluation, outcome, {**PARAMS, **params}, dag_id=DAG, end_time=NOW)
    assert said == figures


# --- the coordinator's own tracking, before the cutover -------------------------------------------


def legacy(store: MemoryStore, name: str, at: datetime, ids: list[str]) -> None:
    """An event as the coordinator's `_track_batch_cleanup_event()` writes it: no dag_id."""
    store.events[name] = {"timestamp": at, "batch_ids": ids, "stalled_count": len(ids), "results": []}


def test_events_the_coordinator_wrote_before_the_cutover_are_counted():
    store = MemoryStore()
    for minutes, batch_id in [(40, "x1"), (25, "x2"), (10, "x3")]:
        legacy(store, f"old-{batch_id}", NOW - timedelta(minutes=minutes), [batch_id])
    decision = evaluate(store)["decision"]
    assert (decision["kind"], decision["count"], decision["double_recorded"]) == ("alert", 3, 0)


def test_a_cleanup_recorded_by_both_counts_once_and_the_message_says_why(caplog):
    store = MemoryStore()
    store.events["dag-1"] = {"timestamp": NOW - timedelta(minutes=15), "batch_ids": ["d1"], "dag_id": DAG}
    legacy(store, "copy-1", NOW - timedelta(minutes=15) + timedelta(seconds=4), ["d1"])
    legacy(store, "old-2", NOW - timedelta(minutes=30), ["x2"])
    legacy(store, "old-3", NOW - timedelta(minutes=45), ["x3"])
    with caplog.at_level("WARNING"):
        evaluation = evaluate(store)
    decision = evaluation["decision"]
    assert (decision["kind"], decision["count"], decision["double_recorded"]) == ("alert", 3, 1)
    assert "recorded by the coordinator too: its own tracking is still on" in caplog.text
    decided = Evaluation.from_xcom(evaluation).decision
    message = steps.message_for({"stalled_count": 0}, decided, PARAMS, run_url="https://a/run", run_id="r")
    assert "1 cleanup was also recorded by the coordinator's own tracking" in message.text


def test_a_run_that_recorded_a_cleanup_looks_for_the_coordinators_copy_of_it(caplog):
    store = MemoryStore()
    store.events["dag-now"] = {"timestamp": NOW, "batch_ids": ["n1"], "dag_id": DAG}
    legacy(store, "copy-now", NOW + timedelta(seconds=3), ["n1"])
    with caplog.at_level("WARNING"):
        decision = evaluate(store, recorded=True)["decision"]
    assert store.reads == ["events_in"]
    assert (decision["count"], decision["double_recorded"]) == (1, 1)
    assert "copy-now" in caplog.text


# --- clearing an old run (issue 17, item 1) ---------------------------------------------------------


def test_an_old_run_cleared_while_an_incident_is_open_neither_posts_nor_moves_it():
    store, slack = MemoryStore(), MemorySlack()
    evaluation = opened(store)
    assert send(store, evaluation, slack) == "sent"
    record(store, evaluation, "sent")
    state = dict(store.state)
    three_hours_ago = NOW - timedelta(hours=3)
    old = evaluate(store, run_after=three_hours_ago)
    assert old["decision"]["kind"] == "none" and steps.choose_alert(old) == NO_ALERT
    assert "It would have said RESOLVED" in old["decision"]["reason"]
    assert record(store, old, None, run_after=three_hours_ago) == "State unchanged."
    assert store.state == state and len(slack.posts) == 1


def test_clearing_only_the_send_task_of_an_old_run_posts_nothing():
    """The old run's decision was made on a state that later runs have moved on since."""
    store, slack = MemoryStore(), MemorySlack()
    old = opened(store)  # an ALERT whose send failed for good
    store.events.clear()
    later = NOW + timedelta(minutes=15)
    record(store, evaluate(store, run_after=later), None, run_after=later)  # a healthy run after it
    assert send(store, old, slack) == "skipped"
    assert slack.posts == []


# --- run records: a healthy run saves no state; the newest record says when it was evaluated ------


def later(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


def quiet_run(store: MemoryStore, run_after: datetime, **params) -> str:
    """A whole healthy run at `run_after`: evaluate, nothing to post, record_state."""
    evaluation = evaluate(store, run_after=run_after, **params)
    return record(store, evaluation, None, run_after=run_after, **params)


def test_an_old_run_after_a_newer_healthy_run_posts_nothing_though_the_state_was_not_saved():
    store = MemoryStore()
    quiet_run(store, later(30))
    assert store.state == {} and store.last_evaluation(DAG).run_after == later(30)
    old = evaluate(store, run_after=later(15))
    assert "this run (12:15 UTC) is older than the last evaluation (12:30 UTC)" in old["decision"]["reason"]
    assert record(store, old, None, run_after=later(15)) == "State unchanged."
    assert store.state == {} and len(store.runs) == 2, "the old run is recorded too"
    assert store.last_evaluation(DAG).run_after == later(30)


def test_an_old_run_that_decided_before_a_newer_run_recorded_saves_nothing_after_it():
    """The old run evaluated first (a muted WARNING: its state moves with no post, so no lease); a
    newer, healthy run then evaluated and recorded without a save; the old save must not land after it."""
    store = MemoryStore()
    old = opened(store, mute=later(60).isoformat())
    assert old["decision"]["suppressed"] and old["state"]["open"]
    quiet_run(store, later(90))
    said = record(store, old, None)
    assert said == (
        "State left as another run wrote it: this run (2026-03-01 12:00:00 UTC) is older than the last "
        "evaluation (2026-03-01 13:30:00 UTC)."
    )
    assert store.state == {}, "the old run's state was not saved"


@pytest.mark.parametrize(
    "params", [{"force_alert": True}, {"notify": False}], ids=["force-alert", "notify-false"]
)
def test_a_test_run_is_recorded_as_a_test_and_makes_no_older_run_stale(params):
    store, slack = MemoryStore(), MemorySlack()
    old = opened(store)  # an ALERT at NOW, its send retried after a test run at 12:05
    tested = evaluate(store, run_after=later(5), **params)
    assert record(store, tested, "sent", run_after=later(5), **params) == UNTOUCHED
    [document] = store.runs.values()
    assert (document["kind"], document["severity"], document["run_after"]) == ("test", None, later(5))
    assert store.last_evaluation(DAG) is None and store.state == {}
    assert send(store, old, slack) == "sent", "the older scheduled run still posts its alert"


def test_a_retried_record_state_writes_the_same_record_once():
    store = MemoryStore()
    evaluation = evaluate(store)
    record(store, evaluation, None)
    first = dict(store.runs)
    record(store, evaluation, None)
    assert store.runs.keys() == first.keys() and len(store.runs) == 1


def unfinished(store: MemoryStore, summary, evaluation) -> str:
    return steps.record_unfinished_run(
        store, summary, evaluation, PARAMS, dag_id=DAG, run_id="scheduled__unfinished", run_after=NOW
    )


def test_a_run_whose_post_failed_for_good_is_recorded_by_the_teardown_as_record_state_would():
    store, other = MemoryStore(), MemoryStore()
    evaluation = opened(store)
    said = unfinished(store, SUMMARY, evaluation)
    steps.record_state(
        other, SUMMARY, evaluation, None, PARAMS, dag_id=DAG, run_id="scheduled__unfinished", run_after=NOW
    )
    assert said.startswith("Run recorded after record_state did not")

    def written(runs):
        return {key: {**doc, "recorded_at": None} for key, doc in runs.items()}

    assert written(store.runs) == written(other.runs) != {}, "the same document, under the same id"
    assert store.state == {}, "the state is not saved: the WARNING was not posted"


def test_a_run_that_learnt_nothing_writes_no_record_and_a_failed_write_is_logged_not_raised(caplog):
    store = MemoryStore()
    assert unfinished(store, None, None).startswith("No run record") and store.runs == {}
    assert unfinished(store, SUMMARY, None).startswith("No run record") and store.runs == {}

    class Down(MemoryStore):
        def write_run(self, document_id, document):
            raise ConnectionError("Firestore (connection 'google_cloud_default') is unreachable (write_run)")

    with caplog.at_level("WARNING"):
        said = unfinished(Down(), SUMMARY, evaluate(MemoryStore()))
    assert said.startswith("Run record not written") and "is unreachable (write_run)" in caplog.text


# --- thresholds the schedule cannot reach, and the window's batches (issue 17, items 2 and 3) -----


def test_a_threshold_the_schedule_cannot_reach_is_a_warning_in_the_log_and_the_defaults_log_none(caplog):
    with caplog.at_level("WARNING"):
        evaluate(MemoryStore())
        assert "cannot be reached" not in caplog.text
        evaluate(MemoryStore(), critical_threshold=5)
    assert "critical_threshold 5 cannot be reached on the schedule alone" in caplog.text
    assert "the 60-minute window holds 4 scheduled runs" in caplog.text


def test_the_window_counts_the_batches_each_cleanup_auto_completed_even_when_its_ids_were_cut():
    store = MemoryStore()
    seed(store, 30, 20, 10)
    store.events["seeded-2"]["stalled_count"] = 40  # its id list was cut to fit the document
    assert evaluate(store)["decision"]["auto_completed"] == 42


# --- the rate rule (issue 20) ---------------------------------------------------------------------

RATE = {"alert_rule": "burn_rate"}


def runs_before(store: MemoryStore, *per_run: tuple[int, int], dag_id: str = DAG) -> None:
    """Run records of the runs before NOW, newest first: (batches checked, auto-completed) each."""
    for i, (checked, stalled) in enumerate(per_run, 1):
        at = NOW - timedelta(minutes=15 * i)
        document = {"dag_id": dag_id, "run_id": f"r{i}", "run_after": at, "batches_checked": checked}
        store.write_run(f"{dag_id}-{i}", {**document, "stalled_count": stalled, "kind": "none"})


def rated(store: MemoryStore, checked: int, stalled: int, **params) -> dict[str, Any]:
    summary = {"batches_checked": checked, "stalled_count": stalled}
    params = {**PARAMS, **RATE, **params}
    return steps.evaluate(
        store, params, dag_id=DAG, run_after=NOW, mute_value=None, recorded=stalled > 0, summary=summary
    )


def runs_read(store: MemoryStore) -> list[tuple]:
    """The `runs_in` calls on `store` from now on."""
    calls, read = [], store.runs_in
    store.runs_in = lambda *args, **kwargs: calls.append(args) or read(*args, **kwargs)
    return calls


def test_a_healthy_run_under_the_count_rule_reads_no_run_record_and_no_event():
    store = MemoryStore()
    runs_before(store, (300, 30))
    calls = runs_read(store)
    evaluate(store)
    assert (calls, store.reads) == ([], [])


def test_under_the_rate_rule_this_runs_figures_are_the_newest_run():
    store = MemoryStore()
    runs_before(store, (300, 9), (300, 9), (300, 9))
    calls = runs_read(store)
    quiet = rated(store, 300, 0)["decision"]  # 9 of 600 over the half hour with this clean run: 1.5×
    assert (quiet["kind"], quiet["rate"]["last_checked"], quiet["rate"]["hour_checked"]) == (
        "none",
        300,
        1200,
    )
    assert (calls, store.reads) == ([(NOW - RateRule().span, NOW)], []), "the records of the span, no event"
    decision = rated(MemoryStore(), 300, 30)["decision"]  # one run, 10 %: CRITICAL on its own figures
    assert (decision["kind"], decision["severity"], decision["count"]) == ("alert", "CRITICAL", 0)
    assert decision["rate"]["words"].startswith("10.0× the 1 % objective over the last hour (30 of 300")
    assert decision["reason"].startswith(decision["rate"]["words"])


def test_under_the_rate_rule_a_record_of_this_run_is_replaced_by_its_figures_and_other_dags_ignored():
    store = MemoryStore()
    this_run = {"dag_id": DAG, "run_after": NOW, "kind": "alert", "severity": "CRITICAL"}
    store.write_run("retry", {**this_run, "batches_checked": 300, "stalled_count": 300})  # a retry's
    runs_before(store, (10, 10), dag_id="another_dag")
    decision = rated(store, 300, 1)["decision"]
    assert decision["kind"] == "none"
    assert (decision["rate"]["hour_checked"], decision["rate"]["hour_auto_completed"]) == (300, 1)


def test_under_the_rate_rule_the_count_opens_nothing_and_an_alert_still_names_the_windows_batches():
    store = MemoryStore()
    seed(store, 30, 15)
    runs_before(store, (200, 3), (200, 3))
    store.events["this-run"] = {
        "timestamp": NOW,
        "batch_ids": ["x1", "x2"],
        "stalled_count": 2,
        "dag_id": DAG,
    }
    decision = rated(store, 200, 2)["decision"]  # 5 of 400 over the half hour: 1.25×
    assert (decision["kind"], decision["count"]) == ("none", 3), (
        "3 cleanups, the count's WARNING, open nothing"
    )
    decision = rated(store, 100, 6)["decision"]  # 9 of 300 over the half hour: 3×
    assert (decision["kind"], decision["severity"], decision["count"]) == ("alert", "WARNING", 3)
    assert set(decision["batch_ids"]) == {"b0", "b1", "x1", "x2"}


def test_the_rate_rule_logs_no_unreachable_count_threshold(caplog):
    with caplog.at_level("WARNING"):
        rated(MemoryStore(), 10, 0, critical_threshold=5)
    assert "cannot be reached" not in caplog.text


def test_a_test_message_under_the_rate_rule_carries_the_reading():
    decision = rated(MemoryStore(), 300, 3, force_alert=True)["decision"]
    assert decision["kind"] == "test" and decision["rate"]["hour_factor"] == 1.0
