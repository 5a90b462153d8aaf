"""The threshold backtest, `api/backtest` and the page's section, against the Firestore emulator with
`history_data.story` seeded. The clock is frozen at NOW = 12:30, H = 12:00 (see history_data.story).

With the DAG's thresholds (WARNING 3, CRITICAL 5, 60-minute window and cooldown) the story's
cleanups make three incidents in 30 days, replayed at every quarter hour:

| incident | opened | closed | peak |
|---|---|---|---|
| today's (3 cleanups from H-2 h :05) | H-75 min (10:45) | H-30 min | WARNING 3 |
| the burst two days ago (6 from H-50 h :02) | H-50 h :30 | H-49 h :45 | CRITICAL 6 |
| ten days ago (batch-d's 3 and a quiet day's) | H-240 h :15 | H-239 h :15 | WARNING 4 |

Each sends an ALERT and a RESOLVED; the burst also escalates to CRITICAL (a page).
WARNING at 4 spares today's incident and still pages for the burst.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.dags import conftest as scenarios
from tests.scenario import stalled
from tests.ui import history_data
from tests.ui.conftest import NOW

fresh = scenarios.fresh  # empty stand-ins, for the DAG runs below

H = history_data.hour_of(NOW)
DEFAULTS = {"warning_threshold": 3, "critical_threshold": 4, "window_minutes": 60, "cooldown_minutes": 60}
TOTALS = ("incidents", "messages_sent", "critical_pages", "hours_at_warning", "hours_at_critical", "missed")
FIELDS = ("opened_at", "closed_at", "peak_severity", "peak_count", "duration_seconds", "duration", "messages")


def closed(*values, real=()) -> dict:
    """An incident of the replay, opened and closed: FIELDS in order, and the real incidents it overlaps."""
    return {"open": False, **dict(zip(FIELDS, values, strict=True)), "real": list(real)}


TODAY = closed("2026-03-10T10:45:00Z", "2026-03-10T11:30:00Z", "WARNING", 3, 45 * 60, "45 min", 2)
# Four messages: WARNING, CRITICAL, getting worse (six), RESOLVED.
BURST = closed("2026-03-08T10:30:00Z", "2026-03-08T11:45:00Z", "CRITICAL", 6, 75 * 60, "1 h 15 min", 4)
# CRITICAL at four: every scheduled run of the window cleaned up.
TEN_DAYS_AGO = closed("2026-02-28T12:15:00Z", "2026-02-28T13:15:00Z", "CRITICAL", 4, 3600, "1 h 00 min", 3)


@pytest.fixture
def story(db):
    """The seeded history without its labels: the scores are tested on `history_data.scored`."""
    history = history_data.story(NOW)
    for incident in history.incidents.values():
        incident.pop("label", None)
    history_data.write(db, history)


def backtest(client, query: str = "", range_: str = "30d") -> dict:
    response = client.get(f"/batch-cleanup/api/backtest?range={range_}&{query}")
    assert response.status_code == 200, response.text
    timed = {part.split(";dur=")[0].strip() for part in response.headers["server-timing"].split(",")}
    reads = {"events", "runs", "labels"} | ({"run_records"} if "burn_rate" in query else set())
    assert timed == {*reads, "replay", "total"}, "the replay is timed apart from the reads"
    return response.json()["backtest"]


def test_warning_at_4_spares_todays_incident_and_still_pages_for_the_burst(story, make_client):
    """The candidate moves both thresholds up by one (WARNING at 4, CRITICAL at 5)."""
    body = backtest(make_client(), "warning_threshold=4&critical_threshold=5")

    # From 13:00 thirty days ago to now, 12:30.
    runs = (30 * 96 - 1, "2026-02-08T13:00:00Z", "2026-03-10T12:30:00Z")
    assert (body["runs"], body["first_run"], body["last_run"]) == runs
    read = ("2026-03-10T12:30:00Z", 43, False)
    assert (body["until"], body["events_read"], body["events_truncated"]) == read
    current, candidate = body["current"], body["candidate"]
    assert current["settings"] == DEFAULTS
    assert current["totals"] == dict(zip(TOTALS, (3, 9, 2, 1.5, 1.5, 0), strict=True))
    assert current["messages"] == {"alert": 3, "escalation": 2, "worsening": 1, "reminder": 0, "resolved": 3}
    assert current["incidents"] == [
        {**TODAY, "matched": False},
        {**BURST, "matched": True},
        {**TEN_DAYS_AGO, "matched": True},
    ]
    assert candidate["settings"] == {**DEFAULTS, "warning_threshold": 4, "critical_threshold": 5}
    # Missed: today's.
    assert candidate["totals"] == dict(zip(TOTALS, (2, 5, 1, 1.0, 0.5, 1), strict=True))
    # The burst pages at once when it reaches five; the older one opens a run later, at four.
    assert [
        (i["opened_at"], i["peak_severity"], i["duration"], i["messages"]) for i in candidate["incidents"]
    ] == [("2026-03-08T10:45:00Z", "CRITICAL", "45 min", 3), ("2026-02-28T12:30:00Z", "WARNING", "45 min", 2)]


def test_without_a_candidate_both_sides_are_the_dags_thresholds(story, make_client):
    body = backtest(make_client(), range_="24h")

    assert body["current"] == body["candidate"]
    assert body["current"]["settings"] == DEFAULTS
    assert body["current"]["incidents"] == [{**TODAY, "matched": True}]
    assert (body["runs"], body["first_run"]) == (24 * 4 - 1, "2026-03-09T13:00:00Z")


@pytest.mark.parametrize(
    ("query", "settings"),
    [
        ("critical_threshold=6", {**DEFAULTS, "critical_threshold": 6}),
        ("warning_threshold=&window_minutes=90", {**DEFAULTS, "window_minutes": 90}),
        ("cooldown_minutes=15&critical_threshold=4&warning_threshold=2", {
            "warning_threshold": 2, "critical_threshold": 4, "window_minutes": 60, "cooldown_minutes": 15,
        }),
    ],
    ids=["one-field", "an-empty-field-is-missing", "all-but-one"],
)  # fmt: skip
def test_a_missing_candidate_field_is_the_dags_default(story, make_client, query, settings):
    assert backtest(make_client(), query, range_="7d")["candidate"]["settings"] == settings


def refused(query: str, reason: str) -> tuple[str, str, str]:
    """A value its Param's schema refuses, and what Airflow says of it (the first line)."""
    field = query.partition("=")[0]
    return query, field, f"Invalid input for param {field}: {reason}"


