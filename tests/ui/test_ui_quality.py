"""Alert quality and patterns: `api/quality`, `api/patterns` and the page's sections, against the
Firestore emulator with `history_data.story` seeded (its incidents' labels, its run records).

The clock is frozen at NOW = 12:30 on Tuesday 10 March 2026, so H = 12:00 UTC = 08:00 in New York
(daylight time since Sunday 8 March). See history_data.story for what lies where.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.ui import history_data
from tests.ui.conftest import NOW

MON, TUE, SUN = 0, 1, 6


@pytest.fixture
def story(db):
    history_data.write(db, history_data.story(NOW))


def between(page: str, start: str, end: str) -> str:
    """The text after the first `start` up to the next `end`."""
    return page.split(start, 1)[1].split(end, 1)[0]


def get(client, path: str) -> dict:
    response = client.get(f"/batch-cleanup/api/{path}")
    assert response.status_code == 200, response.text
    return response.json()


# The three incidents of the last 7 days' story by severity, then 30 and 90 days: the burst (CRITICAL,
# labelled real, reaction after 4 min, resolved after 105), today's open WARNING (no label), ten
# days ago's WARNING (noise, 30 and 60 min), 40 days ago's WARNING (disputed, 10 and 60 min).
@pytest.mark.parametrize(
    ("range_", "total", "warning", "pages_per_week"),
    [
        ("7d", "1 of 1 labelled incident was real; 1 not labelled", "1 incident, not labelled", 1.0),
        (
            "30d",
            "1 of 2 labelled incidents were real; 1 not labelled",
            "0 of 1 labelled incident was real; 1 not labelled",
            0.23,  # 1 CRITICAL in 30/7 weeks
        ),
        (
            "90d",
            "1 of 3 labelled incidents were real (1 disputed); 1 not labelled",
            "0 of 2 labelled incidents were real (1 disputed); 1 not labelled",
            0.08,
        ),
    ],
)
def test_quality_figures_from_the_seeded_labels(story, make_client, range_, total, warning, pages_per_week):
    body = get(make_client(), f"quality?range={range_}")

    figures = body["quality"]
    assert set(figures) == {"WARNING", "CRITICAL", "total"}
    assert (figures["total"]["said"], figures["WARNING"]["said"]) == (total, warning)
    assert figures["CRITICAL"]["said"] == "1 of 1 labelled incident was real"
    assert figures["total"]["critical_pages_per_week"] == figures["CRITICAL"]["critical_pages_per_week"]
    assert figures["CRITICAL"]["critical_pages_per_week"] == pages_per_week
    assert figures["WARNING"]["critical_pages_per_week"] == 0
    # The other DAG's CRITICAL incident (labelled real) is never counted.
    assert figures["CRITICAL"]["incidents"] == 1
    assert body["window"]["range"] == range_
    read = {"7d": 2, "30d": 3, "90d": 4}[range_]
    assert (body["incidents_read"], body["incidents_truncated"]) == (read, False)


def test_quality_in_numbers_over_90_days(story, make_client):
    total = get(make_client(), "quality?range=90d")["quality"]["total"]

    counts = ("incidents", "labelled", "real", "noise", "disputed")
    assert [total[k] for k in counts] == [4, 3, 1, 1, 1]
    precision = total["precision"]
    assert precision["value"] == pytest.approx(1 / 3)
    assert (round(precision["low"], 3), round(precision["high"], 3)) == (0.061, 0.792)  # Wilson, 1 of 3
    # Reactions after 4, 30 and 10 minutes; resolved after 105, 60 and 60 (the open one is not).
    assert total["first_reaction_minutes"] == {"median": 10.0, "p90": 26.0, "count": 3}
    assert total["resolve_minutes"] == {"median": 60.0, "p90": 96.0, "count": 3}


def test_quality_of_a_range_without_incidents(db, make_client):
    total = get(make_client(), "quality?range=7d")["quality"]["total"]
    assert (total["incidents"], total["said"], total["precision"]) == (0, "no incidents", None)


def test_patterns_from_the_seeded_run_records(story, make_client):
    body = get(make_client(), "patterns?range=7d")

    patterns = body["patterns"]
    assert (patterns["runs"], patterns["cleanups"], patterns["auto_completed"]) == (184, 17, 23)
    assert (patterns["zone"], body["runs_truncated"]) == ("America/New_York", False)
    cells = patterns["heatmap"]["cells"]
    # The burst: Sunday 8 March 10:02–10:52 UTC is 06:02–06:52 in New York, already daylight time;
    # six cleanups of 2 batches (200 checked) and the hour's run that found nothing.
    burst = {"runs": 7, "cleanups": 6, "auto_completed": 12, "checked": 1400, "rate": 12 / 1400}
    assert cells[SUN][6] == burst
    # Today's incident: 10:05, 10:20, 10:35 UTC (180 checked each) and 10:45 (200) are 06:xx EDT.
    assert cells[TUE][6] == {"runs": 4, "cleanups": 3, "auto_completed": 3, "checked": 740, "rate": 3 / 740}
    assert cells[MON][2]["runs"] == 1 and cells[MON][2]["cleanups"] == 0  # 06:45 UTC, a quiet hour
    assert patterns["cluster"] == {"start_hour": 6, "end_hour": 9, "days": None, "cleanups": 17, "of": 17}
    # 180 or 200 checked per run: one bin, nothing to compare.
    [volume] = patterns["volume"]
    assert (volume["low"], volume["high"], volume["runs"], volume["checked"]) == (180, 200, 184, 36700)
    assert patterns["sentence"] == (
        "Cleanups cluster 06:00–09:00 New York time (17 of 17); "
        "the volume checked per run varied too little to compare rates."
    )


def test_patterns_of_a_range_without_run_records(db, make_client):
    patterns = get(make_client(), "patterns?range=90d")["patterns"]
    assert (patterns["runs"], patterns["rate"], patterns["volume"]) == (0, None, [])
    assert patterns["sentence"] == "No runs recorded in this range."


def test_patterns_past_the_runs_limit_say_so(story, make_client):
    body = get(make_client(max_runs=10), "patterns?range=30d")
    assert (body["patterns"]["runs"], body["runs_truncated"]) == (10, True)


@pytest.mark.parametrize("endpoint", ["quality", "patterns"])
@pytest.mark.parametrize("range_", ["24h", "1y", ""])
def test_an_unknown_range_is_refused_naming_the_field(db, make_client, endpoint, range_):
    response = make_client().get(f"/batch-cleanup/api/{endpoint}?range={range_}")
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "range"]
    assert "'7d', '30d' or '90d'" in error["msg"]


def test_the_page_shows_the_quality_table(story, make_client):
    page = make_client().get("/batch-cleanup/?range=7d&quality_range=90d").text

    row = between(page, '<tr id="quality-total">', "</tr>")
    assert "<td>4</td>" in row
    assert "1 of 3 labelled incidents were real (1 disputed); 1 not labelled" in row
    assert "1 real · 1 noise · 1 disputed" in row
    assert '<td class="precision">33 % <small>(6 % – 79 %)</small></td>' in row
    assert '<td class="reaction">10 min / 26 min <small>(3)</small></td>' in row
    assert '<td class="resolve">1 h 00 min / 1 h 36 min <small>(3)</small></td>' in row
    critical = between(page, '<tr id="quality-critical">', "</tr>")
    assert "1 of 1 labelled incident was real" in critical and "<td>0.08</td>" in critical
    warning = between(page, '<tr id="quality-warning">', "</tr>")
    assert '<td class="reaction">20 min / 28 min <small>(2)</small></td>' in warning
    assert 'aria-current="page">90d</a>' in page
    # The upper part keeps its own range.
    assert '<p class="big" id="total-cleanups">17</p>' in page


def test_the_page_shows_the_heatmap_and_the_sentence(story, make_client):
    page = make_client().get("/batch-cleanup/?range=24h&quality_range=7d").text

    assert (
        '<p class="reading" id="patterns-sentence">Cleanups cluster 06:00–09:00 New York time (17 of 17); '
        "the volume checked per run varied too little to compare rates.</p>"
    ) in page
    sunday = between(between(page, 'id="heatmap-cleanups"', "</table>"), "<th>Sun</th>", "</tr>")
    cells = sunday.split("<td")[1:]
    assert len(cells) == 24
    # The busiest cell is the darkest.
    assert cells[6].startswith(' style="--shade: 1.00" title="Sun 06:00–07:00: 6 cleanups in 7 runs">6</td>')
    # Sunday 8 March had no 02:00 in New York (daylight time began): no run, outlined.
    assert cells[2].startswith(
        ' class="empty" style="--shade: 0.00" title="Sun 02:00–03:00: 0 cleanups in 0 runs"></td>'
    )
    rates = between(between(page, 'id="heatmap-rate"', "</table>"), "<th>Sun</th>", "</tr>")
    assert rates.split("<td")[7].strip().endswith(">0.86</td>")  # 12 of 1,400
    assert "<td>180–200</td><td>184</td><td>17</td><td>23</td><td>36,700</td>" in page
    assert '<a href="api/patterns?range=7d">api/patterns</a>' in page


def test_the_quality_range_of_the_page_is_checked(db, make_client):
    response = make_client().get("/batch-cleanup/?quality_range=24h")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "quality_range"]


def test_a_label_the_page_cannot_read_counts_as_unlabelled_and_is_logged_by_document(db, make_client, caplog):
    history = history_data.History()
    opened = history_data.hour_of(NOW) - timedelta(hours=3)
    history.incident(opened, None, severity="WARNING", peak_severity="WARNING",
                     label={"value": "<script>alert(1)</script>"})  # fmt: skip
    history_data.write(db, history)
    client = make_client()

    response = client.get("/batch-cleanup/api/quality?range=7d")
    assert response.status_code == 200, "one bad document blocks no figure"
    total = response.json()["quality"]["total"]
    assert (total["incidents"], total["labelled"]) == (1, 0)
    assert "batch_cleanup_incidents/stalled_batch_cleanup-20260310T090000Z.label.value" in caplog.text
    page = client.get("/batch-cleanup/?quality_range=7d")
    assert page.status_code == 200 and "<script>alert(1)" not in page.text
    assert "<script>alert(1)" not in page.text


@pytest.mark.parametrize("path", ["/api/quality?range=7d", "/api/patterns?range=90d"])
def test_signed_out_is_401_and_a_reader_may_read(db, make_client, path):
    response = make_client(signed_in=False).get(f"/batch-cleanup{path}")
    assert (response.status_code, response.json()) == (401, {"detail": "Not authenticated"})
    assert make_client().get(f"/batch-cleanup{path}").status_code == 200


@pytest.mark.parametrize("path", ["/api/quality", "/api/patterns"])
def test_a_user_without_read_access_to_the_dag_gets_403(db, make_client, monkeypatch, path):
    from airflow.api_fastapi.core_api.security import get_user

    from batch_cleanup.ui import auth
    from tests.ui.conftest import FakeUser

    class NoAccess:
        def is_authorized_dag(self, *, method, details, user, access_entity=None):
            return False

    monkeypatch.setattr(auth, "get_auth_manager", NoAccess)
    response = make_client(signed_in=False, overrides={get_user: FakeUser}).get(f"/batch-cleanup{path}")
    assert response.status_code == 403


def test_the_page_embeds_no_quality_in_the_charts_json(story, make_client):
    """The charts' JSON stays what api/summary answers; the quality has its own endpoint."""
    page = make_client().get("/batch-cleanup/?range=7d").text
    data = json.loads(page.split('id="history-data">')[1].split("</script>")[0])
    assert "quality" not in data and "patterns" not in data


