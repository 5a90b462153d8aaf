"""The cleanup-history page and its JSON API; Airflow's api-server mounts this app at `/batch-cleanup`.

Every route needs a signed-in user who may read the DAG (see `auth`); the page sends anyone else
to Airflow's login, the JSON endpoints answer 401/403. Only `/static` (Chart.js, CSS, the page's
script) is public, like Airflow's own assets. The endpoints are documented in docs/ui.md and by
the OpenAPI schema at `/batch-cleanup/api/openapi.json`.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from batch_cleanup import backtest, labels, patterns, quality, rules
from batch_cleanup.config import NOISE_REACTION, REAL_REACTION, RUN_TIMEOUT
from batch_cleanup.hooks.firestore import FirestoreHook, FirestoreUnavailable, google_error
from batch_cleanup.masking import redact
from batch_cleanup.messages import dag_run_url
from batch_cleanup.names import GCP_CONN_ID
from batch_cleanup.params import POLICY_FIELDS, InvalidParam, dag_params, policy_config
from batch_cleanup.policy import PolicyConfig
from batch_cleanup.rules import RateRule
from batch_cleanup.text import duration_text, utc_z
from batch_cleanup.ui import DAG_ID, URL_PREFIX, history, runs
from batch_cleanup.ui.auth import login_redirect, may_edit, require_dag_editor, require_dag_reader
from batch_cleanup.ui.queries import LABELLED_FIELDS, QUALITY_FIELDS, HistoryStore

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
# The DAG's default thresholds: the lines drawn on the hourly chart.
POLICY = PolicyConfig()
# The DAG's rule and rate objective (its params' defaults, the `[batch_cleanup]` settings): the
# backtest's current side, and the candidate's defaults.
DAG_RULE = dag_params()["alert_rule"].value
DAG_RATE = RateRule(objective_pct=dag_params()["rate_objective_pct"].value)

RangeName = Literal["24h", "7d", "30d"]
RangeParam = Annotated[
    RangeName,
    Query(alias="range", description="Window ending with the current hour: 24h, 7d or 30d (UTC hours)."),
]
QualityRangeName = Literal["7d", "30d", "90d"]
QUALITY_RANGE_ABOUT = "Window ending with the current hour: 7d, 30d or 90d (UTC hours)."
QualityRangeParam = Annotated[QualityRangeName, Query(alias="range", description=QUALITY_RANGE_ABOUT)]
# The page's own `range` is the upper part's (24h, 7d, 30d); the quality and patterns have theirs.
PageQualityRange = Annotated[
    QualityRangeName,
    Query(alias="quality_range", description=f"Alert quality and patterns: {QUALITY_RANGE_ABOUT}"),
]


# The trigger form's params for the thresholds: the backtest form's labels, limits and defaults.
THRESHOLD_PARAMS = {name: param for name, param in dag_params().items() if name in POLICY_FIELDS}


def _threshold_query(name: str) -> Any:
    param = THRESHOLD_PARAMS[name]
    about = f"{param.schema['title']}: the candidate's value (default {param.value}, the DAG's)."
    return Annotated[str | None, Query(description=f"{about} Checked as the trigger form checks it.")]


WarningThreshold = _threshold_query("warning_threshold")
CriticalThreshold = _threshold_query("critical_threshold")
WindowMinutes = _threshold_query("window_minutes")
CooldownMinutes = _threshold_query("cooldown_minutes")

RULE_NAMES = " or ".join(rules.RULES)
CurrentRule = Annotated[
    str | None,
    Query(
        description=f"The current side's rule, with the DAG's settings: {RULE_NAMES} (default {DAG_RULE})."
    ),
]
CandidateRule = Annotated[
    str | None,
    Query(description=f"The candidate's alert rule: {RULE_NAMES} (default {DAG_RULE}, the DAG's)."),
]
# The candidate's settings of the volume-aware rule: query name → `RateRule` field.
RATE_FIELDS = {f"rate_{name}": name for name in ("objective_pct", "warning_factor", "critical_factor")}


def _rate_query(name: str) -> Any:
    default = getattr(DAG_RATE, RATE_FIELDS[name])
    about = f"{rules.BURN_RATE}: the candidate's {RATE_FIELDS[name]} (a number > 0; default {default:g})."
    return Annotated[str | None, Query(description=about)]


RateObjective = _rate_query("rate_objective_pct")
RateWarningFactor = _rate_query("rate_warning_factor")
RateCriticalFactor = _rate_query("rate_critical_factor")
BACKTEST_FIELDS = (*POLICY_FIELDS, "current_rule", "rule", *RATE_FIELDS)


def get_asked(
    warning_threshold: WarningThreshold = None,
    critical_threshold: CriticalThreshold = None,
    window_minutes: WindowMinutes = None,
    cooldown_minutes: CooldownMinutes = None,
    current_rule: CurrentRule = None,
    rule: CandidateRule = None,
    rate_objective_pct: RateObjective = None,
    rate_warning_factor: RateWarningFactor = None,
    rate_critical_factor: RateCriticalFactor = None,
) -> dict[str, str]:
    """The backtest's settings as typed (the arguments are exactly the form's fields); an empty
    form field counts as missing."""
    return {name: text for name, text in locals().items() if text not in (None, "")}


Asked = Annotated[dict[str, str], Depends(get_asked)]


def candidate_config(asked: dict[str, str]) -> PolicyConfig:
    """The candidate thresholds, checked as a triggered run checks them (`InvalidParam` if refused).

    A query-string value is read as the trigger form's JSON would carry it: `4` is a number, `4.5`
    too (refused: not an integer), and text that is no JSON stays text (refused: not a number).
    """
    return policy_config({name: _json_value(text) for name, text in asked.items()})


@dataclass(frozen=True)
class Side:
    """One side of the backtest: what `backtest.replay` alerts with."""

    rule: str
    config: PolicyConfig
    rate_rule: RateRule


def compared(asked: dict[str, str]) -> tuple[Side, Side]:
    """The current side (the DAG's settings, under `current_rule`) and the candidate (the thresholds,
    rule and rate settings asked for, the DAG's for those missing), checked: `InvalidParam` names
    the field a value is refused for."""
    candidate = Side(_rule(asked, "rule"), candidate_config(asked), candidate_rate(asked))
    return Side(_rule(asked, "current_rule"), POLICY, DAG_RATE), candidate


def _rule(asked: dict[str, str], name: str) -> str:
    value = asked.get(name, DAG_RULE)
    if value not in rules.RULES:
        raise InvalidParam(
            name, f"Invalid input for param {name}: {value!r} is not one of {list(rules.RULES)}"
        )
    return value


def candidate_rate(asked: dict[str, str]) -> RateRule:
    """The candidate's settings of the volume-aware rule, checked by `RateRule` (read whatever the rule)."""
    values = {field: _json_value(asked[name]) for name, field in RATE_FIELDS.items() if name in asked}
    for field, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidParam(
                f"rate_{field}", f"rate_{field} must be a finite number, got {asked[f'rate_{field}']!r}"
            )
    try:
        return dataclasses.replace(DAG_RATE, **values)
    except ValueError as err:  # its messages begin with the field at fault; said with the query's names
        named = f"rate_{str(err).split(' ', 1)[0]}"
        message = re.sub(rf"\b({'|'.join(RATE_FIELDS.values())})\b", r"rate_\1", str(err))
        raise InvalidParam(named if named in RATE_FIELDS else None, message) from None


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@cache
def get_store() -> HistoryStore:
    """One store, so one Firestore client and channel, per api-server process."""
    return HistoryStore(dag_id=DAG_ID, gcp_conn_id=GCP_CONN_ID)


def get_last_run() -> Callable[[str], dict[str, Any] | None]:
    return runs.last_run


RunTimes = Callable[[datetime, datetime], list[datetime]]


def get_run_times() -> RunTimes:
    return partial(runs.evaluated_at, DAG_ID)


def get_now() -> datetime:
    return datetime.now(UTC)


Store = Annotated[HistoryStore, Depends(get_store)]
LastRun = Annotated[Callable[[str], dict[str, Any] | None], Depends(get_last_run)]
RunTimesReader = Annotated[RunTimes, Depends(get_run_times)]
Now = Annotated[datetime, Depends(get_now)]
Editor = Annotated[BaseUser, Depends(require_dag_editor)]
MayLabel = Annotated[bool, Depends(may_edit)]


class LabelAsked(BaseModel):
    """A label for an incident, from the page."""

    value: Literal[labels.PAGE_VALUES] = Field(description="`real` (acted on) or `noise`.")
    note: str | None = Field(
        None, max_length=labels.MAX_NOTE_CHARS, description="Why, in a few words (optional)."
    )


@dataclass(frozen=True)
class Sources:
    """Everything the whole page reads from, and its clock."""

    store: HistoryStore
    last_run: Callable[[str], dict[str, Any] | None]
    run_times: RunTimes
    now: datetime


def get_sources(store: Store, last_run: LastRun, run_times: RunTimesReader, now: Now) -> Sources:
    return Sources(store, last_run, run_times, now)


AllSources = Annotated[Sources, Depends(get_sources)]


@contextmanager
def naming_firestore(store: HistoryStore, failed: str) -> Iterator[None]:
    """Raise a Firestore failure inside (refused, unavailable, timed out, a transaction given up) as
    `FirestoreUnavailable`, naming Firestore, the store's connection and project, and what `failed`:
    the app answers it 503."""
    try:
        yield
    except Exception as err:
        google = google_error(err)
        if google is None:
            raise
        where = FirestoreHook(gcp_conn_id=store.gcp_conn_id).where()
        raise FirestoreUnavailable(redact(f"{where} {failed}: {google}")) from err


class Reads:
    """Runs independent reads side by side and remembers how long each took (for `Server-Timing`);
    a read that Firestore fails is a `FirestoreUnavailable` naming the read."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self.timings: dict[str, float] = {}
        self.started = time.perf_counter()

    def run(self, **reads: Callable[[], Any]) -> dict[str, Any]:
        with ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="batch-cleanup-ui") as pool:
            futures = {name: pool.submit(self.timed, name, read) for name, read in reads.items()}
            return {name: self.result(name, future) for name, future in futures.items()}

    def result(self, name: str, future: Future[Any]) -> Any:
        with naming_firestore(self.store, f"could not be read for the {name.replace('_', ' ')}"):
            return future.result()

    def timed(self, name: str, read: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return read()
        finally:
            self.timings[name] = time.perf_counter() - started

    def timed_response(self, response: Response) -> Response:
        """`response` with the reads' times and the total in its `Server-Timing` header."""
        self.timings["total"] = time.perf_counter() - self.started
        timing = ", ".join(f"{name};dur={seconds * 1000:.1f}" for name, seconds in self.timings.items())
        response.headers["Server-Timing"] = timing
        return response


def event_reads(store: HistoryStore, win: history.Window) -> dict[str, Callable[[], Any]]:
    return {
        "events": lambda: store.events(win.start, win.end),
        "totals": lambda: store.totals(win.start, win.end),
    }


def check_reads(store: HistoryStore, start: datetime, end: datetime) -> dict[str, Callable[[], Any]]:
    """The run records of `(start, end]`: the rate's runs, and the patterns'."""
    return {"checks": lambda: store.runs(start, end)}


def status_reads(store: HistoryStore, last_run: Callable[[str], Any]) -> dict[str, Callable[[], Any]]:
    def run_and_its_event() -> tuple[dict[str, Any] | None, history.Event | None]:
        run = last_run(DAG_ID)
        return run, store.run_event(run["run_id"]) if run else None

    return {"state": store.state, "run": run_and_its_event}


def cleanups_json(got: dict[str, Any], win: history.Window) -> dict[str, Any]:
    events, truncated = got["events"]
    checks, checks_truncated = got["checks"]
    return history.cleanups(
        events,
        got["totals"],
        win,
        truncated=truncated,
        warning=POLICY.warning_threshold,
        critical=POLICY.critical_threshold,
        checks=checks,
        checks_truncated=checks_truncated,
    )


def daily_json(got: dict[str, Any], win: history.Window) -> list[dict[str, Any]]:
    return history.daily(got["events"][0], win, got["checks"][0])


def status_json(got: dict[str, Any], now: datetime) -> dict[str, Any]:
    run, run_event = got["run"]
    return {
        "state": history.current_state(got["state"], now),
        "last_run": history.run_outcome(run, run_event),
    }


def summary_reads(
    sources: Sources, win: history.Window, runs_since: datetime | None = None
) -> dict[str, Callable[[], Any]]:
    """What `summary_json` needs; the run records from `runs_since` when the page needs more of them."""
    store = sources.store
    return {
        **event_reads(store, win),
        **check_reads(store, runs_since or win.start, win.end),
        "incidents": lambda: store.incidents(win.start, win.end),
        **status_reads(store, sources.last_run),
    }


def summary(sources: Sources, win: history.Window, reads: Reads) -> dict[str, Any]:
    """Everything the upper part of the page shows, read in parallel: the slowest read sets the time."""
    return summary_json(reads.run(**summary_reads(sources, win)), win, sources.now)


def summary_json(got: dict[str, Any], win: history.Window, now: datetime) -> dict[str, Any]:
    return {
        **_header(win, now),
        "cleanups": cleanups_json(got, win),
        "daily": daily_json(got, win),
        "offenders": history.offender_rows(got["events"][0]),
        "incidents": history.incident_rows(got["incidents"][0], win, now),
        **status_json(got, now),
    }


def quality_reads(store: HistoryStore, win: history.Window) -> dict[str, Callable[[], Any]]:
    return {"opened_incidents": lambda: store.incidents(win.start, win.end, QUALITY_FIELDS, opened_only=True)}


def quality_json(got: dict[str, Any], win: history.Window) -> dict[str, Any]:
    """The alert-quality figures over the incidents opened in the window (`quality.figures`)."""
    incidents, truncated = got["opened_incidents"]
    figures = quality.figures(incidents, start=win.start, end=win.end)
    return {"quality": figures, "incidents_read": len(incidents), "incidents_truncated": truncated}


def patterns_json(got: dict[str, Any], win: history.Window) -> dict[str, Any]:
    """The heatmap, the rate against volume and their sentence over the window's run records."""
    runs, truncated = got["checks"]
    return {"patterns": patterns.patterns(runs, start=win.start, end=win.end), "runs_truncated": truncated}


def backtest_json(
    sources: Sources, win: history.Window, sides: tuple[Side, Side], reads: Reads
) -> dict[str, Any]:
    """The range's runs up to now, replayed on both sides: the runs that evaluated (Airflow's
    metadata), the schedule's ticks before the first of them (`backtest.replayed_runs`); scored
    against the incidents labelled real when the range holds labelled incidents.

    The events read reach back one offender span before the range (the first run's window and
    offenders) and one run timeout past now (the coordinator's copies of the last runs' cleanups);
    the run records, read only for a volume-aware side, reach back that rule's longest window.
    """
    store, now = sources.store, sources.now
    since = win.start - backtest.OFFENDER_SPAN
    to_read: dict[str, Callable[[], Any]] = {
        "events": lambda: store.window_events(since, now + RUN_TIMEOUT),
        "runs": lambda: sources.run_times(win.start, now),
        "labels": lambda: store.incidents(win.start, now, LABELLED_FIELDS),
    }
    if rated := [side.rate_rule for side in sides if side.rule == rules.BURN_RATE]:
        reach = max(rate.span for rate in rated)
        to_read["run_records"] = lambda: store.runs(win.start - reach, now)
    read = reads.run(**to_read)
    (events, truncated), runs = read["events"], backtest.replayed_runs(win.start, now, read["runs"])
    records, records_truncated = read.get("run_records", ([], False))

    def both() -> tuple[backtest.Replay, backtest.Replay]:
        recorded = backtest.Recorded(events, within=RUN_TIMEOUT)
        return tuple(
            backtest.replay(
                recorded, runs, side.config, until=now, runs=records, rule=side.rule, rate_rule=side.rate_rule
            )
            for side in sides
        )

    current, replayed = reads.timed("replay", both)
    return history.backtest_comparison(
        current,
        replayed,
        events_read=len(events),
        events_truncated=truncated,
        real=history.real_incidents(read["labels"][0], now),
        records_read=len(records),
        records_truncated=records_truncated,
    )


def backtest_form(asked: dict[str, str]) -> dict[str, Any]:
    """The page's backtest form: each threshold's label, limits and value (as typed, else the DAG's),
    and the query that keeps the candidate when the range changes."""
    fields = [
        {
            "name": name,
            "title": param.schema.get("title", name),
            "value": asked.get(name, param.value),
            "min": param.schema.get("minimum"),
            "max": param.schema.get("maximum"),
        }
        for name, param in THRESHOLD_PARAMS.items()
    ]
    rates = [
        {"name": name, "title": f"Rate rule: {field}", "value": asked.get(name, getattr(DAG_RATE, field))}
        for name, field in RATE_FIELDS.items()
    ]
    chosen = {name: asked.get(name, DAG_RULE) for name in ("current_rule", "rule")}
    return {
        "fields": fields,
        "rates": rates,
        "rules": rules.RULES,
        "chosen": chosen,
        "query": urlencode(asked),
    }


def _header(win: history.Window, now: datetime) -> dict[str, Any]:
    return {
        "dag_id": DAG_ID,
        "window": history.window_json(win),
        "generated_at": utc_z(now, name="now"),
        "thresholds": {
            "warning": POLICY.warning_threshold,
            "critical": POLICY.critical_threshold,
            "window_minutes": POLICY.window_minutes,
        },
        "rate_target": history.RATE_TARGET,
    }


def with_run_link(data: dict[str, Any], request: Request) -> dict[str, Any]:
    if run := data.get("last_run"):
        # Airflow's UI (`""` at the host's root) is this app's mount point, minus the prefix.
        airflow_root = request.scope.get("root_path", "").removesuffix(URL_PREFIX)
        run["url"] = dag_run_url(airflow_root, DAG_ID, run["run_id"])
    return data


def warm_up() -> None:
    """Build the Firestore client and open its channel before the first visitor needs them."""
    try:
        get_store().state()
    except Exception:  # the page reports errors when it is used; a cold start is not one
        log.warning("Batch cleanup history: the Firestore warm-up read failed", exc_info=True)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Airflow's api-server enters the lifespan of every FastAPI app a plugin mounts.
    threading.Thread(target=warm_up, name="batch-cleanup-ui-warm-up", daemon=True).start()
    yield


def create_app() -> FastAPI:
    app = FastAPI(
        lifespan=lifespan,
        title="Batch cleanup history",
        version="1",
        description=__doc__,
        # Swagger UI and ReDoc load from a CDN; the schema is served below, behind the login too.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(require_dag_reader)],
    )
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["pct"] = _pct
    templates.env.filters["when"] = _when
    templates.env.filters["num"] = "{:,}".format
    templates.env.filters["minutes"] = _minutes
    templates.env.filters["g"] = "{:g}".format
    templates.env.filters["default_dash"] = lambda value: "–" if value is None else value
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(StarletteHTTPException)
    async def sign_in_first(request: Request, exc: StarletteHTTPException) -> Response:
        # The page sends a signed-out browser to the login page; the JSON API answers 401.
        if exc.status_code == status.HTTP_401_UNAUTHORIZED and _is_page(request):
            return login_redirect(request)
        return await http_exception_handler(request, exc)

    @app.exception_handler(FirestoreUnavailable)
    async def firestore_down(request: Request, exc: FirestoreUnavailable) -> Response:
        # Said by `naming_firestore`: Firestore, the connection, the project, what failed, Google's error.
        log.warning("Batch cleanup history: %s %s: %s", request.method, request.url.path, exc)
        down = status.HTTP_503_SERVICE_UNAVAILABLE
        if _is_page(request):
            return HTMLResponse(FIRESTORE_DOWN_PAGE.format(message=html.escape(str(exc))), status_code=down)
        return JSONResponse({"detail": str(exc)}, status_code=down)

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(
        request: Request,
        sources: AllSources,
        asked: Asked,
        may_label: MayLabel,
        range_: RangeParam = history.DEFAULT_RANGE,
        quality_range: PageQualityRange = history.DEFAULT_QUALITY_RANGE,
    ):
        reads = Reads(sources.store)
        win = history.window(range_, sources.now)
        lower = history.window(quality_range, sources.now, history.QUALITY_RANGES)
        # One read of the run records serves the rate above and the patterns below.
        got = reads.run(
            **summary_reads(sources, win, runs_since=min(win.start, lower.start)),
            **quality_reads(sources.store, lower),
        )
        data = with_run_link(summary_json(got, win, sources.now), request)
        insights = {"window": history.window_json(lower), **patterns_json(got, lower)}
        try:
            insights |= quality_json(got, lower)
        except ValueError as err:  # an incident it cannot read: named there, the rest still shown
            insights |= {"quality": None, "quality_error": str(err)}
        form, result, error = backtest_form(asked), None, None
        if any(name in request.query_params for name in BACKTEST_FIELDS):  # the backtest form was sent
            try:
                sides = compared(asked)
            except InvalidParam as err:
                error = str(err)
            else:
                result = backtest_json(sources, win, sides, reads)
        context = {
            "data": data,
            "ranges": list(history.RANGES),
            "quality_ranges": list(history.QUALITY_RANGES),
            "default_quality_range": history.DEFAULT_QUALITY_RANGE,
            "insights": insights,
            "form": form,
            "backtest": result,
            "backtest_error": error,
            "may_label": may_label,
            "reactions": {"real": REAL_REACTION, "noise": NOISE_REACTION},
        }
        status_code = 422 if error else 200
        return reads.timed_response(
            templates.TemplateResponse(request, "history.html", context, status_code=status_code)
        )

    @app.get("/api/summary", summary="Everything the page shows")
    def api_summary(request: Request, sources: AllSources, range_: RangeParam = history.DEFAULT_RANGE):
        """Window, thresholds, cleanups per hour, daily rates, offenders, incidents, state, last run."""
        reads = Reads(sources.store)
        win = history.window(range_, sources.now)
        return reads.timed_response(JSONResponse(with_run_link(summary(sources, win, reads), request)))

    @app.get("/api/cleanups", summary="Cleanups per hour, with the window's totals")
    def api_cleanups(store: Store, now: Now, range_: RangeParam = history.DEFAULT_RANGE):
        """Cleanups per UTC hour and the totals: cleanups, batches auto-completed and checked, rate."""
        reads = Reads(store)
        win = history.window(range_, now)
        got = reads.run(**event_reads(store, win), **check_reads(store, win.start, win.end))
        return reads.timed_response(JSONResponse({**_header(win, now), "cleanups": cleanups_json(got, win)}))

    @app.get("/api/daily", summary="Batches auto-completed per day, and the auto-completion rate")
    def api_daily(store: Store, now: Now, range_: RangeParam = history.DEFAULT_RANGE):
        """Per UTC day: cleanups, batches auto-completed (`stalled`) and checked, `rate`, its source."""
        reads = Reads(store)
        win = history.window(range_, now)
        got = reads.run(events=event_reads(store, win)["events"], **check_reads(store, win.start, win.end))
        data = {**_header(win, now), "daily": daily_json(got, win), "events_truncated": got["events"][1]}
        return reads.timed_response(JSONResponse(data))

    @app.get("/api/offenders", summary="Batches auto-completed most often")
    def api_offenders(
        store: Store,
        now: Now,
        range_: RangeParam = history.DEFAULT_RANGE,
        limit: Annotated[int, Query(ge=1, le=100, description="At most this many batches.")] = 10,
    ):
        """Batches auto-completed in two cleanups or more in the window, most often first."""
        reads = Reads(store)
        win = history.window(range_, now)
        events, truncated = reads.run(events=event_reads(store, win)["events"])["events"]
        offenders = history.offender_rows(events, limit=limit)
        data = {**_header(win, now), "offenders": offenders, "events_truncated": truncated}
        return reads.timed_response(JSONResponse(data))

    @app.get("/api/incidents", summary="The alert timeline")
    def api_incidents(store: Store, now: Now, range_: RangeParam = history.DEFAULT_RANGE):
        """Incidents overlapping the window, newest first, with severity, start, end and duration."""
        reads = Reads(store)
        win = history.window(range_, now)
        found, _ = reads.run(incidents=lambda: store.incidents(win.start, win.end))["incidents"]
        data = {**_header(win, now), "incidents": history.incident_rows(found, win, now)}
        return reads.timed_response(JSONResponse(data))

    @app.put("/api/incidents/{incident_id}/label", summary="Label an incident real or noise")
    def api_label(incident_id: str, asked: LabelAsked, store: Store, now: Now, user: Editor):
        """Label the incident `real` or `noise`, with an optional `note`, as the signed-in user, who
        must be allowed to edit the DAG (else 403). Stored with who and when; a label from the page
        wins over the reactions on the incident's Slack message. 404 for an incident the DAG lacks."""
        label = labels.page_label(asked.value, user=user.get_name(), note=asked.note, now=now)
        with naming_firestore(store, f"could not store the label of incident {incident_id!r}"):
            stored = store.set_label(incident_id, label)
        if not stored:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No incident {incident_id!r} of DAG {DAG_ID}")
        return {"id": incident_id, "label": history.label_json(label)}

    @app.get("/api/backtest", summary="The range's cleanups replayed with other rules and thresholds")
    def api_backtest(sources: AllSources, asked: Asked, range_: RangeParam = history.DEFAULT_RANGE):
        """The range's runs up to now (those that evaluated, and every 15 minutes before the first
        of them) replayed through the DAG's alert policy, from no open incident: with the DAG's
        settings under `current_rule` (`current`) and with the rule and settings asked for
        (`candidate`; one not asked for is the DAG's). Per side: `rule`, `rate`, `settings`, `totals`
        {`incidents`, `messages_sent`, `critical_pages`, `hours_at_warning`, `hours_at_critical`,
        `missed`}, `messages` per kind, `incidents` (newest first, each with the `real` incidents
        it was open during), and `score` against the incidents labelled real (null when none in
        the range is labelled). A value the trigger form refuses is a 422."""
        reads = Reads(sources.store)
        try:
            sides = compared(asked)
        except InvalidParam as err:  # FastAPI's own 422 shape, naming the query parameter at fault
            loc = ("query", err.field) if err.field else ("query",)
            error = {"type": "value_error", "loc": loc, "msg": str(err), "input": asked.get(err.field or "")}
            raise RequestValidationError([error]) from None
        win = history.window(range_, sources.now)
        data = {**_header(win, sources.now), "backtest": backtest_json(sources, win, sides, reads)}
        return reads.timed_response(JSONResponse(data))

    @app.get("/api/status", summary="The current incident state and the last run")
    def api_status(request: Request, store: Store, last_run: LastRun, now: Now):
        """The alert state and the DAG's newest run: its state, what it cleaned up, a link to it."""
        reads = Reads(store)
        got = reads.run(**status_reads(store, last_run))
        data = {"dag_id": DAG_ID, **status_json(got, now)}
        return reads.timed_response(JSONResponse(with_run_link(data, request)))

    add_insight_routes(app)
    return app


def add_insight_routes(app: FastAPI) -> None:
    """`api/quality` and `api/patterns`: what the page's lower part shows, over 7, 30 or 90 days."""

    @app.get("/api/quality", summary="Were the alerts real: alert-quality figures from the labels")
    def api_quality(store: Store, now: Now, range_: QualityRangeParam = history.DEFAULT_QUALITY_RANGE):
        """Over the incidents opened in the window, per peak severity (`WARNING`, `CRITICAL`) and in
        `total`: `incidents`, `labelled`, `real`, `noise`, `disputed`, `precision` {`value`, `low`,
        `high`} (real ÷ labelled, Wilson 95 %; null with no label), `said` (the same in words, with
        how many were labelled), `critical_pages_per_week`, `first_reaction_minutes` and
        `resolve_minutes` {`median`, `p90`, `count`}."""
        reads = Reads(store)
        win = history.window(range_, now, history.QUALITY_RANGES)
        got = reads.run(**quality_reads(store, win))
        try:
            figures = quality_json(got, win)
        except ValueError as err:  # a document it cannot read, named
            raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, str(err)) from None
        return reads.timed_response(JSONResponse({**_header(win, now), **figures}))

    @app.get("/api/patterns", summary="When cleanups happen, and the rate against volume")
    def api_patterns(store: Store, now: Now, range_: QualityRangeParam = history.DEFAULT_QUALITY_RANGE):
        """From the window's run records, in the schedule's America/New_York time: `heatmap`
        (`cells[weekday][hour]`, Monday first: `runs`, `cleanups`, `auto_completed`, `checked`,
        `rate`), `volume` (runs in bins by batches checked, each with its rate and Wilson interval),
        `cluster`, `trend` and the `sentence` that reads them (rules in docs/ui.md)."""
        reads = Reads(store)
        win = history.window(range_, now, history.QUALITY_RANGES)
        got = reads.run(**check_reads(store, win.start, win.end))
        return reads.timed_response(JSONResponse({**_header(win, now), **patterns_json(got, win)}))


FIRESTORE_DOWN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Batch cleanup history: Firestore unavailable</title></head>
<body><h1>Batch cleanup history is unavailable</h1><p>{message}</p>
<p>The page shows again once Firestore answers: reload it then.</p></body></html>
"""


def _is_page(request: Request) -> bool:
    """The HTML page, not one of the JSON endpoints."""
    return request.url.path.rstrip("/").endswith(URL_PREFIX)


def _pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def _minutes(value: float | None) -> str:
    """`12.5` → `12 min`, `95` → `1 h 35 min`."""
    return "–" if value is None else duration_text(value * 60)


def _when(value: str | None) -> str:
    """`2026-03-10T12:00:00Z` → `2026-03-10 12:00 UTC`."""
    if not value:
        return "–"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