NOT_ABOVE = "critical_threshold ({}) must be greater than warning_threshold ({})"


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        refused("warning_threshold=0", "0 is less than the minimum of 1"),
        refused("window_minutes=1441", "1441 is greater than the maximum of 1440"),
        refused("cooldown_minutes=soon", "'soon' is not of type 'integer'"),
        refused("critical_threshold=4.5", "4.5 is not of type 'integer'"),
        refused("critical_threshold=true", "True is not of type 'integer'"),
        ("warning_threshold=5", "critical_threshold", NOT_ABOVE.format(4, 5)),
        ("warning_threshold=6&critical_threshold=4", "critical_threshold", NOT_ABOVE.format(4, 6)),
    ],
    ids=[
        "below-the-minimum", "above-the-maximum", "not-a-number", "not-an-integer", "a-boolean",
        "critical-not-above-the-default-warning", "critical-below-warning",
    ],
)  # fmt: skip
def test_a_candidate_the_trigger_form_refuses_is_a_422_naming_the_field(
    db, make_client, query, field, message
):
    response = make_client().get(f"/batch-cleanup/api/backtest?{query}")

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["msg"], error["type"]) == (["query", field], message, "value_error")


def test_the_read_is_what_the_dags_window_reads(db, make_client):
    """Ids and who wrote each event: a coordinator-written copy of a DAG cleanup counts once."""
    history = history_data.History()
    for minutes in (55, 40):
        history.event(H - timedelta(minutes=minutes), stalled=1, checked=9, batch_ids=["b"])
    original = history.event(H - timedelta(minutes=25), stalled=1, checked=9, batch_ids=["x", "y"])
    copy = {"timestamp": original["timestamp"] + timedelta(minutes=2), "batch_ids": ["y", "x"]}
    history.events.append(copy)
    history_data.write(db, history)

    from batch_cleanup.ui.history import window
    from batch_cleanup.ui.queries import HistoryStore

    win = window("24h", NOW)
    events, truncated = HistoryStore(dag_id=history_data.DAG_ID).window_events(win.start, win.end)
    assert truncated is False
    assert [(e.id, e.batch_ids, e.dag_id) for e in events] == [
        ("event-00003", ["y", "x"], None),
        ("event-00002", ["x", "y"], history_data.DAG_ID),
        ("event-00001", ["b"], history_data.DAG_ID),
        ("event-00000", ["b"], history_data.DAG_ID),
    ]
    # Three DAG cleanups in the window at 11:45 make a WARNING; the copy does not make a fourth.
    [incident] = backtest(make_client(), range_="24h")["current"]["incidents"]
    assert (incident["opened_at"], incident["peak_count"]) == ("2026-03-10T11:45:00Z", 3)


