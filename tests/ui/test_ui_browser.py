"""The history page in a real browser, served by a real `airflow api-server` with the plugin mounted.

The api-server has an Airflow home of its own, so that no other test's runs count in its rates.
One DAG run through `airflow dags test` gives the page a real last run; the history itself (events,
incidents with their labels, run records) is seeded straight into the Firestore emulator
(tests/ui/history_data.py), after the run: the run's own records are wiped. Headless Debian Chromium,
driven by Playwright, signs in through Airflow's login form, reads the numbers on the page and
saves screenshots under test-output/ui/.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from dev import services
from dev.coordinator import CoordinatorAdmin
from dev.system_services import apt_install
from tests.airflow_cli import AIRFLOW, AirflowCLI
from tests.conftest import OUTPUT, migrated_airflow
from tests.scenario import healthy
from tests.ui import history_data

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOTS = OUTPUT / "ui"
ADMIN_PASSWORD = "ui-test-admin-7c41e0"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
API_SERVER_START_TIMEOUT = 240


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium; installed with apt-get when missing (the machine runs tests as root)."""
    if not Path(CHROMIUM).exists():
        apt_install("chromium")
    return CHROMIUM


@dataclass
class ApiServer:
    url: str

    def token(self) -> str:
        response = httpx.post(
            f"{self.url}/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=30
        )
        assert response.status_code == 201, response.text
        return response.json()["access_token"]


