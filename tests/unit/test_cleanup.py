"""The coordinator's response contract (docs/coordinator-api.md) and the XCom summary."""

from __future__ import annotations

import json
import random

import pytest

from batch_cleanup.cleanup import CoordinatorResponseError, parse_response, stalled_fingerprint, summarize

XCOM_LIMIT_BYTES = 100_000


def body(results, **fields) -> str:
    return json.dumps({"results": results, **fields})


def result(batch_id: str, was_stalled: bool = True, **fields) -> dict:
    return {"batch_id": batch_id, "was_stalled": was_stalled, **fields}


def xcom_sizes(value) -> tuple[int, int]:
    """Bytes as Airflow's XCom serializer writes it (json.dumps defaults), and as compact UTF-8."""
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return len(json.dumps(value).encode()), len(compact.encode())


# --- parse_response: valid answers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("results", "checked", "completed"),
    [([result("b1"), result("b2", False), result("b3")], 3, 2), ([], 0, 0)],
    ids=["minimal", "empty-list-is-valid"],
)
def test_an_answer_without_counts_gets_them_from_the_results(results, checked, completed):
    data = parse_response(body(results))
    assert data["results"] == results
    assert (data["batches_checked"], data["batches_completed"]) == (checked, completed)


@pytest.mark.parametrize(("checked", "completed"), [(0, 0), (7, 1), (10_000, 250)])
def test_given_counts_are_kept_rather_than_recomputed(checked, completed):
    data = parse_response(body([result("b1")], batches_checked=checked, batches_completed=completed))
    assert (data["batches_checked"], data["batches_completed"]) == (checked, completed)


def test_other_result_fields_are_kept_exactly_and_unknown_top_level_fields_tolerated():
    extra = {"completion_pct": 93.5, "minutes_since_progress": 42, "action": "auto_completed"}
    extra["nested"] = {"a": [1, None, "x"]}
    unknown = {"coordinator_version": "2.3", "warnings": ["slow"], "extra": None}
    assert parse_response(body([result("b1", **extra)], **unknown))["results"] == [result("b1", **extra)]


# fmt: off
ODD_IDS = {
    "500-ascii": "x" * 500, "cjk-greek": "批次-2024-01-01-αβγ", "500-emoji": "🚀" * 500, "newline": "a\nb",
    "mixed-500": "é" * 250 + "x" * 250, "punctuation": "with spaces / slashes : and + plus",
}
# fmt: on


@pytest.mark.parametrize("batch_id", ODD_IDS.values(), ids=list(ODD_IDS))
def test_unicode_and_long_batch_ids_are_accepted(batch_id):
    assert parse_response(body([result(batch_id)]))["results"][0]["batch_id"] == batch_id


# --- parse_response: broken answers, each naming what is wrong --------------------------------