# --- scored against labelled incidents ------------------------------------------------------------

OUTAGE = "stalled_batch_cleanup-20260310T043000Z"  # real: opened 04:30, closed 05:15
NIGHT = "stalled_batch_cleanup-20260309T160000Z"  # real: 16:00 to 16:30, two runs: too few to count
SCORE = ("real_caught", "real_missed", "noise_pages", "critical_pages", "detection_delay_minutes")


@pytest.fixture
def labelled(db):
    history, records = history_data.scored(NOW)
    history.runs = []  # its run records are `records`, as the DAG writes them
    history_data.write(db, history)
    history_data.write_run_records(db, records)


def test_each_side_is_scored_against_the_incidents_labelled_real(labelled, make_client):
    """The candidate (WARNING at 4, CRITICAL at 5) spares the noise and still catches the outage."""
    body = backtest(make_client(), "warning_threshold=4&critical_threshold=5", range_="24h")

    assert body["real_incidents"] == [
        {"id": OUTAGE, "start": "2026-03-10T04:30:00Z", "end": "2026-03-10T05:15:00Z", "open": False},
        {"id": NIGHT, "start": "2026-03-09T16:00:00Z", "end": "2026-03-09T16:30:00Z", "open": False},
    ]
    current, candidate = body["current"], body["candidate"]
    assert [(side["rule"], side["rate"]) for side in (current, candidate)] == [("count", None)] * 2
    # The outage's ALERT at 04:30 (at once), CRITICAL at 04:45; the night's two runs missed; the blip: noise.
    assert current["score"] == dict(zip(SCORE, (1, 1, 1, 1, 0.0), strict=True))
    assert [(i["opened_at"], i["peak_severity"], i["real"]) for i in current["incidents"]] == [
        ("2026-03-10T08:30:00Z", "WARNING", []),
        ("2026-03-10T04:30:00Z", "CRITICAL", [OUTAGE]),
    ]
    # Four cleanups in the window first at 04:45: WARNING 15 minutes into the outage, and no page.
    assert candidate["score"] == dict(zip(SCORE, (1, 1, 0, 0, 15.0), strict=True))
    assert [(i["opened_at"], i["real"]) for i in candidate["incidents"]] == [
        ("2026-03-10T04:45:00Z", [OUTAGE])
    ]
    assert body["answer"] == (
        "Yes: the candidate (count) would have paged 0 times for noise instead of 1 with the current "
        "settings (count), and missed as many of the 2 real incidents (1)."
    )
    assert (body["run_records_read"], body["run_records_truncated"]) == (0, False), "no side reads the rate"


