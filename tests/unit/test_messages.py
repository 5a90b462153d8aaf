"""Slack messages: the plain-text fallback says everything; the blocks stay within Slack's limits."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

import pytest
from slack_sdk.models.blocks import Block, HeaderBlock

from batch_cleanup.messages import (
    Diagnosis,
    Message,
    alert,
    dag_run_url,
    incident_card,
    link,
    run_failed,
    run_overdue,
    task_failure,
    with_note,
)
from batch_cleanup.policy import Decision, PolicyConfig, State, decide
from batch_cleanup.policy import forced_test_decision as make_test_decision
from batch_cleanup.ports import RunRecord
from batch_cleanup.rules import RateRule, reading

# Slack refuses more blocks in a message; `slack_sdk`'s models check each block, not the list.
MAX_BLOCKS = 50

RUN_URL = (
    "https://airflow.example.com/dags/stalled_batch_cleanup/runs/scheduled__2020-03-01T10%3A05%3A00%2B00%3A00"
)
RUN_ID = "scheduled__2026-03-02T09:00:00+00:00"
MANUAL_RUN_ID = "manual__2026-03-02T09:12:34.567890+00:00"
CONFIG = PolicyConfig()  # WARNING at 3, CRITICAL at 4, 60-minute window and cooldown.
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
KINDS = ["alert", "escalation", "worsening", "reminder", "resolved", "test"]


def window(batch_ids: list[str], per_event: int = 2) -> dict[str, list[str]]:
    """The window's events, `per_event` batch ids each, in order."""
    return {f"e{i}": batch_ids[i : i + per_event] for i in range(0, len(batch_ids), per_event)}


# How each kind comes about: (count that opened the incident at T0 on batch b0, minutes later,
# count of the run whose message is tested).
SCENARIOS = {"alert": (None, 0, 7), "escalation": (3, 15, 6), "worsening": (4, 15, 6)}
SCENARIOS |= {"reminder": (5, 75, 6), "resolved": (5, 150, 1)}


# The rate rule's reading for the run whose message is tested (batches checked, auto-completed per
# run, newest first): the README's example (WARNING), an outage (CRITICAL), the baseline (none).
EXAMPLE, OUTAGE, BASELINE = [(96, 9), (120, 5), (120, 4), (120, 4)], [(300, 30)] * 2, [(300, 1)] * 16
RATES = {"alert": EXAMPLE, "escalation": OUTAGE, "worsening": OUTAGE, "reminder": OUTAGE}
RATES |= {"resolved": BASELINE, "test": EXAMPLE}


def rate_at(per_run: list[tuple[int, int]], at: datetime):
    runs = [RunRecord(at - timedelta(minutes=15 * i), c, n) for i, (c, n) in enumerate(per_run)]
    return reading(runs, at, RateRule())


def decided(
    kind: str, batch_ids: list[str] | None = None, *, count=None, offenders=(), before=None, rate=False
):
    """A real `decide()` (or forced) output of `kind`, as the message tasks get it from XCom;
    `batch_ids` are in the window of the run whose message is tested. With `rate`, that run is
    decided by the rate rule (`RATES[kind]`)."""
    events = window(["b1"] if batch_ids is None else batch_ids)
    if kind == "test":
        forced = decide(State(), count=0, window_events={}, offenders=(), now=T0, config=CONFIG,
                        rate=rate_at(RATES[kind], T0)) if rate else None  # fmt: skip
        decision = make_test_decision(
            7 if count is None else count, events, offenders, forced and forced[0].rate
        )
        return Decision.from_dict(json.loads(json.dumps(decision.to_dict())))
    opening, later, default = SCENARIOS[kind]
    state = before or State()
    if opening is not None:
        opening_run = {"window_events": {"e-open": ["b0"]}, "offenders": (), "config": CONFIG}
        _, state = decide(state, count=opening, now=T0, **opening_run)
        if kind != "worsening":  # told more than any tested window holds: no WORSENING
            state = dataclasses.replace(state, told_count=10**6, told_batches=10**6)
    count, at = default if count is None else count, T0 + timedelta(minutes=later)
    reading_ = rate_at(RATES[kind], at) if rate else None
    inputs = {"window_events": events, "offenders": offenders, "now": at, "config": CONFIG, "rate": reading_}
    decision, _ = decide(state, count=count, **inputs)
    assert decision.kind.value == kind, decision.reason
    return Decision.from_dict(json.loads(json.dumps(decision.to_dict())))