# What is wrong: (the pattern the error must match, the body around each bad value, the bad values).
# fmt: off
REFUSED = {
    "not-json": ("not JSON", str, ["", "<html>502 Bad Gateway</html>", "{", '{"results": [}', "OK"]),
    "not-json-either": ("not JSON", str, ["results=[]", "not json"]),
    "not-an-object": ("object", str, ["[]", '"results"', "42", "null", "true"]),
    "no-results": ("'results'", str, ["{}", '{"result": []}', '{"Results": []}', '{"batches_checked": 3}']),
    "results-not-a-list": ("'results' must be a list", body, [None, {}, {"b1": True}, "b1", 3, True]),
    "result-not-an-object": (
        r"results\[2\]", lambda bad: body([result("b0"), result("b1"), bad]), [None, "b4", 4, ["b4"], True]
    ),
    "batch-id": (
        r"results\[3\]\.batch_id",
        lambda e: body(
            [result("b0"), result("b1", False), result("b2"), {**e, "was_stalled": True}, result("b4")]
        ),
        [{}, {"batch_id": None}, {"batch_id": 123}, {"batch_id": ""}, {"batch_id": ["b3"]},
         {"batch_id": {"id": "b3"}}, {"batch_id": True}, {"id": "b3"}],
    ),
    "was-stalled": (
        r"results\[0\]\.was_stalled",
        lambda was: body([{"batch_id": "b0", **was}]),
        [{}, {"was_stalled": None}, {"was_stalled": "true"}, {"was_stalled": 1}, {"was_stalled": 0}],
    ),
    **{
        field: (field, lambda value, field=field: body([result("b1")], **{field: value}),
                [-1, 1.5, "3", True, [3], {"n": 3}])
        for field in ("batches_checked", "batches_completed")
    },
    # Valid JSON, but not storable text: Firestore and the fingerprint both need real Unicode.
    "surrogate-in-batch-id": (
        r"results\[0\]\.batch_id", str, ['{"results": [{"batch_id": "b\\ud800", "was_stalled": true}]}']
    ),
    "surrogate-in-another-field": (r"results\[1\]", str, [
        '{"results": [{"batch_id": "ok", "was_stalled": true},'
        ' {"batch_id": "b1", "was_stalled": true, "note": "\\udc00"}]}',
    ]),
}
# fmt: on


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param(make(bad), match, id=f"{wrong}:{bad!r}" if len(values) > 1 else wrong)
        for wrong, (match, make, values) in REFUSED.items()
        for bad in values
    ],
)
def test_a_broken_answer_is_refused_naming_what_is_wrong(text, match):
    # A ValueError: the hook and the task treat contract errors as non-retryable.
    with pytest.raises(ValueError, match=match) as refused:
        parse_response(text)
    assert refused.type is CoordinatorResponseError


# --- summarize --------------------------------------------------------------------------------

SUMMARY = ("stalled_count", "stalled_batch_ids", "stalled_results", "truncated", "batches_checked")


def test_the_summary_lists_the_stalled_batches_only_in_the_coordinators_order_and_round_trips_json():
    results = [result("b1", completion_pct=95, extra={"x": [1, 2]}), result("b2", False, completion_pct=50)]
    results.append(result("b3", minutes_since_progress=30))
    summary = summarize(parse_response(body(results)))
    expected = [2, ["b1", "b3"], [results[0], results[2]], False, 3, 2]
    assert [summary[key] for key in (*SUMMARY, "batches_completed")] == expected
    assert json.loads(json.dumps(summary)) == summary


def test_a_summary_with_nothing_stalled_is_empty_and_not_truncated():
    summary = summarize(parse_response(body([result("b1", False), result("b2", False)])))
    assert [summary[key] for key in SUMMARY[:4]] == [0, [], [], False]


LONG_ASCII = "batch-{i:05d}-" + "x" * 488
LONG_CJK = "批次-{i:05d}-" + "数据" * 246
LONG_EMOJI = "{i:05d}" + "🚀" * 495


@pytest.mark.parametrize("pattern", [LONG_ASCII, LONG_CJK, LONG_EMOJI], ids=["ascii", "cjk", "emoji"])
def test_ten_thousand_long_stalled_ids_stay_under_the_xcom_limit(pattern):
    ids = [pattern.format(i=i) for i in range(10_000)]
    assert all(len(batch_id) >= 500 for batch_id in ids)
    results = [result(b, completion_pct=91.5, action="auto_completed", note="é" * 50) for b in ids]
    summary = summarize(parse_response(body(results)))
    assert max(xcom_sizes(summary)) < XCOM_LIMIT_BYTES
    counts = (summary["stalled_count"], summary["batches_completed"])
    assert counts == (10_000, 10_000) and summary["truncated"] is True
    # What is kept is the head of the list, unchanged, ids first.
    kept_ids = summary["stalled_batch_ids"]
    assert 0 < len(kept_ids) < 10_000
    assert kept_ids == ids[: len(kept_ids)]
    assert summary["stalled_results"] == results[: len(summary["stalled_results"])]