# --- the run records' read ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def put_run(db, at, checked: int, stalled: int = 0, dag_id: str = history_data.DAG_ID) -> str:
    doc_id, document = history_data.run_record({"at": at, "checked": checked, "stalled": stalled}, dag_id)
    db.collection(history_data.RUNS).document(doc_id).set(document)
    return doc_id


def test_run_records_are_read_start_exclusive_end_inclusive_and_only_this_dags(db):
    from batch_cleanup.ui.queries import HistoryStore

    h = history_data.hour_of(NOW)
    start, end = h - timedelta(days=3), h
    for at, checked in [(start, 1), (start + timedelta(minutes=15), 2), (h - timedelta(days=1), 3), (end, 4)]:
        put_run(db, at, checked)
    put_run(db, end + timedelta(minutes=15), 5)
    put_run(db, h - timedelta(hours=1), 6, dag_id="other_dag")

    runs, truncated = HistoryStore(dag_id=history_data.DAG_ID).runs(start, end)

    assert [(r.run_after, r.batches_checked) for r in runs] == [
        (start + timedelta(minutes=15), 2), (h - timedelta(days=1), 3), (end, 4)
    ]  # fmt: skip
    assert truncated is False
    assert runs[0].kind == "none" and runs[0].dag_id == history_data.DAG_ID