def test_the_volume_aware_rule_catches_both_real_incidents_and_pages_for_no_noise(labelled, make_client):
    """Under `burn_rate` (the DAG's rate settings): the outage is 30× the 1 % objective at 04:00, a
    CRITICAL half an hour before the count rule's labelled start, and "getting worse" at 04:30
    catches it; the night's 50 % runs are CRITICAL at once; the blip (0.25 %) is under the objective."""
    body = backtest(make_client(), "rule=burn_rate", range_="24h")

    candidate = body["candidate"]
    assert (candidate["rule"], candidate["rate"]["objective_pct"], candidate["settings"]) == (
        "burn_rate", 1.0, DEFAULTS,
    )  # fmt: skip
    assert candidate["score"] == dict(zip(SCORE, (2, 0, 0, 2, 0.0), strict=True))
    assert [
        (i["opened_at"], i["closed_at"], i["peak_severity"], i["real"]) for i in candidate["incidents"]
    ] == [
        ("2026-03-10T04:00:00Z", "2026-03-10T05:45:00Z", "CRITICAL", [OUTAGE]),
        ("2026-03-09T16:00:00Z", "2026-03-09T17:15:00Z", "CRITICAL", [NIGHT]),
    ]
    assert body["current"]["score"] == dict(zip(SCORE, (1, 1, 1, 1, 0.0), strict=True))
    assert body["answer"] == (
        "Yes: the candidate (burn_rate) would have paged 0 times for noise instead of 1 with the current "
        "settings (count), and missed fewer of the 2 real incidents (0, against 1)."
    )
    # From four hours (the rule's longest window) before the range's start, 09:00, to now.
    assert (body["run_records_read"], body["run_records_truncated"]) == (110, False)


def test_the_candidates_rate_settings_are_the_ones_replayed(labelled, make_client):
    """At a 10 % objective the outage (30 %) and the night (50 %) are WARNINGs: 3× and 5×, under
    CRITICAL's 6×."""
    body = backtest(make_client(), "rule=burn_rate&rate_objective_pct=10", range_="24h")

    candidate = body["candidate"]
    assert (candidate["rate"]["objective_pct"], candidate["unreachable"]) == (10, [])
    assert [(i["opened_at"], i["peak_severity"]) for i in candidate["incidents"]] == [
        ("2026-03-10T04:00:00Z", "WARNING"),
        ("2026-03-09T16:15:00Z", "WARNING"),
    ]
    # The outage caught by "getting worse" at 04:30 (0), the night by its ALERT at 16:15 (15).
    assert candidate["score"] == dict(zip(SCORE, (2, 0, 0, 0, 7.5), strict=True))


def test_the_current_side_takes_the_rule_asked_for_with_the_dags_settings(labelled, make_client):
    body = backtest(make_client(), "current_rule=burn_rate&rate_objective_pct=10", range_="24h")

    current, candidate = body["current"], body["candidate"]
    assert (current["rule"], current["rate"]["objective_pct"], candidate["rule"]) == (
        "burn_rate",
        1.0,
        "count",
    )
    assert body["answer"] == (
        "No: the candidate (count) would have missed 1 of the 2 real incidents, the current settings "
        "(burn_rate) 0."
    )
    page = make_client().get("/batch-cleanup/?range=24h&current_rule=burn_rate&rate_objective_pct=10").text
    rate = "1 % objective · WARNING at 2.5× · CRITICAL at 6× · 60-min cooldown"
    assert f"<th>Current: burn_rate<br><small>{rate}</small></th>" in page
    assert '<select name="current_rule"><option>count</option><option selected>burn_rate</option>' in page
    assert "<strong>No: the candidate (count) would have missed 1 of the 2 real incidents" in page


def test_a_range_without_labelled_incidents_has_no_score(story, make_client):
    body = backtest(make_client(), "warning_threshold=4&critical_threshold=5")

    assert (body["real_incidents"], body["answer"]) == (None, None)
    assert body["current"]["score"] is body["candidate"]["score"] is None
    assert {tuple(i["real"]) for side in ("current", "candidate") for i in body[side]["incidents"]} == {()}