def message_for(decision: Decision, **overrides) -> Message:
    threshold = CONFIG.threshold(decision.severity)
    defaults = {"window_minutes": 60, "completed_this_run": 3, "run_url": RUN_URL, "run_id": RUN_ID}
    return alert(decision, **{**defaults, "threshold": threshold, **overrides})


def render(kind: str = "alert", batch_ids: list[str] | None = None, **overrides) -> Message:
    decision_args = {k: overrides.pop(k) for k in ("count", "offenders", "before", "rate") if k in overrides}
    return message_for(decided(kind, batch_ids, **decision_args), **overrides)


def assert_within_slack_limits(message: Message) -> None:
    """Each block passes `slack_sdk`'s Block Kit models (types, required parts, Slack's limits); a
    header is plain text and no text is empty, which Slack also refuses and the models let through."""
    assert message.text
    assert 0 < len(message.blocks) <= MAX_BLOCKS
    for block in message.blocks:
        parsed = Block.parse(block)
        assert parsed is not None, f"not a block Slack knows: {block}"
        parsed.to_dict()  # `validate_json()` on it and every part of it: raises naming the limit
        if isinstance(parsed, HeaderBlock):
            assert parsed.text.type == "plain_text"
        for part in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            text = part.get("text") if isinstance(part, dict) else None
            text = text.get("text") if isinstance(text, dict) else text  # a button's label
            assert text is None or text.strip(), f"empty text in {block}"


def block_text(message: Message) -> str:
    return "\n".join(block["text"]["text"] for block in message.blocks if isinstance(block.get("text"), dict))


def header(message: Message) -> str:
    (block,) = [block for block in message.blocks if block["type"] == "header"]
    return block["text"]["text"]


LIST_TITLES = dict.fromkeys(["alert", "escalation", "test"], "Recently stalled batches:")
LIST_TITLES |= {"reminder": "New batches since the last message:", "resolved": "Batches involved:"}


