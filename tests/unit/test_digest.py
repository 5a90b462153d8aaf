"""The weekly digest without Airflow: its weeks in New York time, its figures from run records,
events and incidents, the message they make, and its posting once per run (in-memory store and
Slack, which obey the real hooks' contract)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batch_cleanup import digest, quality, steps
from batch_cleanup.messages import run_failed, run_overdue, task_failure
from batch_cleanup.names import DAG_ID, DIGEST_DAG_ID
from batch_cleanup.params import digest_params
from batch_cleanup.ports import RunRecord, StoredEvent
from batch_cleanup.text import duration_text
from dev.slack_sink import block_error
from tests.support.memory_store import MemorySlack, MemoryStore
from tests.unit.test_steps import Variable

# Monday 2 Nov 2026 09:00 in New York (EST, the day after the clocks went back): the week before
# holds the change, so it is 169 hours long.
END = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
START = datetime(2026, 10, 26, 13, 0, tzinfo=UTC)  # Monday 26 Oct 09:00 EDT
BASE_URL = "https://airflow.example.com"
RUN = "scheduled__2026-11-02T14:00:00+00:00"
PARAMS = {name: param.value for name, param in digest_params().items()}
HOSTILE = "<!channel> & <https://evil.example|click>"


def runs(*spec: tuple[datetime, int, int]) -> list[RunRecord]:
    """Run records of the cleanup: (run_after, batches checked, batches auto-completed)."""
    return [RunRecord(at, checked, stalled, dag_id=DAG_ID) for at, checked, stalled in spec]


def quiet_runs(start: datetime, days: int = 7, checked: int = 100) -> list[RunRecord]:
    """One run a day, each finding nothing stalled."""
    return runs(*((start + timedelta(days=d, hours=1), checked, 0) for d in range(days)))


def text_of(message) -> str:
    """Everything a reader sees: the fallback text and the blocks."""
    return message.text + "\n" + json.dumps(message.blocks, ensure_ascii=False)


def made(*, runs=(), events=(), incidents=(), end=END, base_url=BASE_URL, test=False):
    """The summary (through JSON, as XCom hands it on) and its message."""
    summary = json.loads(json.dumps(digest.summarize(runs, list(events), incidents, end=end)))
    return summary, digest.message(summary, base_url=base_url, test=test)


@pytest.mark.parametrize(
    ("end", "start", "hours"),
    [
        (END, START, 169),  # clocks back on Sunday 1 Nov
        (datetime(2026, 3, 9, 13, tzinfo=UTC), datetime(2026, 3, 2, 14, tzinfo=UTC), 167),  # forward 8 Mar
        (datetime(2026, 6, 15, 13, tzinfo=UTC), datetime(2026, 6, 8, 13, tzinfo=UTC), 168),
    ],
    ids=["fall-back-week", "spring-forward-week", "ordinary-week"],
)
def test_a_week_is_seven_new_york_days_from_monday_09_00_to_monday_09_00(end, start, hours):
    assert digest.week_start(end) == start
    assert (end - start) == timedelta(hours=hours)
    summary, message = made(end=end)
    assert (summary["start"], summary["end"]) == (start.isoformat()[:-6] + "Z", end.isoformat()[:-6] + "Z")
    assert "Mon " in message.text and "09:00 – Mon " in message.text and "New York time" in message.text


def test_a_naive_week_end_is_refused():
    with pytest.raises(ValueError, match="the week's end must be timezone-aware"):
        digest.week_start(datetime(2026, 11, 2, 9))


def test_the_weeks_bounds_exclude_the_start_and_include_the_end():
    before = digest.week_start(START)
    summary, _ = made(
        runs=runs(
            (before, 10, 1),  # the week before's start: in neither
            (before + timedelta(microseconds=1), 10, 2),
            (START, 10, 3),  # the week before's end
            (START + timedelta(microseconds=1), 10, 4),
            (END, 10, 5),
            (END + timedelta(microseconds=1), 10, 6),  # after the run's time
        )
    )
    assert summary["week"] == {"runs": 2, "cleanups": 2, "checked": 20, "auto_completed": 9}
    assert summary["before"] == {"runs": 2, "cleanups": 2, "checked": 20, "auto_completed": 5}


def test_a_quiet_week_still_gets_its_message_and_says_so():
    summary, message = made(runs=quiet_runs(START) + quiet_runs(digest.week_start(START), checked=50))
    assert summary["week"] == {"runs": 7, "cleanups": 0, "checked": 700, "auto_completed": 0}
    text = text_of(message)
    assert "No cleanups this week*: 7 runs checked 700 batches, and none needed auto-completing" in text
    assert "0.00 % of 700 batches checked, within the 1 % objective (week before: 0.00 %)" in text
    assert "None opened (week before: 0)" in text
    assert "Repeat offenders" not in text and "Busiest hours" not in text
    assert block_error(message.blocks) is None, "the Slack stand-in takes what Slack takes"


def test_a_week_without_any_run_record_says_the_cleanup_may_not_be_running():
    _, message = made()
    assert "No cleanups this week, and no run of the cleanup recorded either" in message.text
    assert f"check that `{DAG_ID}` is running" in message.text
    assert "rate" not in message.text, "no rate without batches checked"


@pytest.mark.parametrize(
    ("auto_completed", "checked", "said"),
    [
        (30, 7100, "0.42 % of 7,100 batches checked, within the 1 % objective"),
        (100, 10_000, "1.00 % of 10,000 batches checked, within the 1 % objective"),
        (240, 10_000, "2.40 % of 10,000 batches checked, 2.4× the 1 % objective"),
        (1, 3, "33.33 % of 3 batches checked, 33.3× the 1 % objective"),
    ],
    ids=["below", "at-the-objective", "above", "far-above"],
)
def test_the_rate_is_batches_auto_completed_per_hundred_checked_against_the_objective(
    auto_completed, checked, said
):
    at = START + timedelta(hours=2)
    week = runs((at, checked, auto_completed))
    _, message = made(runs=week)
    assert f"{said} (week before: no batches checked)" in message.text
    assert "*Cleanups:* 1 (week before: 0)" in message.text
    assert f"*Batches auto-completed:* {auto_completed:,} (week before: 0)" in message.text


def test_the_rate_sums_every_run_of_the_week_not_only_those_that_cleaned_up():
    week = runs(*((START + timedelta(hours=h), 250, 0) for h in range(1, 40)), (END, 250, 25))
    summary, message = made(runs=week)
    assert digest.rate_pct(summary["week"]) == pytest.approx(100 * 25 / (40 * 250))
    assert "0.25 % of 10,000 batches checked" in message.text


def test_busiest_hours_are_new_york_hours_on_both_sides_of_the_dst_change():
    week = runs(
        (datetime(2026, 10, 27, 22, tzinfo=UTC), 10, 1),  # 18:00 EDT
        (datetime(2026, 11, 1, 23, tzinfo=UTC), 10, 1),  # 18:00 EST
        (datetime(2026, 11, 1, 23, 30, tzinfo=UTC), 10, 2),  # 18:30 EST
        (datetime(2026, 10, 28, 11, tzinfo=UTC), 10, 1),  # 07:00 EDT
        (datetime(2026, 10, 29, 3, tzinfo=UTC), 10, 1),  # 23:00 EDT
        (datetime(2026, 10, 29, 4, tzinfo=UTC), 10, 0),  # a run that cleaned up nothing
        (datetime(2026, 10, 30, 11, 15, tzinfo=UTC), 10, 1),  # 07:15 EDT
    )
    summary, message = made(runs=week)
    assert summary["busiest_hours"] == [[18, 3], [7, 2], [23, 1]]
    assert "18:00–19:00: 3 cleanups" in message.text and "23:00–00:00: 1 cleanup" in message.text


def test_repeat_offenders_are_the_batches_auto_completed_most_often_in_the_week():
    at = START + timedelta(hours=1)
    events = [
        StoredEvent(f"e{n}", at + timedelta(hours=n), ids)
        for n, ids in enumerate([["b-1", "b-2"], ["b-1"], ["b-1", "b-3"], ["b-3"], ["b-4"]])
    ]
    summary, message = made(runs=runs((at, 10, 1)), events=events)
    assert summary["offenders"] == [["b-1", 3], ["b-3", 2]] and summary["offender_count"] == 2
    assert "`b-1` 3 times" in message.text and "`b-3` 2 times" in message.text
    assert "b-4" not in message.text and "b-2" not in message.text, "once is no repeat"


def test_only_the_top_offenders_are_named_and_the_rest_counted():
    at = START + timedelta(hours=1)
    events = [StoredEvent(f"e{n}", at, [f"b-{i}" for i in range(8)]) for n in range(2)]
    summary, message = made(events=events)
    assert len(summary["offenders"]) == digest.TOP_OFFENDERS
    assert "+3 more" in message.text


def incident(
    opened: datetime, *, hours: float | None, label: str | None = None, source: str = "page", **fields: Any
) -> dict:
    document = {"dag_id": DAG_ID, "opened_at": opened, "severity": "WARNING", "peak_severity": "WARNING"}
    if hours is not None:
        document["closed_at"] = opened + timedelta(hours=hours)
    if label is not None:
        document["label"] = {"value": label, "source": source, "by": ["U1"], "at": opened, "note": None}
    return {**document, **fields}


def test_a_week_with_labelled_incidents_lists_each_with_its_label_then_what_the_labels_say():
    opened = START + timedelta(days=1)
    incidents = [
        incident(opened, hours=1.5, label="real", peak_severity="CRITICAL", total_cleanups=6),
        incident(opened + timedelta(days=1), hours=0.5, label="noise", source="reactions", total_cleanups=3),
        incident(opened + timedelta(days=2), hours=2.5, label="real", total_cleanups=4),
        incident(opened + timedelta(days=3), hours=None, total_cleanups=3),  # still open, no label
        incident(digest.week_start(START) + timedelta(days=2), hours=1, label="noise"),  # the week before
    ]
    _, message = made(runs=runs((opened, 10, 1)), incidents=incidents)
    text = text_of(message)
    assert "*4 incidents opened* (week before: 1)" in text
    assert [line[2:] for line in message.text.splitlines() if ", opened " in line] == [
        "CRITICAL, opened Tue 27 Oct 09:00, resolved after 1 h 30 min, 6 cleanups: "
        "labelled *real* (on the history page)",
        "WARNING, opened Wed 28 Oct 09:00, resolved after 30 min, 3 cleanups: "
        "labelled *noise* (by reactions in Slack)",
        "WARNING, opened Thu 29 Oct 09:00, resolved after 2 h 30 min, 4 cleanups: "
        "labelled *real* (on the history page)",
        "WARNING, opened Fri 30 Oct 09:00, still open, 3 cleanups: not labelled",
    ]
    figures = quality.figures(incidents, start=START, end=END)["total"]
    assert (figures["incidents"], figures["labelled"], figures["real"]) == (4, 3, 2), "only this week's"
    assert f"*Labels:* {figures['said']}; precision 67 % (95 % interval " in text
    low, high = (round(100 * figures["precision"][key]) for key in ("low", "high"))
    assert f"interval {low}–{high} %)" in text
    resolve = figures["resolve_minutes"]
    said = f"median {duration_text(resolve['median'] * 60)}, p90 {duration_text(resolve['p90'] * 60)}"
    assert f"*Time to resolve:* {said}" in text and resolve["median"] == 90
    assert block_error(message.blocks) is None


def test_more_incidents_than_listed_are_counted():
    opened = [incident(START + timedelta(hours=h), hours=1) for h in range(1, 14)]
    summary, message = made(incidents=opened)
    assert len(summary["incidents"]) == digest.MAX_LISTED_INCIDENTS and summary["incident_count"] == 13
    assert "+3 more" in message.text and "*13 incidents opened*" in message.text


def test_every_string_from_the_store_is_escaped_for_mrkdwn():
    at = START + timedelta(hours=3)
    hostile_label = {"value": HOSTILE, "source": HOSTILE, "by": [HOSTILE], "at": at, "note": HOSTILE}
    incidents = [incident(at, hours=1, peak_severity=HOSTILE, label=None) | {"label": hostile_label}]
    events = [StoredEvent(f"e{n}", at, [HOSTILE, "x" * 300]) for n in range(2)]
    _, message = made(runs=runs((at, 10, 2)), events=events, incidents=incidents)
    text = text_of(message)
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in text
    assert "x" * 101 not in text, "a long id is cut"


@pytest.mark.parametrize(
    ("base_url", "linked"),
    [(BASE_URL, True), (BASE_URL + "/", True), ("", False), (None, False), ("/airflow", False)],
)
def test_the_history_page_is_linked_only_from_an_absolute_base_url(base_url, linked):
    _, message = made(base_url=base_url)
    history = f"{BASE_URL}/batch-cleanup/"
    buttons = [e["url"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ([history] if linked else [])
    assert (f"Cleanup history: {history}" in message.text) is linked
    assert block_error(message.blocks) is None


def test_a_test_digest_is_marked_test_and_tells_the_same_figures():
    week = runs((START + timedelta(hours=5), 10, 2))
    _, weekly = made(runs=week)
    _, test = made(runs=week, test=True)
    assert test.text.startswith("TEST weekly digest") and not weekly.text.startswith("TEST")
    assert test.blocks[0]["text"]["text"].startswith(":test_tube: TEST")
    assert "`test_digest`" in test.text
    assert test.blocks[2:] == weekly.blocks[1:], "the same figures after the TEST note"


# --- posting once per run (steps.post_digest, delivery.post_once) ----------------------------------


def post(store, slack, posts=None, retry=False, **params):
    summary, _ = made(runs=runs((START + timedelta(hours=1), 10, 1)))
    return steps.post_digest(
        summary,
        {**PARAMS, **params},
        dag_id=DIGEST_DAG_ID,
        run_id=RUN,
        run_after=END,
        base_url=BASE_URL,
        store=store,
        slack=slack,
        posts=posts,
        retry=retry,
    )


@pytest.mark.parametrize("threads", [False, True], ids=["webhook", "bot"])
def test_the_digest_is_posted_once_and_its_post_recorded_in_airflow_and_firestore(threads):
    store, slack, variable = MemoryStore(), MemorySlack(threads=threads), Variable()
    assert post(store, slack, variable) == "sent"
    [posted] = slack.posts
    assert posted["message"].text.startswith("Weekly digest: stalled-batch cleanup")
    key = {"dag_id": DIGEST_DAG_ID, "run_id": RUN, "kind": "digest"}
    assert posted["metadata"] == {"event_type": "batch_cleanup_step", "event_payload": key}
    where = {"channel": "C0TEST", "ts": posted["ts"]} if threads else {}
    assert variable.value == store.state["posted"] == {"run_id": RUN, "kind": "digest", **where}


@pytest.mark.parametrize("record", ["firestore", "airflow"])
def test_a_retry_that_finds_a_record_of_the_post_posts_nothing_again(record):
    store, slack, variable = MemoryStore(), MemorySlack(), Variable()
    if record == "firestore":
        store.record_post(DIGEST_DAG_ID, run_id=RUN, kind="digest", where={})
    else:  # Firestore's record met an outage after Slack accepted
        variable.put(DIGEST_DAG_ID, {"run_id": RUN, "kind": "digest"})
    assert post(store, slack, variable, retry=True) == "sent"
    assert slack.posts == []
    assert store.state["posted"] == {"run_id": RUN, "kind": "digest"}


def test_a_bot_mode_retry_finds_the_digest_in_slack_when_no_record_was_written():
    store, slack = MemoryStore(), MemorySlack(threads=True)
    post(store, slack)  # Slack took it; then the try died before either record
    store.state.pop("posted")
    assert post(store, slack, Variable(), retry=True) == "sent"
    assert len(slack.posts) == 1 and slack.lookups[0]["key"]["kind"] == "digest"
    assert store.state["posted"]["ts"] == slack.posts[0]["ts"]


def test_a_first_try_looks_for_no_record_a_run_made_anew_under_an_old_id_posts_again():
    store, slack, variable = MemoryStore(), MemorySlack(threads=True), Variable()
    post(store, slack, variable)
    assert post(store, slack, variable, retry=False) == "sent"
    assert len(slack.posts) == 2 and slack.lookups == []


def test_another_runs_record_does_not_stop_this_runs_digest():
    store, slack, variable = MemoryStore(), MemorySlack(), Variable()
    variable.put(DIGEST_DAG_ID, {"run_id": "scheduled__2026-10-26T13:00:00+00:00", "kind": "digest"})
    assert post(store, slack, variable, retry=True) == "sent"
    assert len(slack.posts) == 1


def test_notify_off_renders_the_digest_into_the_log_and_sends_nothing(caplog):
    store, slack = MemoryStore(), MemorySlack()
    with caplog.at_level("INFO"):
        assert post(store, slack, notify=False) == "rendered"
    assert slack.posts == [] and store.state == {}
    assert "The digest would read:\nWeekly digest: stalled-batch cleanup" in caplog.text


def test_summarize_week_reads_the_cleanups_records_of_both_weeks():
    store = MemoryStore()
    before = digest.week_start(START)
    for name, at, stalled in [
        ("old", before - timedelta(hours=1), 9),
        ("last", before + timedelta(hours=1), 2),
    ]:
        store.runs[name] = {
            "run_after": at,
            "batches_checked": 10,
            "stalled_count": stalled,
            "dag_id": DAG_ID,
            "kind": "none",
        }
    store.runs["this"] = {"run_after": END, "batches_checked": 10, "stalled_count": 1, "dag_id": DAG_ID,
                          "kind": "none"}  # fmt: skip
    store.runs["other-dag"] = {"run_after": END, "batches_checked": 10, "stalled_count": 5, "dag_id": "x",
                               "kind": "none"}  # fmt: skip
    store.incidents["i"] = incident(START + timedelta(hours=1), hours=1, label="real")
    store.create_event("e", {"timestamp": END, "batch_ids": ["b"]})
    summary = steps.summarize_week(store, run_after=END)
    assert (summary["week"]["auto_completed"], summary["before"]["auto_completed"]) == (1, 2)
    assert summary["incident_count"] == 1 and summary["quality"]["real"] == 1
    assert store.reads == ["events_in"]


@pytest.mark.parametrize(
    ("dag_id", "job"), [(DIGEST_DAG_ID, "Weekly cleanup digest"), (DAG_ID, "Stalled-batch cleanup")]
)
def test_failure_messages_name_the_job_of_their_dag(dag_id, job):
    run = {"dag_id": dag_id, "run_id": RUN}
    said = {
        "task": task_failure(**run, task_id="summarize_week", error="boom", log_url=None),
        "run": run_failed(**run, reason="timed out", run_url=None),
        "overdue": run_overdue(**run, queued_at="09:00", minutes=10, run_url=None),
    }
    headers = {kind: message.blocks[0]["text"]["text"] for kind, message in said.items()}
    assert headers == {
        "task": f":x: {job} failed",
        "run": f":x: {job} run failed",
        "overdue": f":alarm_clock: {job} is overdue",
    }
    assert all(message.text.startswith(job) for message in said.values())
