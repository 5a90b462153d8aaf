"""The JSON endpoints and the page against the Firestore emulator, with `history_data.story` (its
events, incidents and run records) seeded there.

The clock is frozen at NOW = 12:30, so H = 12:00 (see history_data.story for what lies where).
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from tests.conftest import OUTPUT
from tests.ui import history_data
from tests.ui.conftest import NOW
from tests.ui.history_data import NOTHING_CHECKED

H = history_data.hour_of(NOW)
TIMES = ("run_after", "start_date", "end_date")
LAST_EVENT_RUN = f"scheduled__{(H - timedelta(minutes=30)).isoformat()}"  # the event at H - 20 min


@pytest.fixture
def story(db):
    history_data.write(db, history_data.story(NOW))


def rates(cleanups, stalled, checked, runs, source="runs"):
    """A range's or a day's figures: `source` says whose checked batches the rate is over."""
    figures = {"cleanups": cleanups, "stalled": stalled, "checked": checked, "runs": runs}
    return {**figures, "rate": stalled / checked, "rate_source": source}


def totals(*figures, source="runs", truncated=False):
    return {**rates(*figures, source=source), "runs_truncated": truncated}


def day(date, *figures, source="runs"):
    return {"day": date, **rates(*figures, source=source)}


def run(run_id=LAST_EVENT_RUN, state="success"):
    return {"run_id": run_id, "state": state, "run_type": "scheduled", **dict.fromkeys(TIMES, H)}


@pytest.mark.parametrize(
    ("range_", "cleanups", "hours", "runs", "stalled", "checked"),
    [
        # 24h: the open incident's five cleanups: 3 at H-2, 2 at H-1. Their 5 runs checked 180
        # each; 23 runs at :45 found nothing stalled in 200 each.
        ("24h", 5, {21: 3, 22: 2}, 5 + 23, 5, 5 * 180 + 23 * 200),
        # 7d adds the CRITICAL burst (6 × 2 at H-50) and six quiet days (1 each); 17 runs with a
        # cleanup, 167 without.
        ("7d", 17, {117: 6, 165: 3, 166: 2}, 17 + 167, 23, 3300 + 167 * 200),
        # 30d adds 23 quiet days and batch-d's 3 at H-240 (the hour of quiet day 10: 4 in all);
        # the event 800 h ago stays out. Runs are recorded for the last 8 days only: the
        # 19 with a cleanup (8 quiet days, the burst, today's 5) and 192 without.
        ("30d", 43, {719 - 50: 6, 719 - 240: 4, 717: 3, 718: 2}, 19 + 192, 25, 3700 + 192 * 200),
    ],
)
def test_cleanups_per_hour_and_totals(story, make_client, range_, cleanups, hours, runs, stalled, checked):
    body = make_client().get(f"/batch-cleanup/api/cleanups?range={range_}").json()

    data = body["cleanups"]
    assert data["totals"] == totals(cleanups, stalled, checked, runs)
    assert len(data["hours"]) == len(data["cleanups"]) == {"24h": 24, "7d": 168, "30d": 720}[range_]
    assert {i: n for i, n in enumerate(data["cleanups"]) if n > 1} == hours  # the busy ones
    assert sum(data["cleanups"]) == cleanups
    assert data["hours"][-1] == "2026-03-10T12:00:00Z"
    assert (data["events_read"], data["events_truncated"]) == (cleanups, False)
    assert body["thresholds"] == {"warning": 3, "critical": 4, "window_minutes": 60}
    assert body["window"]["range"] == range_


def test_without_run_records_the_rate_is_the_cleanups_upper_bound(db, make_client):
    """No run record (expired, or before the DAG wrote them): the rate over the runs that cleaned up,
    and said so."""
    story = history_data.story(NOW)
    story.runs = []  # events only
    history_data.write(db, story)

    got = make_client().get("/batch-cleanup/api/cleanups?range=7d").json()["cleanups"]["totals"]

    assert got == totals(17, 23, 3300, 0, source="cleanups")
    page = make_client().get("/batch-cleanup/?range=7d").text
    assert '<p class="big" id="total-rate">≤ 0.70 %</p>' in page
    assert "checked in the runs that cleaned up" in page
    assert "it is an upper bound" in page


def test_past_the_runs_limit_only_the_newest_count_and_the_page_says_so(story, make_client):
    client = make_client(max_runs=10)

    got = client.get("/batch-cleanup/api/cleanups?range=7d").json()["cleanups"]["totals"]
    # The newest ten: today's five cleanups' runs (180 checked, 1 stalled each) and the runs
    # without one at 11:45, 10:45, 09:45, 08:45 and 07:45 (200 each).
    assert got == totals(17, 5, 5 * 180 + 5 * 200, 10, truncated=True)
    assert "Only the newest 10 runs are counted." in client.get("/batch-cleanup/?range=7d").text


def test_daily_auto_completions_and_rate(story, make_client):
    body = make_client().get("/batch-cleanup/api/daily?range=7d").json()

    days = {d["day"]: d for d in body["daily"]}
    assert (min(days), max(days), len(days)) == ("2026-03-03", "2026-03-10", 8)
    # The burst (6 × 2 stalled of 200) and the quiet day's cleanup at 12:10 fall on March 8,
    # with 24 runs that found nothing stalled in 200 batches each.
    assert days["2026-03-08"] == day("2026-03-08", 7, 13, 1400 + 24 * 200, 7 + 24)
    # Today: the open incident's 5 cleanups (180 checked each) and 12 runs without one.
    assert days["2026-03-10"] == day("2026-03-10", 5, 5, 900 + 12 * 200, 17)
    assert days["2026-03-07"]["rate"] == 1 / 5000
    # The window starts at 13:00: no cleanup, 11 runs that found nothing: a rate of 0.
    assert days["2026-03-03"] == day("2026-03-03", 0, 0, 11 * 200, 11)
    assert body["rate_target"] == 0.01


def test_days_older_than_the_run_records_fall_back_to_the_cleanups(story, make_client):
    days = {d["day"]: d for d in make_client().get("/batch-cleanup/api/daily?range=30d").json()["daily"]}

    # February 28: batch-d's 3 cleanups and a quiet day's, 200 checked each; no run kept.
    assert days["2026-02-28"] == day("2026-02-28", 4, 4, 800, 0, source="cleanups")
    # March 2, the day the run records begin at 12:00: the quiet day's run and 12 without cleanup.
    assert (days["2026-03-02"]["runs"], days["2026-03-02"]["checked"]) == (13, 13 * 200)
    assert days["2026-03-02"]["rate_source"] == "runs"
    page = make_client().get("/batch-cleanup/?range=30d").text
    assert "<td>2026-02-28</td><td>4</td><td>4</td><td>800</td><td>0</td><td>≤ 0.50 %</td>" in page
    assert "A rate marked ≤ is for a day without run results" in page
    # February 8 (from 13:00): nothing at all.
    assert days["2026-02-08"] == {"day": "2026-02-08", "cleanups": 0, **NOTHING_CHECKED}


@pytest.mark.parametrize(
    ("range_", "expected"),
    [
        ("24h", [("batch-c", 5)]),
        ("7d", [("batch-a", 7), ("batch-b", 6), ("batch-c", 5)]),
        ("30d", [("batch-a", 7), ("batch-b", 6), ("batch-c", 5), ("batch-d", 3)]),
    ],
)
def test_repeat_offenders(story, make_client, range_, expected):
    body = make_client().get(f"/batch-cleanup/api/offenders?range={range_}").json()
    assert [(o["batch_id"], o["cleanups"]) for o in body["offenders"]] == expected


def test_offenders_limit(story, make_client):
    client = make_client()
    body = client.get("/batch-cleanup/api/offenders?range=30d&limit=2").json()
    assert [o["batch_id"] for o in body["offenders"]] == ["batch-a", "batch-b"]
    assert body["offenders"][0]["last_seen"] == "2026-03-10T11:40:00Z"
    assert client.get("/batch-cleanup/api/offenders?limit=0").status_code == 422


INCIDENTS = [
    ("stalled_batch_cleanup-20260310T103500Z", True, "WARNING", "1 h 55 min"),
    ("stalled_batch_cleanup-20260308T102000Z", False, "CRITICAL", "1 h 45 min"),
    ("stalled_batch_cleanup-20260228T122500Z", False, "WARNING", "1 h 00 min"),
]


@pytest.mark.parametrize(("range_", "shown"), [("24h", 1), ("7d", 2), ("30d", 3)])
def test_incidents_in_the_window_newest_first(story, make_client, range_, shown):
    incidents = make_client().get(f"/batch-cleanup/api/incidents?range={range_}").json()["incidents"]
    assert [(i["id"], i["open"], i["peak_severity"], i["duration"]) for i in incidents] == INCIDENTS[:shown]


def test_an_incident_row_has_start_end_and_counts(story, make_client):
    [_, burst] = make_client().get("/batch-cleanup/api/incidents?range=7d").json()["incidents"]
    assert burst == {
        "id": "stalled_batch_cleanup-20260308T102000Z", "open": False, "severity": "WARNING",
        "peak_severity": "CRITICAL", "opened_at": "2026-03-08T10:20:00Z", "closed_at": "2026-03-08T12:05:00Z",
        "duration_seconds": 6300, "duration": "1 h 45 min", "peak_count": 6, "total_cleanups": 6,
        "batches": 2, "notifications": 3, "label": burst["label"],
    }  # fmt: skip
    assert (burst["label"]["value"], burst["label"]["source"]) == ("real", "reactions")


def test_an_incident_that_began_before_the_window_and_is_still_open_is_shown(db, make_client):
    history = history_data.History()
    history.incident(H - timedelta(days=3), None, severity="CRITICAL", peak_severity="CRITICAL")
    history_data.write(db, history)
    [row] = make_client().get("/batch-cleanup/api/incidents?range=24h").json()["incidents"]
    assert (row["open"], row["duration"]) == (True, "3 d 0 h")


def test_status_shows_the_open_incident_and_what_the_last_run_cleaned_up(story, make_client):
    body = make_client(last_run=run()).get("/batch-cleanup/api/status").json()

    assert body["state"]["open"] is True
    state = body["state"]
    assert (state["severity"], state["open_for"], state["last_count"]) == ("WARNING", "1 h 55 min", 2)
    assert body["last_run"]["stalled_count"] == 1
    assert body["last_run"]["state"] == "success"
    # A link into Airflow's UI, from the root Airflow is served at.
    assert body["last_run"]["url"] == (
        "/dags/stalled_batch_cleanup/runs/scheduled__2026-03-10T11%3A30%3A00%2B00%3A00"
    )


@pytest.mark.parametrize(("state", "stalled"), [("success", 0), ("failed", None)])
def test_a_last_run_without_an_event(story, make_client, state, stalled):
    body = make_client(last_run=run("manual__quiet", state)).get("/batch-cleanup/api/status").json()
    assert (body["last_run"]["state"], body["last_run"]["stalled_count"]) == (state, stalled)


def test_an_empty_database_shows_no_history_rather_than_failing(db, make_client):
    body = make_client().get("/batch-cleanup/api/summary?range=30d").json()
    assert body["cleanups"]["totals"] == {"cleanups": 0, **NOTHING_CHECKED, "runs_truncated": False}
    assert (body["incidents"], body["offenders"], body["last_run"]) == ([], [], None)
    assert body["state"]["open"] is False


def test_summary_is_the_parts_together_with_the_hours_at_warning_and_critical(story, make_client):
    client = make_client(last_run=run())
    summary = client.get("/batch-cleanup/api/summary?range=7d").json()
    week = summary["cleanups"]
    assert (week["peak"], week["hours_at_warning"], week["hours_at_critical"]) == (6, 1, 1)
    for part in ("cleanups", "daily", "incidents", "offenders"):
        assert summary[part] == client.get(f"/batch-cleanup/api/{part}?range=7d").json()[part]
    status = client.get("/batch-cleanup/api/status").json()
    assert (summary["state"], summary["last_run"]) == (status["state"], status["last_run"])


@pytest.mark.parametrize("query", ["summary?range=1y", "backtest?range=1y&warning_threshold=4"])
def test_an_unknown_range_is_refused(make_client, db, query):
    response = make_client().get(f"/batch-cleanup/api/{query}")
    assert response.status_code == 422
    assert "24h" in response.text


def test_events_read_are_bounded_and_newest_first(story, db):
    from batch_cleanup.ui.history import window
    from batch_cleanup.ui.queries import HistoryStore

    win = window("30d", NOW)
    store = HistoryStore(dag_id=history_data.DAG_ID)
    events, truncated = store.events(win.start, win.end, limit=4)
    assert truncated is True
    newest = [f"2026-03-10T{hh_mm}:00+00:00" for hh_mm in ("11:40", "11:10", "10:35", "10:20")]
    assert [e.timestamp.isoformat() for e in events] == newest
    # Totals come from an aggregation query: exact, whatever the limit.
    assert store.totals(win.start, win.end).count == 43


def test_the_range_is_read_as_the_dag_reads_its_window(db):
    """`(start, end]`, as `events.window_start` says: an event at the start is out, one at the end in."""
    from batch_cleanup.ui.queries import HistoryStore

    start, end = NOW - timedelta(hours=1), NOW
    for name, at in [("at-start", start), ("inside", start + timedelta(minutes=30)), ("at-end", end)]:
        event = {"timestamp": at, "stalled_count": 1, "batches_checked": 10, "batch_ids": [name]}
        db.collection(history_data.EVENTS).document(name).set({**event, "dag_id": history_data.DAG_ID})
    store = HistoryStore(dag_id=history_data.DAG_ID)

    events, _ = store.events(start, end)
    assert [e.batch_ids for e in events] == [("at-end",), ("inside",)]
    assert store.totals(start, end).count == 2
    window, _ = store.window_events(start, end)
    assert [e.id for e in window] == ["at-end", "inside"]


def test_the_page_shows_the_numbers(story, make_client):
    response = make_client(last_run=run()).get("/batch-cleanup/?range=7d")

    assert response.status_code == 200
    page = response.text
    assert '<p class="big" id="total-cleanups">17</p>' in page
    assert '<p class="big" id="total-rate">0.06 %</p>' in page  # 23 of 36,700
    assert '<strong id="total-stalled">23</strong>' in page
    assert '<strong id="total-checked">36,700</strong>' in page
    assert '<strong id="total-runs">184</strong>' in page
    assert "<td>2026-03-08</td><td>7</td><td>13</td><td>6,200</td><td>31</td><td>0.21 %</td>" in page
    assert '<p class="big" id="state-severity">WARNING</p>' in page
    assert "<code>batch-a</code></td><td>7</td>" in page
    link = "/dags/stalled_batch_cleanup/runs/scheduled__2026-03-10T11%3A30%3A00%2B00%3A00"
    assert f'href="{link}" target="_top"' in page
    # Assets come from the plugin itself, relative to the page: no CDN, works behind a base URL.
    assert '<script src="static/chart.umd.min.js"></script>' in page
    assert "http" not in page.split("<script")[1].split(">")[0]
    data = json.loads(page.split('id="history-data">')[1].split("</script>")[0])
    assert data["cleanups"]["totals"]["cleanups"] == 17


def test_the_page_says_when_the_charts_show_only_the_newest_events(story, make_client):
    page = make_client(max_events=10).get("/batch-cleanup/?range=30d").text
    assert "Charts show the newest 10 of 43 cleanups; totals count them all." in page
    assert '<p class="big" id="total-cleanups">43</p>' in page


# --- signed out ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/summary", "/api/cleanups", "/api/status", "/api/openapi.json"])
def test_json_endpoints_refuse_an_anonymous_request(db, make_client, path):
    response = make_client(signed_in=False).get(f"/batch-cleanup{path}")
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}


def test_the_page_sends_an_anonymous_browser_to_the_login_and_back_and_the_assets_are_public(db, make_client):
    client = make_client(signed_in=False)
    response = client.get("/batch-cleanup/?range=7d")
    assert response.status_code == 302
    assert response.headers["location"] == "/auth/login?next=%2Fbatch-cleanup%2F%3Frange%3D7d"
    # Static assets are public, like Airflow's own.
    asset = client.get("/batch-cleanup/static/chart.umd.min.js")
    assert asset.status_code == 200 and asset.text.startswith("/*!\n * Chart.js v4.6.1")


@pytest.mark.parametrize(("allowed", "status"), [(True, 200), (False, 403)])
def test_a_signed_in_user_needs_read_access_to_the_dag(db, make_client, monkeypatch, allowed, status):
    from airflow.api_fastapi.core_api.security import get_user

    from batch_cleanup.ui import auth
    from tests.ui.conftest import FakeUser

    asked = []

    class AuthManager:
        def is_authorized_dag(self, *, method, details, user, access_entity=None):
            asked.append((method, details.id, user.get_name()))
            return allowed

    monkeypatch.setattr(auth, "get_auth_manager", AuthManager)
    client = make_client(signed_in=False, overrides={get_user: FakeUser})

    response = client.get("/batch-cleanup/api/status")
    assert response.status_code == status
    assert asked == [("GET", "stalled_batch_cleanup", "tester")]
    if not allowed:
        detail = "Reading the cleanup history needs read access to DAG stalled_batch_cleanup"
        assert response.json() == {"detail": detail}


def test_the_openapi_schema_documents_every_endpoint(db, make_client):
    schema = make_client().get("/batch-cleanup/api/openapi.json").json()
    endpoints = ("summary", "cleanups", "daily", "offenders", "incidents", "status", "backtest", "quality")
    endpoints += ("patterns",)
    assert set(schema["paths"]) == {f"/api/{name}" for name in endpoints} | {
        "/api/incidents/{incident_id}/label"
    }


# --- latency -----------------------------------------------------------------------------------------


def test_thirty_days_at_one_cleanup_per_15_minutes(db, make_client):
    """A benchmark, printed and written to test-output/ui/latency-in-process.json; not a timed assertion."""
    steady = history_data.steady(NOW)
    history_data.write(db, steady)
    client = make_client(last_run=run())

    timings = {}
    for path in (f"/batch-cleanup/{part}?range=30d" for part in ("", "api/summary", "api/cleanups")):
        seconds = []
        for _ in range(6):
            started = time.perf_counter()
            response = client.get(path)
            seconds.append(time.perf_counter() - started)
            assert response.status_code == 200
        timings[path] = {"first": round(seconds[0], 3), "median_of_rest": round(sorted(seconds[1:])[2], 3)}
    body = client.get("/batch-cleanup/api/cleanups?range=30d").json()["cleanups"]

    assert len(steady.events) == len(steady.runs) == 2880
    assert body["totals"]["cleanups"] == body["events_read"] == body["totals"]["runs"] == 2880
    assert set(body["cleanups"]) == {4}
    out = OUTPUT / "ui" / "latency-in-process.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(timings, indent=2))
    print(f"\nin-process, 2,880 events on the emulator (seconds): {json.dumps(timings)}")