def test_incidents_labelled_noise_only_score_every_incident_as_noise(labelled, db, make_client):
    for real in (OUTAGE, NIGHT):
        db.collection(history_data.INCIDENTS).document(real).update({"label.value": "noise"})

    body = backtest(make_client(), range_="24h")

    assert body["real_incidents"] == []
    assert body["current"]["score"] == dict(zip(SCORE, (0, 0, 2, 1, None), strict=True))
    assert body["answer"] == (
        "No: the candidate (count) would have paged for noise as often as the current settings (count) "
        "(2 times); no incident of the range was labelled real."
    )


def unknown_rule(query: str) -> tuple[str, str, str]:
    field, _, value = query.partition("=")
    return query, field, f"Invalid input for param {field}: {value!r} is not one of ['count', 'burn_rate']"


def rate_refused(query: str, reason: str) -> tuple[str, str, str]:
    """A rate setting `RateRule` refuses, said with the query's name."""
    field = query.partition("=")[0]
    return query, field, f"{field} {reason}"


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        unknown_rule("rule=counts"),
        unknown_rule("current_rule=<b>"),
        rate_refused("rate_objective_pct=0", "must be a number > 0, got 0"),
        rate_refused("rate_objective_pct=101", "must be at most 100, got 101"),
        rate_refused("rate_warning_factor=fast", "must be a number > 0, got 'fast'"),
        rate_refused("rate_critical_factor=NaN", "must be a finite number, got 'NaN'"),
        rate_refused("rate_critical_factor=2", "(2) must be greater than rate_warning_factor (2.5)"),
    ],
    ids=[
        "unknown-rule", "unknown-current-rule", "objective-zero", "objective-above-100",
        "factor-not-a-number", "factor-not-finite", "critical-factor-not-above-warning",
    ],
)  # fmt: skip
def test_a_rule_or_rate_setting_refused_is_a_422_naming_the_field(db, make_client, query, field, message):
    response = make_client().get(f"/batch-cleanup/api/backtest?{query}")

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["msg"], error["type"]) == (["query", field], message, "value_error")


def hhmm(at: datetime) -> str:
    return f"{at.astimezone(UTC):%H:%M}"


def test_the_score_reads_labelled_incidents_and_run_records_of_this_dag_in_the_range(labelled, db):
    from batch_cleanup.ui.history import Labelled
    from batch_cleanup.ui.queries import LABELLED_FIELDS, HistoryStore

    h = history_data.hour_of(NOW)
    history = history_data.History()
    history.incident(h - timedelta(hours=2), None, severity="WARNING")  # not labelled
    history.incident(h - timedelta(hours=3), None, dag_id="other_dag", label=history_data.label("real", h))
    history_data.write(db, history)
    at = h - timedelta(hours=7, minutes=55)  # amid this DAG's run records, another DAG's
    other = {**history_data.scored_run(at, checked=7, stalled=7), "dag_id": "other_dag", "run_id": "other"}
    history_data.write_run_records(db, [other])
    store = HistoryStore(dag_id=history_data.DAG_ID)

    documents, truncated = store.incidents(h - timedelta(hours=23), NOW, LABELLED_FIELDS)
    labelled = [found for d in documents if (found := Labelled.from_document(d))]
    assert sorted((i.id, i.label) for i in labelled) == [
        ("stalled_batch_cleanup-20260309T160000Z", "real"),
        ("stalled_batch_cleanup-20260310T043000Z", "real"),
        ("stalled_batch_cleanup-20260310T083000Z", "noise"),
    ]
    assert truncated is False
    records, truncated = store.runs(h - timedelta(hours=8, minutes=15), h - timedelta(hours=7, minutes=15))
    assert truncated is False
    assert [(hhmm(r.run_after), r.batches_checked, r.stalled_count) for r in records] == [
        ("04:00", 200, 60), ("04:15", 200, 60), ("04:30", 200, 60), ("04:45", 200, 60),
    ]  # fmt: skip
    newest, truncated = HistoryStore(dag_id=history_data.DAG_ID, max_runs=2).runs(h - timedelta(hours=1), NOW)
    assert ([hhmm(r.run_after) for r in newest], truncated) == (["12:15", "12:30"], True)