def listed_line(text: str, kind: str = "alert") -> str:
    (line,) = [line for line in text.splitlines() if line.startswith(LIST_TITLES[kind])]
    return line


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_a_fallback_a_header_and_a_link_to_the_run_and_only_a_test_says_test(kind):
    message = render(kind)
    assert_within_slack_limits(message)
    assert RUN_URL in message.text
    urls = [e.get("url") for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert urls == [RUN_URL]
    assert header(message).split(" ", 1)[1] == message.text.splitlines()[0]
    assert ("TEST" in message.text) is ("TEST" in header(message)) is (kind == "test")
    assert ("incident state was not changed" in block_text(message)) is (kind == "test")


@pytest.mark.parametrize(
    ("kind", "count", "first_line"),
    [
        ("alert", 3, "WARNING: systemic batch stalls"),
        ("alert", 5, "CRITICAL: systemic batch stalls"),
        ("escalation", None, "Escalated to CRITICAL: systemic batch stalls"),
        ("reminder", None, "Still ongoing (CRITICAL): systemic batch stalls"),
        ("resolved", None, "RESOLVED: systemic batch stalls are over"),
        ("test", None, "TEST message from the stalled-batch cleanup, not an incident"),
    ],
)
def test_the_first_line_says_what_kind_of_message_it_is(kind, count, first_line):
    assert render(kind, count=count).text.splitlines()[0] == first_line


def test_the_fallback_and_the_blocks_give_the_count_the_threshold_and_this_runs_completions():
    message = render("alert", count=12, threshold=5, window_minutes=45, completed_this_run=4)
    said = [r"\b12 cleanups\b", r"threshold: 5\b", r"\b45 minutes\b"]
    said.append(r"\b4 batches auto-completed in this run\b")
    assert [s for s in said if not re.search(s, message.text)] == []
    shown = ("12 cleanups", "threshold: 5", "4 batches", "/health/deep", "CPU")
    assert [s for s in shown if s not in block_text(message)] == []


@pytest.mark.parametrize("kind", ["alert", "escalation", "reminder", "test"])
@pytest.mark.parametrize("completed", [0, 1, 9_999])
def test_the_fallback_gives_the_completions_of_this_run_even_when_zero(kind, completed):
    batches = "1 batch" if completed == 1 else f"{completed} batches"
    assert f"{batches} auto-completed in this run" in render(kind, completed_this_run=completed).text


def test_the_fallback_lists_the_window_ids_once_each_in_order():
    decision = dataclasses.replace(decided("alert", []), batch_ids=("b2", "b1", "b2", "b3", "b1"))
    line = listed_line(message_for(decision).text)
    assert line.endswith("b2, b1, b3") and "more" not in line


@pytest.mark.parametrize("kind", ["alert", "escalation", "reminder", "test"])
@pytest.mark.parametrize(
    ("unique", "repeats", "more"),
    [(1, 1, 0), (20, 1, 0), (20, 5, 0), (21, 1, 1), (25, 3, 5), (3_000, 2, 2_980)],
    ids=["one", "exactly-20", "20-repeated", "21", "25-repeated", "3000-repeated"],
)
def test_the_fallback_caps_the_list_at_20_with_a_count_of_the_rest(kind, unique, repeats, more):
    line = listed_line(render(kind, [f"batch-{i:04d}" for i in range(unique)] * repeats).text, kind)
    assert re.findall(r"batch-\d{4}", line) == [f"batch-{i:04d}" for i in range(min(unique, 20))]
    assert line.endswith(f"+{more} more") if more else "more" not in line


def test_resolved_caps_the_incidents_batches_at_20_too():
    line = listed_line(render("resolved", [f"batch-{i:04d}" for i in range(25)]).text, "resolved")
    assert line == "Batches involved: b0, " + ", ".join(f"batch-{i:04d}" for i in range(19)) + ", +6 more"


@pytest.mark.parametrize("kind", ["alert", "escalation", "reminder", "test", "resolved"])
def test_the_fallback_names_the_possible_causes_and_what_to_check_unless_resolved(kind):
    text = render(kind).text.lower()
    if kind == "resolved":
        assert "possible causes" not in text and "/health/deep" not in text
    else:
        assert "timing out" in text or "timeout" in text
        checks = ("crash", "dependency", "cpu", "memory", "worker logs", "/health/deep")
        assert [check for check in checks if check not in text] == []


def test_an_alert_without_recorded_ids_still_reads_whole():
    message = render("alert", [], count=3)
    assert listed_line(message.text).endswith("none") and RUN_URL in message.text
    assert_within_slack_limits(message)


def test_a_reminder_says_still_ongoing_how_long_and_what_is_new():
    message = render("reminder", ["b0", "b7", "b8"], count=6)
    said = ["Still ongoing (CRITICAL)", "6 cleanups in the last 60 minutes", "Open for 1 h 15 min"]
    assert [s for s in said if s not in message.text] == []
    assert listed_line(message.text, "reminder") == "New batches since the last message: b7, b8"


def test_a_reminder_after_a_deescalation_says_so():
    decision = decided("reminder", count=3)
    said = ["Still ongoing (WARNING)", "De-escalated from CRITICAL to WARNING", "threshold: 3"]
    assert decision.severity == "WARNING" and [s for s in said if s not in message_for(decision).text] == []


def test_resolved_gives_the_duration_the_total_and_the_batches():
    message = render("resolved", ["b1"])
    assert "Lasted 2 h 30 min, 2 cleanups in total, peak severity CRITICAL" in message.text
    assert "Now 1 cleanup in the last 60 minutes" in message.text
    assert listed_line(message.text, "resolved") == "Batches involved: b0, b1"


def test_repeat_offenders_are_named_with_how_often_they_stalled():
    message = render("alert", ["b1", "b2"], offenders=(("b1", 3), ("b2", 2)))
    assert "Repeat offenders: b1 stalled 3 times in 24 h, b2 stalled 2 times in 24 h" in message.text
    assert "b1 stalled 3 times in 24 h" in block_text(message)


def test_the_first_message_after_a_mute_names_what_was_held_back():
    muted = {"count": 3, "window_events": {"e1": ["b1"]}, "offenders": (), "config": CONFIG}
    _, state = decide(State(), now=T0 - timedelta(minutes=60), muted=True, **muted)
    _, state = decide(state, now=T0 - timedelta(minutes=30), **{**muted, "count": 0}, muted=True)
    message = render("alert", before=state)
    line = next(line for line in message.text.splitlines() if line.startswith("While muted"))
    assert "ALERT WARNING at 08:00 UTC" in line
    assert "RESOLVED WARNING at 08:30 UTC" in line
    assert "ALERT WARNING at 08:00 UTC" in block_text(message)


# fmt: off
MANY_IDS = {
    "two": ["b1", "b2"], "25x500-ascii": [f"{i:05d}" + "x" * 495 for i in range(25)],
    "25x500-emoji": [f"{i:05d}" + "🚀" * 495 for i in range(25)],
    "5000x500-cjk": [f"批次-{i:05d}-" + "数据" * 246 for i in range(5_000)],
    "10000-short": [f"batch-{i:06d}" for i in range(10_000)],
    "40-all-markup": [f"{i:05d}" + "&<>" * 200 for i in range(40)],
}
# fmt: on


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ids", MANY_IDS.values(), ids=list(MANY_IDS))
def test_the_blocks_stay_within_slacks_limits(kind, ids):
    offenders = tuple((batch_id, 2) for batch_id in ids[:30])
    message = render(kind, ids, count=max(len(ids), 5) if kind != "resolved" else 1, offenders=offenders)
    assert_within_slack_limits(message)
    assert ids[0][:5] in block_text(message)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_id", ["`tick` *star* _under_ <b> &amp; " * 20, "```" * 200, "…" * 3_000])
def test_markup_in_batch_ids_keeps_the_blocks_within_limits(kind, batch_id):
    ids = [batch_id] * 3 + [f"{batch_id}-{i}" for i in range(30)]
    assert_within_slack_limits(render(kind, ids, offenders=((batch_id, 3),)))


@pytest.mark.parametrize("kind", KINDS)
def test_batch_ids_are_escaped_for_mrkdwn(kind):
    nasty = "a&b<!channel>c"
    message = render(kind, [nasty, "plain"], offenders=((nasty, 2),))
    for text in (message.text, block_text(message)):
        assert "a&amp;b&lt;!channel&gt;c" in text
        assert "<!channel>" not in text
        assert "&b" not in text.replace("&amp;", "")


FAILURE = {
    "dag_id": "stalled_batch_cleanup",
    "task_id": "check_stalled",
    "run_id": "scheduled__2020-03-01T10:05:00+00:00",
    "error": "CoordinatorResponseError: results[3].batch_id must be a non-empty string, got None",
    "log_url": "https://airflow.example.com/dags/stalled_batch_cleanup/runs/x/tasks/check_stalled?try_number=2",
}


@pytest.mark.parametrize("field", sorted(FAILURE))
def test_a_task_failure_names_the_dag_task_run_error_and_log(field):
    message = task_failure(**FAILURE)
    # The run by its kind and time, as people read it: no ISO stamp (the log link leads to it).
    shown = "scheduled for 1 Mar 2020 10:05 UTC" if field == "run_id" else FAILURE[field]
    assert shown in message.text and shown in block_text(message)


@pytest.mark.parametrize(
    "error",
    ["", "x" * 100_000, "boom " * 50_000, "数据" * 50_000, "🚀" * 10_000, "line\n" * 5_000, "```" * 2_000],
    ids=["empty", "100k-ascii", "250k-words", "100k-cjk", "emoji", "many-lines", "backticks"],
)
def test_a_task_failure_stays_within_slacks_limits_for_any_error(error):
    message = task_failure(**{**FAILURE, "error": error})
    assert_within_slack_limits(message)
    assert error[:500] in message.text and FAILURE["log_url"] in message.text
    assert len(message.text) < 5_000 and FAILURE["log_url"] in block_text(message), "cut, the log link kept"