def test_settled_days_are_kept_while_their_totals_stand_and_the_newest_read_each_time(db):
    """Runs up to two hours before the range's end may still be writing: they are read every time.
    Older days are read again when Firestore's count or sums for them change, or after an hour
    without a read."""
    from batch_cleanup.ui.queries import KEEP_SECONDS, HistoryStore

    h = history_data.hour_of(NOW)  # 12:00 UTC; today's runs are not settled yet
    start, end = h - timedelta(days=3), h
    old = put_run(db, h - timedelta(days=2), 10)
    put_run(db, h.replace(hour=0), 20)  # the end of yesterday: kept with yesterday
    clock = Clock()
    store = HistoryStore(dag_id=history_data.DAG_ID, clock=clock)
    queried = []
    query_runs = store._query_runs
    store._query_runs = lambda start, end: queried.append((start, end)) or query_runs(start, end)

    def read(since=start) -> list[int]:
        queried.clear()
        return [run.batches_checked for run in store.runs(since, end)[0]]

    assert read() == [10, 20] and len(queried) == 2  # the settled days, then today
    put_run(db, h - timedelta(hours=2), 30)
    assert read() == [10, 20, 30] and queried == [(h.replace(hour=0), end)]  # today only
    # A day cleared and run again: its sums change, so the settled days are read again.
    db.collection(history_data.RUNS).document(old).update({"batches_checked": 11, "kind": "alert"})
    assert read() == [11, 20, 30] and len(queried) == 2
    # A change the totals do not show is seen once no read used the day for an hour.
    db.collection(history_data.RUNS).document(old).update({"kind": "reminder"})
    clock.seconds = KEEP_SECONDS
    assert read() == [11, 20, 30] and len(queried) == 1
    assert store.runs(start, end)[0][0].kind == "alert"
    clock.seconds = 2 * KEEP_SECONDS + 1
    assert read() == [11, 20, 30] and len(queried) == 2
    assert store.runs(start, end)[0][0].kind == "reminder"
    # A longer range reads all its settled days again, once.
    assert read(start - timedelta(days=1)) == [11, 20, 30] and len(queried) == 2
    assert read(start - timedelta(days=1)) == [11, 20, 30] and len(queried) == 1