# --- the page's section -----------------------------------------------------------------------------


def test_the_form_is_prefilled_with_the_dags_thresholds_and_compares_nothing_yet(story, make_client):
    page = make_client().get("/batch-cleanup/?range=30d").text

    form = page.split('<form id="backtest-form" method="get">')[1].split("</form>")[0]
    assert '<input type="hidden" name="range" value="30d">' in form
    assert '<input type="number" name="warning_threshold" value="3" step="1" min="1">' in form
    assert '<input type="number" name="window_minutes" value="60" step="1" min="1" max="1440">' in form
    assert "WARNING at (cleanups in the window)" in form  # the trigger form's own label
    assert 'id="backtest-totals"' not in page


def test_the_page_compares_the_candidate_with_the_current_thresholds(story, make_client):
    response = make_client().get("/batch-cleanup/?range=30d&warning_threshold=4&critical_threshold=5")

    assert response.status_code == 200
    page = response.text
    assert '<tr id="backtest-incidents"><th>Incidents</th><td>3</td><td>2</td></tr>' in page
    assert '<tr id="backtest-messages-sent"><th>Messages sent</th><td>9</td><td>5</td></tr>' in page
    assert '<tr id="backtest-critical-pages"><th>CRITICAL pages</th><td>2</td><td>1</td></tr>' in page
    assert '<tr id="backtest-hours-at-warning"><th>Hours at WARNING</th><td>1.5</td><td>1.0</td></tr>' in page
    candidate = "WARNING 4 · CRITICAL 5 · 60-min window · 60-min cooldown"
    assert f"<th>Candidate: count<br><small>{candidate}</small>" in page
    # CRITICAL at 5 needs a cleanup from a manual or cleared run: the page says so, for that side only.
    [note] = re.findall(r'<small class="warning schedule-note">([^<]*)</small>', page)
    assert note.startswith("critical_threshold 5 cannot be reached on the schedule alone")
    assert "the 60-minute window holds 4 scheduled runs" in note
    current = page.split('id="backtest-current-incidents"')[1].split("</table>")[0]
    assert current.count("<tr><td>") == 3
    assert "<td>2026-03-10 10:45 UTC</td>" in current and "<td>no</td>" in current
    # The form keeps what was typed; the range links keep the candidate.
    assert '<input type="number" name="warning_threshold" value="4" step="1" min="1">' in page
    assert 'href="?range=7d&amp;warning_threshold=4&amp;critical_threshold=5"' in page
    assert 'href="api/backtest?range=30d&amp;warning_threshold=4&amp;critical_threshold=5"' in page


def test_a_refused_candidate_is_said_on_the_page_escaped_and_the_rest_still_shows(story, make_client):
    response = make_client().get("/batch-cleanup/?range=7d&warning_threshold=<script>alert(1)</script>")

    assert response.status_code == 422
    page = response.text
    assert (
        '<p class="warning" id="backtest-error" role="alert">Invalid input for param warning_threshold: '
        "&#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39; is not of type &#39;integer&#39;</p>"
    ) in page
    assert "<script>alert" not in page
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    assert '<p class="big" id="total-cleanups">17</p>' in page
    assert 'id="backtest-totals"' not in page


def test_a_form_sent_with_every_field_emptied_compares_the_defaults(story, make_client):
    emptied = "warning_threshold=&critical_threshold=&window_minutes=&cooldown_minutes="
    page = make_client().get(f"/batch-cleanup/?range=24h&{emptied}").text

    assert '<tr id="backtest-incidents"><th>Incidents</th><td>1</td><td>1</td></tr>' in page
    assert '<input type="number" name="warning_threshold" value="3" step="1" min="1">' in page
    assert 'id="backtest-unscored"' in page and 'id="backtest-real-caught"' not in page, "nothing labelled"