HOSTILE = "<!channel> bad field <https://evil.example|docs> & more"
ESCAPED = "&lt;!channel&gt; bad field &lt;https://evil.example|docs&gt; &amp; more"
LOG_URL, A_RUN_URL = "https://a.example/log", "https://a.example/run"
BUILDERS = {
    "task_failure": lambda v: task_failure(dag_id=v, task_id=v, run_id=v, error=v, log_url=LOG_URL),
    "run_overdue": lambda v: run_overdue(dag_id=v, run_id=v, queued_at=v, minutes=10, run_url=A_RUN_URL),
    "run_failed": lambda v: run_failed(dag_id=v, run_id=v, reason=v, run_url=A_RUN_URL),
}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_every_data_field_is_escaped_in_the_fallback_and_the_blocks(kind):
    message = BUILDERS[kind](HOSTILE)
    for text in (message.text, block_text(message)):
        assert ESCAPED in text
        assert "<!channel>" not in text and "<https://evil.example" not in text


@pytest.mark.parametrize(
    ("url", "label", "shown"),
    [
        ("https://a.example/x?a=1&b=2", "Task log", "<https://a.example/x?a=1&amp;b=2|Task log>"),
        ("https://a.example/x|<!channel>", "Task log", "<https://a.example/x%7C%3C!channel%3E|Task log>"),
        ("https://a.example/a b", "Task log", "<https://a.example/a%20b|Task log>"),
        ("https://a.example", "<b>", "<https://a.example|&lt;b&gt;>"),
    ],
    ids=["ampersand", "pipe-and-mention", "space", "label-escaped"],
)
def test_a_link_cannot_break_out_of_its_brackets(url, label, shown):
    assert link(url, label) == shown