def test_ten_thousand_mostly_healthy_batches_keep_every_stalled_one():
    stalled_at = set(range(0, 10_000, 1_000))
    results = [
        result(f"batch-{i:05d}-" + "y" * 488, i in stalled_at, completion_pct=99) for i in range(10_000)
    ]
    summary = summarize(parse_response(body(results)))
    assert max(xcom_sizes(summary)) < XCOM_LIMIT_BYTES
    kept = [results[i] for i in sorted(stalled_at)]
    assert [summary[key] for key in SUMMARY[:5]] == [10, [r["batch_id"] for r in kept], kept, False, 10_000]


@pytest.mark.parametrize("count", [1, 100, 300, 320, 340, 360, 400, 500, 1_000, 10_000])
def test_truncated_says_whether_either_list_was_cut(count):
    results = [result(f"batch-{i:05d}-" + "w" * 86) for i in range(count)]
    summary = summarize(parse_response(body(results)))
    cut = len(summary["stalled_batch_ids"]) < count or len(summary["stalled_results"]) < count
    assert summary["truncated"] is cut
    assert summary["stalled_count"] == count


def test_huge_result_fields_are_cut_but_the_count_stays_true():
    summary = summarize(parse_response(body([result(f"b{i}", log="z" * 20_000) for i in range(10_000)])))
    assert max(xcom_sizes(summary)) < XCOM_LIMIT_BYTES
    assert (summary["stalled_count"], summary["truncated"]) == (10_000, True)


def test_a_single_result_larger_than_the_budget_is_dropped_not_kept_whole():
    summary = summarize(parse_response(body([result("big", log="z" * 200_000)])))
    assert max(xcom_sizes(summary)) < XCOM_LIMIT_BYTES
    assert [summary[key] for key in ("stalled_count", "stalled_batch_ids", "truncated")] == [1, ["big"], True]


# --- the fingerprint --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_the_fingerprint_does_not_depend_on_order(seed):
    ids = [f"b{i}" for i in range(50)] + ["批次", "🚀", "x" * 500]
    shuffled = ids[:]
    random.Random(seed).shuffle(shuffled)
    assert stalled_fingerprint(shuffled) == stalled_fingerprint(ids)


# fmt: off
DIFFERENT_SETS = {
    "other-id": (["b1"], ["b2"]), "superset": (["b1"], ["b1", "b2"]), "empty": ([], ["b1"]),
    "one-differs": (["b1", "b2"], ["b1", "b3"]), "newline-inside": (["a\nb"], ["a", "b"]),
    "comma-inside": (["a,b"], ["a", "b"]), "joined": (["ab"], ["a", "b"]), "case": (["B1"], ["b1"]),
}
# fmt: on


@pytest.mark.parametrize(("first", "second"), DIFFERENT_SETS.values(), ids=list(DIFFERENT_SETS))
def test_different_stalled_sets_have_different_fingerprints(first, second):
    assert stalled_fingerprint(first) != stalled_fingerprint(second)


def test_the_summary_fingerprint_ignores_result_order_and_healthy_batches():
    one = [result("b1"), result("h1", False), result("b2")]
    other = [result("b2"), result("b1"), result("h2", False), result("h3", False)]
    fingerprints = {summarize(parse_response(body(results)))["fingerprint"] for results in (one, other)}
    assert len(fingerprints) == 1


def test_the_summary_fingerprint_covers_ids_beyond_the_cut():
    ids = [LONG_ASCII.format(i=i) for i in range(10_000)]
    first = summarize(parse_response(body([result(b) for b in ids])))
    second = summarize(parse_response(body([result(b) for b in [*ids[:-1], "another-last-one"]])))
    assert first["truncated"] and second["truncated"]
    assert first["stalled_batch_ids"] == second["stalled_batch_ids"]
    assert first["fingerprint"] != second["fingerprint"]