def test_the_page_shows_both_rules_and_scores_side_by_side_and_answers_the_question(labelled, make_client):
    page = make_client().get("/batch-cleanup/?range=24h&warning_threshold=4&critical_threshold=5").text

    for row, label, current, candidate in [
        ("real-caught", "Real incidents caught", 1, 1),
        ("real-missed", "Real incidents missed", 1, 1),
        ("noise-pages", "Noise pages (open during no real incident)", 1, 0),
        ("critical-pages", "CRITICAL pages", 1, 0),
        ("detection-delay-minutes", "Median detection delay (min)", 0.0, 15.0),
    ]:
        assert f'<tr id="backtest-{row}"><th>{label}</th><td>{current}</td><td>{candidate}</td></tr>' in page
    assert (
        '<p id="backtest-answer"><strong>Yes: the candidate (count) would have paged 0 times for noise '
        "instead of 1 with the current settings (count), and missed as many of the 2 real incidents (1)."
        "</strong> "
        "2 incidents labelled real in this range.</p>"
    ) in page
    current = page.split('id="backtest-current-incidents"')[1].split("</table>")[0]
    assert "<th>Real</th>" in current and "<td>noise</td>" in current and f"<td>{OUTAGE}</td>" in current
    assert "<th>Current: count<br><small>WARNING 3 · CRITICAL 4 · 60-min window · 60-min cooldown" in page
    form = page.split('<form id="backtest-form" method="get">')[1].split("</form>")[0]
    assert '<select name="rule"><option selected>count</option><option>burn_rate</option></select>' in form
    assert '<input type="number" name="rate_objective_pct" value="1.0" step="any" min="0">' in form


def test_a_refused_rule_is_said_on_the_page_escaped(story, make_client):
    response = make_client().get("/batch-cleanup/?range=24h&rule=<script>alert(1)</script>")

    assert response.status_code == 422
    assert "<script>alert" not in response.text
    assert (
        '<p class="warning" id="backtest-error" role="alert">Invalid input for param rule: '
        "&#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39; is not one of "
        "[&#39;count&#39;, &#39;burn_rate&#39;]</p>"
    ) in response.text


# --- what the DAG did ---------------------------------------------------------------------------------


@pytest.mark.e2e
def test_the_current_side_has_the_incidents_the_dags_runs_opened(airflow, fresh, db, make_client):
    """Three runs between the schedule's ticks (as if triggered by hand) open a WARNING; the replay
    at the runs' own times opens the same one, still open. Replaying only the ticks (the last one,
    9:00, before any cleanup) showed none."""
    coordinator, _ = fresh
    for minute in (2, 5, 8):
        coordinator.seed([stalled(f"b-backtest-{minute}")])
        at = datetime(2026, 6, 2, 9, minute, tzinfo=UTC)
        run = airflow.dags_test(history_data.DAG_ID, run_after=at, name="backtest-run")
        assert run.state == "success", run.explain()
    opened = [
        (doc.get("opened_at").astimezone(UTC), doc.get("severity"))
        for doc in db.collection(history_data.INCIDENTS).stream()
    ]
    assert opened == [(datetime(2026, 6, 2, 9, 8, tzinfo=UTC), "WARNING")], "the DAG's own incident"

    body = backtest(make_client(now=datetime(2026, 6, 2, 9, 10, tzinfo=UTC)), range_="24h")

    replayed = [(i["opened_at"], i["peak_severity"], i["open"]) for i in body["current"]["incidents"]]
    assert replayed == [(f"{at:%Y-%m-%dT%H:%M:%SZ}", severity, True) for at, severity in opened]
    assert body["last_run"] == "2026-06-02T09:08:00Z"