@pytest.mark.parametrize(
    "run_id",
    [
        "scheduled__2020-03-01T10:05:00+00:00",
        "manual__2020-03-01T10:05:00.123456+00:00",
        "asset_triggered__2020-03-01T10:05:00+05:30",
        "my run/with?odd#chars&more=1%",
        "运行-🚀",
    ],
    ids=["scheduled", "manual-micros", "offset", "reserved-chars", "unicode"],
)
def test_the_run_id_is_quoted_into_a_single_path_segment(run_id):
    parts = urlsplit(dag_run_url("https://airflow.example.com", "stalled_batch_cleanup", run_id))
    assert (parts.query, parts.fragment) == ("", "")
    assert parts.path.startswith("/dags/stalled_batch_cleanup/runs/")
    segment = parts.path.removeprefix("/dags/stalled_batch_cleanup/runs/")
    assert "/" not in segment
    assert not set(segment) & set(":+ ?#&")
    assert unquote(segment) == run_id


@pytest.mark.parametrize(
    ("base_url", "dag_id", "run_id", "url"),
    [
        ("https://airflow.example.com/", "stalled_batch_cleanup", FAILURE["run_id"], RUN_URL),
        ("https://airflow.example.com", "d", "r", "https://airflow.example.com/dags/d/runs/r"),
        ("https://airflow.example.com/", "d", "r", "https://airflow.example.com/dags/d/runs/r"),
        ("https://airflow.example.com//", "d", "r", "https://airflow.example.com/dags/d/runs/r"),
        ("https://example.com/airflow", "d", "r", "https://example.com/airflow/dags/d/runs/r"),
    ],
    ids=["exactly-as-airflow-serves-it", "no-slash", "slash", "two-slashes", "path-prefix-kept"],
)
def test_the_run_url(base_url, dag_id, run_id, url):
    assert dag_run_url(base_url, dag_id, run_id) == url


# --- the incident card (bot-token mode) ------------------------------------------------------------


def card_for(kind: str, minutes_later: float, **overrides) -> Message:
    decision = decided(kind, [f"b{i}" for i in range(1, 30)], **overrides)
    threshold = 5 if decision.severity == "CRITICAL" and kind != "resolved" else 3
    at = T0 + timedelta(minutes=minutes_later)
    return incident_card(decision, window_minutes=60, threshold=threshold, now=at, run_url=RUN_URL)


