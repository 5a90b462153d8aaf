"""Slack messages: the plain-text fallback says everything; the blocks stay within Slack's limits."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import pytest

from batch_cleanup.messages import Message, dag_run_url, systemic_alert, task_failure

# Slack's Block Kit limits.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_URL = 3000
KNOWN_BLOCK_TYPES = {"header", "section", "divider", "context", "actions"}

RUN_URL = (
    "https://airflow.example.com/dags/stalled_batch_cleanup/runs/scheduled__2020-03-01T10%3A05%3A00%2B00%3A00"
)


def alert(batch_ids: list[str], **overrides) -> Message:
    arguments = {
        "count": 7,
        "threshold": 5,
        "window_minutes": 60,
        "completed_this_run": 3,
        "batch_ids_in_window": batch_ids,
        "run_url": RUN_URL,
        **overrides,
    }
    return systemic_alert(**arguments)


def assert_within_slack_limits(message: Message) -> None:
    assert message.text
    assert 0 < len(message.blocks) <= MAX_BLOCKS
    for block in message.blocks:
        assert block["type"] in KNOWN_BLOCK_TYPES
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= MAX_SECTION_TEXT
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert 0 < len(block["text"]["text"]) <= MAX_HEADER_TEXT
        if block["type"] == "actions":
            for element in block["elements"]:
                assert len(element["text"]["text"]) <= MAX_BUTTON_TEXT
                assert len(element.get("url", "")) <= MAX_BUTTON_URL


def block_text(message: Message) -> str:
    return "\n".join(block["text"]["text"] for block in message.blocks if isinstance(block.get("text"), dict))


def listed_line(text: str) -> str:
    (line,) = [line for line in text.splitlines() if "stalled batches" in line.lower()]
    return line


# --- systemic_alert: the plain-text fallback --------------------------------------------------


def test_the_fallback_gives_the_count_the_threshold_and_this_runs_completions():
    text = alert(["b1"], count=12, threshold=5, window_minutes=45, completed_this_run=4).text

    assert re.search(r"\b12\b", text)
    assert re.search(r"threshold: 5\b", text)
    assert re.search(r"\b45 minutes\b", text)
    assert re.search(r"\b4 batches auto-completed in this run\b", text)


@pytest.mark.parametrize("completed", [0, 1, 9_999])
def test_the_fallback_gives_the_completions_of_this_run_even_when_zero(completed):
    assert (
        f"{completed} batches auto-completed in this run" in alert(["b1"], completed_this_run=completed).text
    )


def test_the_fallback_lists_the_window_ids_once_each_in_order():
    line = listed_line(alert(["b2", "b1", "b2", "b3", "b1"]).text)

    assert line.endswith("b2, b1, b3")
    assert "more" not in line


@pytest.mark.parametrize(
    ("unique", "repeats", "more"),
    [(1, 1, 0), (20, 1, 0), (20, 5, 0), (21, 1, 1), (25, 3, 5), (3_000, 2, 2_980)],
    ids=["one", "exactly-20", "20-repeated", "21", "25-repeated", "3000-repeated"],
)
def test_the_fallback_caps_the_list_at_20_with_a_count_of_the_rest(unique, repeats, more):
    ids = [f"batch-{i:04d}" for i in range(unique)] * repeats

    line = listed_line(alert(ids).text)

    shown = re.findall(r"batch-\d{4}", line)
    assert shown == [f"batch-{i:04d}" for i in range(min(unique, 20))]
    if more:
        assert line.endswith(f"+{more} more")
    else:
        assert "more" not in line


def test_the_fallback_names_the_possible_causes_and_what_to_check():
    text = alert(["b1"]).text.lower()

    assert "crash" in text
    assert "timing out" in text or "timeout" in text
    assert "dependency" in text
    assert "cpu" in text
    assert "memory" in text
    assert "worker logs" in text
    assert "/health/deep" in text


def test_the_fallback_and_a_button_link_to_the_dag_run():
    message = alert(["b1"])

    assert RUN_URL in message.text
    urls = [e.get("url") for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert RUN_URL in urls


def test_an_alert_without_recorded_ids_still_reads_whole():
    message = alert([])

    assert "more" not in listed_line(message.text)
    assert RUN_URL in message.text
    assert_within_slack_limits(message)


# --- systemic_alert: Block Kit ----------------------------------------------------------------


@pytest.mark.parametrize(
    "ids",
    [
        ["b1", "b2"],
        [f"{i:05d}" + "x" * 495 for i in range(25)],
        [f"{i:05d}" + "🚀" * 495 for i in range(25)],
        [f"批次-{i:05d}-" + "数据" * 246 for i in range(5_000)],
        [f"batch-{i:06d}" for i in range(10_000)],
    ],
    ids=["two", "25x500-ascii", "25x500-emoji", "5000x500-cjk", "10000-short"],
)
def test_the_alert_blocks_stay_within_slacks_limits(ids):
    message = alert(ids, count=len(ids))

    assert_within_slack_limits(message)
    blocks = block_text(message)
    assert ids[0][:100] in blocks
    assert re.search(rf"\b{len(ids)} cleanups\b", blocks)


@pytest.mark.parametrize("batch_id", ["`tick` *star* _under_ <b> &amp; " * 20, "```" * 200, "…" * 3_000])
def test_markup_in_batch_ids_keeps_the_blocks_within_limits(batch_id):
    assert_within_slack_limits(alert([batch_id] * 3 + [f"{batch_id}-{i}" for i in range(30)]))


def test_the_alert_blocks_name_count_threshold_causes_and_checks():
    blocks = block_text(alert(["b1"], count=12, threshold=5, completed_this_run=4))

    assert "12 cleanups" in blocks
    assert "threshold: 5" in blocks
    assert "4 batches" in blocks
    assert "/health/deep" in blocks
    assert "CPU" in blocks


# --- task_failure -----------------------------------------------------------------------------

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

    assert FAILURE[field] in message.text
    assert FAILURE[field] in block_text(message)


@pytest.mark.parametrize(
    "error",
    ["", "x" * 100_000, "数据" * 50_000, "🚀" * 10_000, "line\n" * 5_000, "```" * 2_000],
    ids=["empty", "100k-ascii", "100k-cjk", "emoji", "many-lines", "backticks"],
)
def test_a_task_failure_stays_within_slacks_limits_for_any_error(error):
    message = task_failure(**{**FAILURE, "error": error})

    assert_within_slack_limits(message)
    assert error[:500] in message.text
    assert FAILURE["log_url"] in message.text


def test_a_long_error_is_cut_but_the_log_link_survives():
    message = task_failure(**{**FAILURE, "error": "boom " * 50_000})

    assert len(message.text) < 5_000
    assert FAILURE["log_url"] in block_text(message)


# --- dag_run_url ------------------------------------------------------------------------------


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
    url = dag_run_url("https://airflow.example.com", "stalled_batch_cleanup", run_id)

    parts = urlsplit(url)
    assert parts.query == ""
    assert parts.fragment == ""
    assert parts.path.startswith("/dags/stalled_batch_cleanup/runs/")
    segment = parts.path.removeprefix("/dags/stalled_batch_cleanup/runs/")
    assert "/" not in segment
    assert not set(segment) & set(":+ ?#&")
    assert unquote(segment) == run_id


def test_a_scheduled_run_url_is_exactly_as_airflow_serves_it():
    url = dag_run_url(
        "https://airflow.example.com/", "stalled_batch_cleanup", "scheduled__2020-03-01T10:05:00+00:00"
    )

    assert url == RUN_URL


@pytest.mark.parametrize(
    "base_url",
    ["https://airflow.example.com", "https://airflow.example.com/", "https://airflow.example.com//"],
)
def test_the_base_url_may_end_with_slashes(base_url):
    url = dag_run_url(base_url, "d", "r")

    assert url == "https://airflow.example.com/dags/d/runs/r"


def test_a_base_url_with_a_path_prefix_is_kept():
    url = dag_run_url("https://example.com/airflow", "d", "r")

    assert url == "https://example.com/airflow/dags/d/runs/r"