@pytest.fixture(scope="module")
def ui_airflow(coordinator, slack_sink, firestore_emulator) -> AirflowCLI:
    """A migrated Airflow home for the api-server alone."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="airflow-home-", dir=SHOTS))
    return migrated_airflow(home, SHOTS / "dag-runs", coordinator, slack_sink, firestore_emulator)


@pytest.fixture(scope="module")
def last_run(ui_airflow, coordinator):
    """A real run of the DAG, so the page has a last run to link to: it checks 3 batches, none stalled."""
    admin = CoordinatorAdmin(coordinator.url)
    admin.reset()
    admin.seed([healthy("b-last-1"), healthy("b-last-2"), healthy("b-last-3")])
    run = ui_airflow.dags_test(history_data.DAG_ID, name="ui-last-run")
    with sqlite3.connect(ui_airflow.home / "airflow.db") as db:
        newest = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY run_after DESC LIMIT 1",
            (history_data.DAG_ID,),
        ).fetchone()
    assert newest is not None, run.explain()
    return {"run_id": newest[0], "state": newest[1], "checked": 3}


@pytest.fixture(scope="module")
def api_server(ui_airflow, last_run):
    """`airflow api-server` on a free port, on the migrated home, with the simple auth manager."""
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    passwords = ui_airflow.home / "ui-test-passwords.json"
    passwords.write_text(json.dumps({"admin": ADMIN_PASSWORD}))
    env = {
        **ui_airflow.env,
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": "ui-test-jwt-secret-3f9a0d6c5e8b",
        "AIRFLOW__API__BASE_URL": url,
    }
    command = [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # Its own process group: its uvicorn workers stop with it.
    process, log = services.spawn("api-server", command, SHOTS, env, own_group=True)
    deadline = time.monotonic() + API_SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"airflow api-server exited with {process.returncode}:\n{services.log_tail(log, 60)}")
        try:
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            _stop(process)
            why = f"airflow api-server not healthy in {API_SERVER_START_TIMEOUT} s"
            pytest.fail(f"{why}:\n{services.log_tail(log, 60)}")
        time.sleep(0.5)
    yield ApiServer(url)
    _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def sign_in(browser, url: str, width: int = 1280, height: int = 900):
    """A new page opening `url` signed out: Airflow's login form comes first, then the page we asked for."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.wait_for_url("**/auth/login**")
    page.locator("input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(ADMIN_PASSWORD)
    page.locator("button[type=submit]").click()
    page.wait_for_url(url)
    page.wait_for_selector("body[data-charts-ready=true]")
    return page


def text(page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


# --- signed out ----------------------------------------------------------------------------------


def test_the_plugin_is_mounted_behind_airflows_login(api_server):
    base = f"{api_server.url}/batch-cleanup"
    with httpx.Client(follow_redirects=False, timeout=30) as http:
        assert http.get(f"{base}/api/summary").status_code == 401
        assert http.get(f"{base}/api/openapi.json").status_code == 401
        page = http.get(f"{base}/?range=7d")
        assert page.status_code == 302
        assert page.headers["location"] == "/auth/login?next=%2Fbatch-cleanup%2F%3Frange%3D7d"
        forged = http.get(f"{base}/api/summary", headers={"Authorization": "Bearer not-a-jwt"})
        assert forged.status_code == 403
        assert http.get(f"{base}/static/chart.umd.min.js").status_code == 200

        signed = {"Authorization": f"Bearer {api_server.token()}"}
        assert http.get(f"{base}/api/status", headers=signed).status_code == 200
        plugins = http.get(f"{api_server.url}/api/v2/plugins", headers=signed).json()["plugins"]
    [plugin] = [p for p in plugins if p["name"] == "batch_cleanup_ui"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/batch-cleanup"
    assert plugin["external_views"][0]["url_route"] == "batch-cleanup"


# --- 30 days at one cleanup per 15 minutes -----------------------------------------------------------


def _in_one_hour(margin: timedelta = timedelta(minutes=3)) -> datetime:
    """Now, at least `margin` before the next full hour. The history is seeded in the hours up to
    now's, and the server's 30-day range ends with its own now's hour: both must be the same hour."""
    now = datetime.now(UTC)
    left = history_data.hour_of(now) + timedelta(hours=1) - now
    if left < margin:
        time.sleep(left.total_seconds() + 1)
        now = datetime.now(UTC)
    return now


def test_latency_with_2880_events(api_server, ui_airflow, db, browser):
    """A benchmark: printed and written to test-output/ui/latency.json, not a timed assertion."""
    steady = history_data.steady(_in_one_hour())
    history_data.write(db, steady)
    signed = {"Authorization": f"Bearer {api_server.token()}"}
    timings: dict[str, dict[str, float]] = {}
    with httpx.Client(timeout=60, headers=signed) as http:
        paths = ["/", "/api/summary", "/api/cleanups", "/api/daily", "/api/offenders", "/api/incidents"]
        for path in [*paths, "/api/quality", "/api/patterns"]:
            seconds, server = [], []
            for _ in range(6):
                started = time.perf_counter()
                response = http.get(f"{api_server.url}/batch-cleanup{path}?range=30d")
                seconds.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text[:500]
                server.append(_server_total(response.headers["server-timing"]))
            timings[f"GET {path}?range=30d"] = {
                "first_s": round(seconds[0], 3),
                "median_s": round(statistics.median(seconds[1:]), 3),
                "max_s": round(max(seconds[1:]), 3),
                "server_median_s": round(statistics.median(server[1:]), 3),
            }
        body = http.get(f"{api_server.url}/batch-cleanup/api/cleanups?range=30d").json()["cleanups"]
    assert body["totals"]["cleanups"] == body["events_read"] == 2880
    assert body["totals"]["runs"] == 2880  # the seeded records (the real last run's were wiped)

    url = f"{api_server.url}/batch-cleanup/?range=30d"
    page = sign_in(browser, url)
    loads = []
    for _ in range(5):
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("body[data-charts-ready=true]")
        loads.append(time.perf_counter() - started)
    navigation = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
    timings["browser: page with charts drawn"] = {
        "median_s": round(statistics.median(loads), 3),
        "max_s": round(max(loads), 3),
        "load_event_end_s": round(json.loads(navigation)["loadEventEnd"] / 1000, 3),
    }
    assert text(page, "#total-cleanups") == "2,880"
    page.screenshot(path=SHOTS / "batch-cleanup-30d-steady.png", full_page=True)

    (SHOTS / "latency.json").write_text(json.dumps(timings, indent=2))
    print("\n2,880 events (30 days at one per 15 minutes), Airflow api-server + Firestore emulator:")
    for name, values in timings.items():
        print(f"  {name:45} {values}")


def _server_total(header: str) -> float:
    parts = dict(part.strip().split(";dur=") for part in header.split(","))
    return float(parts["total"]) / 1000


# --- the story: what an on-call engineer reads -------------------------------------------------------


def test_the_page_shows_the_seeded_history(api_server, ui_airflow, db, browser, last_run):
    now = _in_one_hour()
    story = history_data.story(now)
    history_data.write(db, story)
    h = history_data.hour_of(now)

    page = sign_in(browser, f"{api_server.url}/batch-cleanup/?range=7d")

    # Totals over the 7 days (see history_data.story): 17 cleanups; the rate is over the run records
    # of the 17 runs that cleaned up and the 167 that found nothing stalled (200 checked each).
    assert text(page, "#total-cleanups") == "17"
    assert text(page, "#total-stalled") == "23"
    assert text(page, "#total-checked") == f"{3300 + 167 * 200:,}"
    assert text(page, "#total-runs") == str(17 + 167)
    assert text(page, "#total-rate") == "0.06 %"
    assert text(page, "#peak-hour") == "6"
    assert (text(page, "#hours-warning"), text(page, "#hours-critical")) == ("1", "1")
    # The open WARNING incident, and the alert timeline: it and the CRITICAL burst two days ago.
    assert text(page, "#state-severity") == "WARNING"
    rows = page.locator("#incidents tbody tr")
    assert rows.count() == 2
    opened = (h + timedelta(minutes=35) - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M UTC")
    assert rows.nth(0).locator("td").nth(1).inner_text() == opened
    assert rows.nth(0).locator("td").nth(2).inner_text() == "open"
    burst = [c.strip() for c in rows.nth(1).locator("td").all_inner_texts()]
    assert burst[3:7] == ["1 h 45 min", "6", "6", "3"]
    assert burst[7].startswith("real reactions of U0ANA, U0BEN") and "Noise" in burst[7], "admin may relabel"
    assert "CRITICAL" in rows.nth(1).inner_text()
    # Repeat offenders, most cleanups first.
    offenders = [r.locator("td").all_inner_texts()[:2] for r in page.locator("#offenders tbody tr").all()]
    assert offenders == [["batch-a", "7"], ["batch-b", "6"], ["batch-c", "5"]]
    # The last run, as Airflow's database has it, with a link into Airflow's UI.
    assert text(page, "#last-run-state") == last_run["state"]
    link = page.locator("#last-run-link")
    assert link.inner_text() == last_run["run_id"]
    run_path = f"/dags/{history_data.DAG_ID}/runs/{quote(last_run['run_id'], safe='')}"
    assert link.get_attribute("href") == run_path
    # Daily table: the day of the CRITICAL burst, summed here from the seeded story.
    days = {
        cells[0]: cells[1:]
        for cells in (r.locator("td").all_inner_texts() for r in page.locator("#daily tbody tr").all())
    }
    burst_day = (h - timedelta(hours=50)).date()
    events = [e for e in story.events if e["timestamp"].date() == burst_day]
    runs = [r for r in story.runs if r["at"].date() == burst_day]
    stalled, checked = sum(r["stalled"] for r in runs), sum(r["checked"] for r in runs)
    rate = f"{stalled / checked * 100:.2f} %"
    shown = [str(len(events)), str(stalled), f"{checked:,}", str(len(runs)), rate]
    assert days[burst_day.isoformat()] == shown
    assert stalled >= 12 and len(runs) > len(events)  # the burst's 6 × 2, and runs without cleanup
    # Three charts drawn by Chart.js, served by the plugin.
    assert page.evaluate("Object.keys(Chart.instances).length") == 3
    page.screenshot(path=SHOTS / "batch-cleanup.png", full_page=True)
    alert_quality_and_patterns(page, story, now)

    page.locator("header nav a", has_text="30d").click()
    page.wait_for_url("**range=30d")
    assert text(page, "#total-cleanups") == "43"
    assert page.locator("#incidents tbody tr").count() == 3
    page.screenshot(path=SHOTS / "batch-cleanup-30d.png", full_page=True)


def test_an_editor_labels_an_incident_from_the_page(api_server, db, browser):
    """The admin presses "Noise" on an incident, types a note (hostile: shown as text) and sees the label."""
    history_data.write(db, history_data.story(datetime.now(UTC)))
    page = sign_in(browser, f"{api_server.url}/batch-cleanup/?range=7d")
    note = '<img src=x onerror="document.body.dataset.pwned=1"> flaky worker pool'
    page.once("dialog", lambda dialog: dialog.accept(note))

    page.locator("#incidents tbody tr").nth(1).locator("button", has_text="Noise").click()
    page.wait_for_selector("#incidents .badge.label-noise")
    page.wait_for_selector("body[data-charts-ready=true]")

    cell = page.locator("#incidents tbody tr").nth(1).locator("td.label")
    assert "noise" in cell.inner_text() and "by admin" in cell.inner_text()
    assert cell.locator(".note").inner_text() == note, "the note as text, not HTML"
    assert page.evaluate("document.body.dataset.pwned") is None
    page.screenshot(path=SHOTS / "batch-cleanup-labelled.png", full_page=True)


def alert_quality_and_patterns(page, story: history_data.History, now: datetime) -> None:
    """The lower sections over the default 30 days, as shown; screenshots of each."""
    from batch_cleanup import patterns
    from batch_cleanup.ports import RunRecord
    from batch_cleanup.ui.history import QUALITY_RANGES, window

    # The burst (CRITICAL, real), today's open WARNING (no label), ten days ago's (noise).
    total = [cell.strip() for cell in page.locator("#quality-total td").all_inner_texts()]
    assert total[0] == "3"
    assert total[1].startswith("1 of 2 labelled incidents were real; 1 not labelled")
    assert total[2] == "50 % (9 % – 91 %)"  # 1 of 2, and its Wilson interval
    critical = [cell.strip() for cell in page.locator("#quality-critical td").all_inner_texts()]
    assert critical[1].startswith("1 of 1 labelled incident was real")
    assert critical[4:] == ["4 min / 4 min (1)", "1 h 45 min / 1 h 45 min (1)"]
    page.locator("#quality").screenshot(path=SHOTS / "batch-cleanup-quality.png")

    # The heatmap, in New York time: what the pure function makes of the seeded run records.
    win = window("30d", now, QUALITY_RANGES)
    runs = [RunRecord(run["at"], run["checked"], run["stalled"]) for run in story.runs]
    expected = patterns.patterns(runs, start=win.start, end=win.end)
    assert text(page, "#patterns-sentence") == expected["sentence"]
    assert text(page, "#patterns-sentence").startswith("Cleanups cluster ")
    darkest = page.locator('#heatmap-cleanups td[style="--shade: 1.00"]')
    assert darkest.first.inner_text() == "6"  # the burst's hour
    shown = sum(int(n) for n in page.locator("#heatmap-cleanups td").all_inner_texts() if n.strip())
    assert shown == expected["cleanups"] == 19
    assert page.locator("#heatmap-cleanups tbody tr").count() == 7
    assert page.locator("#heatmap-rate tbody tr").first.locator("td").count() == 24
    page.locator("#patterns").screenshot(path=SHOTS / "batch-cleanup-patterns.png")


def test_the_page_inside_airflows_ui(api_server, db, browser):
    """The Browse menu's entry opens the page in Airflow's own frame, at /plugin/batch-cleanup."""
    history_data.write(db, history_data.story(datetime.now(UTC)))
    page = sign_in(browser, f"{api_server.url}/batch-cleanup/?range=24h", 1400, 1000)

    page.goto(f"{api_server.url}/")
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Batch cleanup").click()
    page.wait_for_url("**/plugin/batch-cleanup")
    frame = page.frame_locator("iframe[title='Batch cleanup']")
    frame.locator("body[data-charts-ready=true]").wait_for()
    assert frame.locator("#total-cleanups").inner_text() == "5"
    page.screenshot(path=SHOTS / "batch-cleanup-in-airflow.png")


# --- the threshold backtest ----------------------------------------------------------------------


def compare(page, **values: int) -> None:
    """Type the candidate into the backtest form and send it, as a reader would."""
    for name, value in values.items():
        page.locator(f"#backtest-form input[name={name}]").fill(str(value))
    page.locator("#backtest-form button[type=submit]").click()
    page.wait_for_url("**warning_threshold=*")
    page.locator("#backtest-totals").wait_for()


def totals(page) -> dict[str, list[str]]:
    rows = page.locator("#backtest-totals tbody tr").all()
    return {row.locator("th").inner_text(): row.locator("td").all_inner_texts() for row in rows}


# With the story (see tests/ui/test_ui_backtest.py): three incidents with the DAG's thresholds,
# two with WARNING at 4, which spares today's and still pages for the burst.
BACKTEST_TOTALS = {
    "Incidents": ["3", "2"],
    "Messages sent": ["9", "5"],
    "CRITICAL pages": ["2", "1"],
    "Hours at WARNING": ["1.5", "1.0"],
    "Hours at CRITICAL": ["1.5", "0.5"],
    "Missed (the other had an incident, this none)": ["0", "1"],
}


def test_the_backtest_form_compares_a_candidate_with_the_current_thresholds(api_server, db, browser):
    history_data.write(db, history_data.story(datetime.now(UTC)))
    page = sign_in(browser, f"{api_server.url}/batch-cleanup/?range=30d")
    assert page.locator("#backtest-form input[name=warning_threshold]").input_value() == "3"

    compare(page, warning_threshold=4, critical_threshold=5)

    assert BACKTEST_TOTALS.items() <= totals(page).items()  # and the scores: the story is labelled
    assert page.locator("#backtest-current-incidents tbody tr").count() == 3
    candidate = page.locator("#backtest-candidate-incidents tbody tr")
    assert candidate.count() == 2
    assert "CRITICAL" in candidate.nth(0).inner_text()
    assert page.locator("#backtest-form input[name=warning_threshold]").input_value() == "4"
    page.locator("#backtest").screenshot(path=SHOTS / "batch-cleanup-backtest.png")


def test_the_backtest_form_works_without_javascript(api_server, db, browser):
    history_data.write(db, history_data.story(datetime.now(UTC)))
    context = browser.new_context(
        java_script_enabled=False, extra_http_headers={"Authorization": f"Bearer {api_server.token()}"}
    )
    page = context.new_page()
    page.goto(f"{api_server.url}/batch-cleanup/?range=30d")

    compare(page, warning_threshold=4, critical_threshold=5)

    assert BACKTEST_TOTALS.items() <= totals(page).items()  # and the scores: the story is labelled
    context.close()