def test_past_the_limit_the_newest_runs_are_kept_and_nothing_is_cached(db):
    from batch_cleanup.ui.queries import HistoryStore

    h = history_data.hour_of(NOW)
    for i in range(1, 9):
        put_run(db, h - timedelta(hours=12 * i), i)
    store = HistoryStore(dag_id=history_data.DAG_ID, max_runs=3)

    runs, truncated = store.runs(h - timedelta(days=5), h)

    assert ([r.batches_checked for r in runs], truncated) == ([3, 2, 1], True)
    assert store._days == {}


def test_a_run_record_without_readable_counts_is_left_out_and_logged(db, caplog):
    import logging

    from batch_cleanup.ui.queries import HistoryStore

    h = history_data.hour_of(NOW)
    put_run(db, h - timedelta(hours=1), 100, 2)
    bad = put_run(db, h - timedelta(hours=2), 100)
    db.collection(history_data.RUNS).document(bad).update({"stalled_count": "3"})

    with caplog.at_level(logging.WARNING, logger="batch_cleanup.ui.queries"):
        runs, _ = HistoryStore(dag_id=history_data.DAG_ID).runs(h - timedelta(hours=3), h)

    assert [(r.batches_checked, r.stalled_count) for r in runs] == [(100, 2)]
    assert "1 of 2 batch_cleanup_runs records" in caplog.text


def test_incidents_are_read_overlapping_the_range_or_opened_in_it_only_this_dags(db):
    """The page's timeline reads those that overlap `(start, end]`; the quality figures those opened
    in it, newest first. Either says when a query's limit left some out."""
    from batch_cleanup.ui.queries import QUALITY_FIELDS, HistoryStore

    h = history_data.hour_of(NOW)
    history = history_data.History()
    seeded = [
        ("closed-before", h - timedelta(hours=30), h - timedelta(hours=24)),  # closed at the start
        ("spans-start", h - timedelta(hours=30), h - timedelta(hours=20)),
        ("open-since-before", h - timedelta(hours=26), None),
        ("inside", h - timedelta(hours=3), h - timedelta(hours=2)),
        ("newest", h - timedelta(hours=1), None),
    ]
    for name, opened, closed in seeded:
        history.incident(opened, closed, name=name, label=history_data.label("real", opened))
    history.incident(h - timedelta(hours=2), None, dag_id="other_dag", name="other")
    history_data.write(db, history)
    store = HistoryStore(dag_id=history_data.DAG_ID)
    start = h - timedelta(hours=24)

    def names(found: list[dict]) -> list[str]:
        return [document["name"] for document in found]

    overlapping, truncated = store.incidents(start, h, [*QUALITY_FIELDS, "name"])
    assert sorted(names(overlapping)) == ["inside", "newest", "open-since-before", "spans-start"]
    assert truncated is False
    opened, truncated = store.incidents(start, h, [*QUALITY_FIELDS, "name"], opened_only=True)
    assert (names(opened), truncated) == (["newest", "inside"], False)
    assert set(opened[0]) == {"id", "dag_id", "opened_at", "closed_at", "label", "name"}, "the fields it has"
    assert opened[0]["id"] == f"{history_data.DAG_ID}-{h - timedelta(hours=1):%Y%m%dT%H%M%SZ}"
    # Three opened in the range, the other DAG's among them: a limit of three cut the read.
    assert store.incidents(start, h, opened_only=True, limit=3)[1] is True
    assert store.incidents(start, h, opened_only=True, limit=4)[1] is False
    assert store.incidents(start, h, limit=2)[1] is True