def test_the_card_says_in_a_few_lines_since_when_in_human_time_and_lists_nothing():
    card = card_for("reminder", 75)
    assert header(card) == ":rotating_light: CRITICAL, ongoing: systemic batch stalls"
    assert "*Since* 09:00 UTC, 1 h 15 min ago" in block_text(card)
    assert "Since 09:00 UTC, 1 h 15 min ago" in card.text
    assert "Updated 10:15 UTC" in card.text
    assert "b1" not in card.text + block_text(card), "the lists are in the thread's steps"
    assert "29 batches" in block_text(card), "it counts them"
    assert len(card.blocks) <= 4
    assert_within_slack_limits(card)
    next_day = card_for("reminder", 26 * 60)  # opened on another day: the date too
    assert "*Since* 2 Mar 09:00 UTC, 1 d 2 h ago" in block_text(next_day)


def test_a_resolved_card_says_how_long_and_differs_from_the_resolved_step():
    card = card_for("resolved", 150)
    step = render("resolved", [f"b{i}" for i in range(1, 30)])
    assert header(card) == ":white_check_mark: RESOLVED after 2 h 30 min: systemic batch stalls"
    facts = "*From* 09:00 UTC *to* 11:30 UTC · peak CRITICAL · 16 cleanups in total, 30 batches"
    assert facts in block_text(card)
    assert header(step) != header(card) and card.text.splitlines()[1:] != step.text.splitlines()[1:]
    assert "b1" in step.text and "b1" not in card.text, "the RESOLVED step carries the closing facts"


# --- the rate rule (issue 20) ---------------------------------------------------------------------

SAID = "4.8× the 1 % objective over the last hour (22 of 456 batches auto-completed); 9.4× over the last run"


def test_under_the_rate_rule_an_alert_says_the_rate_against_the_objective_and_the_count():
    message = render("alert", count=3, rate=True)
    assert message.text.splitlines()[:3] == [
        "CRITICAL: systemic batch stalls",  # 10× the objective: CRITICAL at 6×
        f"Auto-completion rate: {SAID}",
        "3 cleanups in the last 60 minutes",
    ]
    assert f"*Auto-completion rate:* {SAID}\n*3 cleanups* in the last 60 minutes\n" in block_text(message)
    assert "threshold" not in message.text, "the count's threshold decides nothing under this rule"


@pytest.mark.parametrize(
    ("kind", "factor"), [("escalation", "10.0×"), ("worsening", "10.0×"), ("reminder", "10.0×")]
)
def test_every_step_of_an_incident_under_the_rate_rule_explains_itself_with_the_rate(kind, factor):
    message = render(kind, rate=True)
    rate = f"Auto-completion rate: {factor} the 1 % objective over the last hour (60 of 600 batches"
    assert rate in message.text and rate in block_text(message).replace("*", "")
    assert "6 cleanups in the last 60 minutes" in message.text


def test_resolved_under_the_rate_rule_says_the_rate_now_and_the_count():
    text = render("resolved", rate=True).text
    assert "Now 0.3× the 1 % objective over the last hour (4 of 1200 batches auto-completed)" in text
    assert "Now 1 cleanup in the last 60 minutes\n" in text and "(below" not in text


def test_a_test_message_under_the_rate_rule_carries_the_rate_too():
    assert f"Auto-completion rate: {SAID}" in render("test", rate=True).text


def test_the_card_under_the_rate_rule_gives_the_rate_and_the_count_without_a_threshold():
    decision = decided("reminder", ["b1", "b2"], rate=True)
    card = incident_card(
        decision, window_minutes=60, threshold=4, now=T0 + timedelta(minutes=75), run_url=RUN_URL
    )
    facts = block_text(card)
    assert facts.splitlines()[1].startswith("*Rate:* 10.0× the 1 % objective over the last hour (60 of 600")
    assert "\n*6 cleanups* in the last 60 minutes, 2 batches\n*Since* 09:00 UTC" in facts
    assert "threshold" not in card.text and len(card.blocks) <= 4
    assert_within_slack_limits(card)


def test_one_of_anything_is_singular():
    one_cleanup = dataclasses.replace(decided("alert", ["b1"]), count=1)
    one = message_for(one_cleanup, window_minutes=1, threshold=1, completed_this_run=1)
    resolved = render("resolved", ["b1"])
    decision = dataclasses.replace(decided("alert", ["b1"], offenders=(("b1", 1),)), double_recorded=1)
    once = message_for(decision)
    assert "1 cleanup in the last minute (threshold: 1)" in one.text
    assert "*1 cleanup* in the last minute" in block_text(one)
    assert "1 batch auto-completed" in one.text and "*1 batch* auto-completed" in block_text(one)
    assert "Now 1 cleanup in the last 60 minutes" in resolved.text
    assert "b1 stalled 1 time in 24 h" in once.text
    assert "1 cleanup was also recorded" in once.text
    overdue = run_overdue(dag_id="d", run_id="r", queued_at="q", minutes=1, run_url=RUN_URL)
    assert "1 minute after" in overdue.text and "1 minutes" not in overdue.text + block_text(overdue)


ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
# Addresses are for machines (a Logs Explorer link carries its range as ISO times), not read by people.
URLS = re.compile(r"<[^>|]+\|[^>]*>|https?://\S+")


def _every_message() -> dict[str, Message]:
    logs_url = "https://console.cloud.google.com/logs/query;startTime=2026-03-02T08:00:00Z?project=p"
    diagnosis = Diagnosis(health=("database: down",), logs_url=logs_url)
    messages = {
        kind: message_for(decided(kind, ["b1", "b2"]), run_url=dag_run_url("https://a.example", "d", RUN_ID))
        for kind in KINDS
    }
    messages["diagnosed"] = message_for(decided("alert", ["b1"]), diagnosis=diagnosis)
    messages["deescalated reminder"] = message_for(decided("reminder", ["b1"], count=4))
    for kind, later in (("alert", 0), ("escalation", 15), ("reminder", 75), ("resolved", 150)):
        messages[f"{kind} card"] = card_for(kind, later)
        messages[f"{kind} card, rate rule"] = card_for(kind, later, rate=True)
    messages |= {f"{kind}, rate rule": message_for(decided(kind, ["b1"], rate=True)) for kind in KINDS}
    run = {"dag_id": "d", "run_id": RUN_ID}
    messages["task_failure"] = task_failure(**run, task_id="send_alert", error="boom", log_url=LOG_URL)
    run_url = dag_run_url("https://a", "d", RUN_ID)
    messages["run_failed"] = run_failed(dag_id="d", run_id=MANUAL_RUN_ID, reason="timed out", run_url=run_url)
    queued = "2026-03-02 09:00:05.123456+00:00"
    messages["run_overdue"] = run_overdue(**run, queued_at=queued, minutes=14, run_url="https://a")
    return messages


def _at_their_longest() -> dict[str, Message]:
    """Each message with the most it can carry: hundreds of 500-character batch ids, long fields."""
    ids = [f"{i:03d}-" + "x" * 496 for i in range(300)]
    long = "<&> " * 5_000
    messages = {f"{kind}, 300 long ids": render(kind, ids, offenders=((ids[0], 9),)) for kind in KINDS}
    messages |= {f"{name}, long fields": build(long) for name, build in BUILDERS.items()}
    messages["alert with a long note"] = with_note(render("alert", ids), long)
    return messages


@pytest.mark.parametrize("kind", sorted({**_every_message(), **_at_their_longest()}))
def test_every_message_passes_slack_sdks_block_kit_checks_and_shows_no_iso_timestamp(kind):
    message = {**_every_message(), **_at_their_longest()}[kind]
    assert_within_slack_limits(message)
    for shown in (message.text, block_text(message)):
        assert not ISO_8601.search(URLS.sub("", shown)), shown


def test_runs_and_times_read_as_people_say_them():
    queued = "2026-03-02T09:00:05+00:00"
    overdue = run_overdue(dag_id="d", run_id=RUN_ID, queued_at=queued, minutes=14, run_url="https://a")
    failed = run_failed(dag_id="d", run_id=MANUAL_RUN_ID, reason="timed out", run_url="https://a")
    assert "scheduled for 2 Mar 2026 09:00 UTC" in overdue.text
    assert "queued at 2 Mar 2026 09:00 UTC" in overdue.text
    assert "manual, 2 Mar 2026 09:12 UTC" in block_text(failed)
