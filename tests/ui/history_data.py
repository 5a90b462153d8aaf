"""Cleanup histories written straight into the Firestore emulator, as docs/firestore-schema.md has them.

`story(now)` is small and hand-placed, so the tests can name every number it must give; `steady(now)`
is 30 days at one cleanup per 15 minutes (2,880 events), for the latency measurement.
All times are relative to the hour holding `now`, so the same history works for a frozen clock
and for a real api-server.

A history also has its runs: the `batch_cleanup_runs` record each run writes (what it checked and
found). Every cleanup has its run, 5 s before its event; a run that found nothing stalled has no
event. Incidents carry the labels people gave them (docs/firestore-schema.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

DAG_ID = "stalled_batch_cleanup"
PROJECT = "demo-batch-cleanup"
EVENTS = "batch_cleanup_events"
STATES = "batch_cleanup_alert_state"
INCIDENTS = "batch_cleanup_incidents"
RUNS = "batch_cleanup_runs"


@dataclass
class History:
    events: list[dict[str, Any]] = field(default_factory=list)
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    # No run record before this (the DAG wrote none yet, or they expired).
    runs_since: datetime | None = None

    def run(self, at: datetime, *, checked: int, stalled: int = 0) -> None:
        if self.runs_since is None or at >= self.runs_since:
            self.runs.append({"at": at, "checked": checked, "stalled": stalled})

    def event(self, at: datetime, *, stalled: int, checked: int, batch_ids: list[str]) -> dict[str, Any]:
        self.run(at - timedelta(seconds=5), checked=checked, stalled=stalled)
        run_after = at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)
        document = {
            "timestamp": at, "expire_at": run_after + timedelta(days=30), "stalled_count": stalled,
            "batches_checked": checked, "batches_completed": stalled, "batch_ids": batch_ids,
            "results": [{"batch_id": b, "was_stalled": True, "completion_pct": 97.5} for b in batch_ids],
            "truncated": False, "dag_id": DAG_ID, "run_id": f"scheduled__{run_after.isoformat()}",
            "stall_threshold_minutes": 10, "min_completion_pct": 90,
        }  # fmt: skip
        self.events.append(document)
        return document

    def incident(self, opened_at: datetime, closed_at: datetime | None, dag_id: str = DAG_ID, **fields):
        doc_id = f"{dag_id}-{opened_at:%Y%m%dT%H%M%SZ}"
        self.incidents[doc_id] = {"dag_id": dag_id, "opened_at": opened_at, "closed_at": closed_at, **fields}
        return self.incidents[doc_id]


def label(value: str, at: datetime, *, source: str = "page", by: tuple[str, ...] = ("admin",)) -> dict:
    """An incident's `label` field, as the page or the reactions set it."""
    return {"value": value, "source": source, "by": list(by), "at": at, "note": None}


def run_record(run: dict[str, Any], dag_id: str = DAG_ID) -> tuple[str, dict[str, Any]]:
    """A history's run as the DAG records it: its deterministic id and its `batch_cleanup_runs` document."""
    run_after: datetime = run["at"]
    run_id = f"scheduled__{run_after.isoformat()}"
    doc_id = f"{dag_id}-{run_after:%Y%m%dT%H%M%SZ}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"
    document = {
        "dag_id": dag_id, "run_id": run_id, "run_after": run_after, "batches_checked": run["checked"],
        "stalled_count": run["stalled"], "kind": run.get("kind", "none"), "severity": run.get("severity"),
        "expire_at": run_after + timedelta(days=90), "recorded_at": run_after + timedelta(seconds=50),
    }  # fmt: skip
    return doc_id, document


RUNS_KEPT_HOURS = 8 * 24
# The rate fields of a day or range where nothing was checked: no rate, rather than a made-up 0.
NOTHING_CHECKED = {"stalled": 0, "checked": 0, "rate": None, "runs": 0, "rate_source": None}


def hour_of(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def story(now: datetime) -> History:
    """Quiet days, a CRITICAL burst two days ago, an open WARNING incident, and things to ignore.

    With H the hour holding `now` (every event lies before H, none in the current hour):

    | when | events | stalled each | checked each | batches |
    |---|---|---|---|---|
    | day d = 1..29 before, at H - 24d h + 10 min | 1 per day | 1 | 200 | batch-day-{d} |
    | H - 50 h, minutes 2..52 every 10 | 6 | 2 | 200 | batch-a, batch-b |
    | H - 240 h, minutes 5, 15, 25 | 3 | 1 | 200 | batch-d |
    | H - 2 h, minutes 5, 20, 35 | 3 | 1 | 180 | batch-c |
    | H - 1 h, minutes 10, 40 | 2 | 1 | 180 | batch-c (and batch-a at :40) |
    | H - 800 h (older than 30 days) | 1 | 9 | 900 | batch-a |

    Runs: recorded for the last 8 days (since H - 192 h): each cleanup's run in that span, and
    one run an hour that found nothing stalled, at H - k h + 45 min (k = 1..192), 200 checked.

    Incidents, with their labels (minutes after the incident opened):

    | incident | peak | closed after | label | first reaction |
    |---|---|---|---|---|
    | open since H - 85 min | WARNING | (open) | none | none |
    | the burst, H - 50 h + 20 min | CRITICAL | 105 min | real (reactions, two people) | 4 min |
    | ten days ago, H - 240 h + 25 min | WARNING | 60 min | noise (the page) | 30 min |
    | 40 days ago | WARNING | 60 min | disputed (reactions) | 10 min |
    | another DAG's, H - 5 h | CRITICAL | (open) | real | 1 min |
    """
    h = hour_of(now)
    history = History(runs_since=h - timedelta(hours=RUNS_KEPT_HOURS))
    for k in range(1, RUNS_KEPT_HOURS + 1):
        history.run(h - timedelta(hours=k) + timedelta(minutes=45), checked=200)
    for day in range(1, 30):
        history.event(h - timedelta(hours=24 * day) + timedelta(minutes=10), stalled=1, checked=200,
                      batch_ids=[f"batch-day-{day:02d}"])  # fmt: skip
    for minute in (2, 12, 22, 32, 42, 52):
        at = h - timedelta(hours=50) + timedelta(minutes=minute)
        history.event(at, stalled=2, checked=200, batch_ids=["batch-a", "batch-b"])
    for minute in (5, 15, 25):
        at = h - timedelta(hours=240) + timedelta(minutes=minute)
        history.event(at, stalled=1, checked=200, batch_ids=["batch-d"])
    for minute in (5, 20, 35):
        at = h - timedelta(hours=2) + timedelta(minutes=minute)
        history.event(at, stalled=1, checked=180, batch_ids=["batch-c"])
    history.event(h - timedelta(minutes=50), stalled=1, checked=180, batch_ids=["batch-c"])
    history.event(h - timedelta(minutes=20), stalled=1, checked=180, batch_ids=["batch-c", "batch-a"])
    history.event(h - timedelta(hours=800), stalled=9, checked=900, batch_ids=["batch-a"])

    burst = h - timedelta(hours=50) + timedelta(minutes=20)
    history.incident(  # closed: 1 h 45 min, peaked at CRITICAL
        burst, h - timedelta(hours=48) + timedelta(minutes=5),
        severity="WARNING", peak_severity="CRITICAL", peak_count=6, total_cleanups=6,
        batch_ids=["batch-a", "batch-b"], notifications=3,
        label=label("real", burst + timedelta(minutes=9), source="reactions", by=("U0ANA", "U0BEN")),
        first_reaction_at=burst + timedelta(minutes=4), reactions={"real": ["U0ANA", "U0BEN"], "noise": []},
    )  # fmt: skip
    ten_days_ago = h - timedelta(hours=240) + timedelta(minutes=25)
    history.incident(  # ten days ago: 1 h
        ten_days_ago, h - timedelta(hours=239) + timedelta(minutes=25),
        severity="WARNING", peak_severity="WARNING", peak_count=3, total_cleanups=3,
        batch_ids=["batch-d"], notifications=2, label=label("noise", ten_days_ago + timedelta(hours=3)),
        first_reaction_at=ten_days_ago + timedelta(minutes=30),
    )  # fmt: skip
    opened = h - timedelta(hours=2) + timedelta(minutes=35)
    history.incident(  # open since H - 85 min
        opened, None, severity="WARNING", peak_severity="WARNING", peak_count=4, total_cleanups=5,
        batch_ids=["batch-c", "batch-a"], notifications=1,
    )  # fmt: skip
    forty_days_ago = h - timedelta(days=40)
    history.incident(  # too old for 30 days: ignored there
        forty_days_ago, forty_days_ago + timedelta(hours=1),
        severity="WARNING", peak_severity="WARNING", peak_count=3, total_cleanups=3,
        batch_ids=["batch-old"], notifications=2,
        label=label("disputed", forty_days_ago + timedelta(minutes=20), source="reactions", by=("U1", "U2")),
        first_reaction_at=forty_days_ago + timedelta(minutes=10),
    )  # fmt: skip
    history.incident(  # another DAG's: ignored
        h - timedelta(hours=5), None, dag_id="other_dag", severity="CRITICAL",
        peak_severity="CRITICAL", peak_count=9, total_cleanups=9, batch_ids=["x"], notifications=1,
        label=label("real", h - timedelta(hours=4)), first_reaction_at=h - timedelta(hours=4, minutes=59),
    )  # fmt: skip
    history.state = {
        "open": True, "severity": "WARNING", "peak_severity": "WARNING", "opened_at": opened,
        "last_notified_at": opened + timedelta(minutes=1), "last_notified_kind": "alert",
        "last_notified_severity": "WARNING", "last_count": 2, "peak_count": 4,
        "reported_batch_ids": ["batch-c", "batch-a"], "event_ids": ["e1", "e2", "e3", "e4", "e5"],
        "muted": [], "lease": None, "updated_at": h - timedelta(minutes=19), "version": 4,
    }  # fmt: skip
    return history


def steady(now: datetime, hours: int = 720) -> History:
    """One cleanup every 15 minutes in each of the last `hours` hours (the 30-day range): 2,880 events.

    The current hour gets its four too, so a few may lie minutes after `now`.
    """
    start = hour_of(now) - timedelta(hours=hours - 1)
    history = History()
    for slot in range(hours * 4):
        at = start + timedelta(minutes=15 * slot, seconds=40)
        stalled = 1 + slot % 3
        batch_ids = [f"batch-{slot % 211:03d}", f"batch-{slot % 37:03d}"][:stalled]
        history.event(at, stalled=stalled, checked=250, batch_ids=batch_ids)
    return history


RUN_RECORDS = "batch_cleanup_runs"


def scored(now: datetime) -> tuple[History, list[dict[str, Any]]]:
    """A day with labelled incidents, for the backtest's score: its events and incidents, and the
    run records of every scheduled run from H - 28 h to now (200 batches checked, none stalled,
    but where the table says).

    | when (H = the hour holding `now`) | runs | stalled of checked, each | the DAG's incident, label |
    |---|---|---|---|
    | H - 20 h, :00 and :15 | 2 | 50 of 100 | opened at :00, closed at :30, real |
    | H - 8 h, :00 to :45 | 4 | 60 of 200 | opened at :30, closed at H - 7 h + :15, real |
    | H - 4 h, :00 to :30 | 3 | 1 of 400 | opened at :30, closed at H - 3 h, noise |

    Each stalled run also wrote its event, at its run time. With the DAG's thresholds the outage
    at H - 8 h is a CRITICAL incident from :30 (the labelled one), the two runs at H - 20 h are
    too few for any, and the three at H - 4 h make a WARNING: one real incident caught at once, one
    missed, one noise page.
    """
    h = hour_of(now)
    history = History()
    stalled = {}
    for start, runs, count, checked, batch in (
        (20, 2, 50, 100, "night"),
        (8, 4, 60, 200, "outage"),
        (4, 3, 1, 400, "blip"),
    ):
        for i in range(runs):
            at = h - timedelta(hours=start) + timedelta(minutes=15 * i)
            stalled[at] = (count, checked)
            history.event(at, stalled=count, checked=checked, batch_ids=[f"batch-{batch}-{i}"])
    for hours, opened, closed, value in ((20, 0, 30, "real"), (8, 30, 75, "real"), (4, 30, 60, "noise")):
        at = h - timedelta(hours=hours)
        history.incident(
            at + timedelta(minutes=opened), at + timedelta(minutes=closed), severity="WARNING",
            label=label(value, at + timedelta(hours=1)),
        )  # fmt: skip
    records = []
    first = h - timedelta(hours=28)
    for slot in range(int((now - first) / timedelta(minutes=15)) + 1):
        at = first + timedelta(minutes=15 * slot)
        count, checked = stalled.get(at, (0, 200))
        records.append(scored_run(at, checked=checked, stalled=count))
    return history, records


def scored_run(run_after: datetime, *, checked: int, stalled: int) -> dict[str, Any]:
    """A `batch_cleanup_runs` document as the DAG writes it (issue 19's run records)."""
    return {
        "dag_id": DAG_ID, "run_id": f"scheduled__{run_after.isoformat()}", "run_after": run_after,
        "batches_checked": checked, "stalled_count": stalled, "kind": "none", "severity": None,
        "expire_at": run_after + timedelta(days=90), "recorded_at": run_after + timedelta(seconds=20),
    }  # fmt: skip


def write_run_records(client, records: list[dict[str, Any]]) -> None:
    """Run records, with the ids the DAG gives them (`{dag_id}-{run_after}-{sha256(run_id)[:8]}`)."""
    collection = client.collection(RUN_RECORDS)
    for start in range(0, len(records), 500):
        batch = client.batch()
        for record in records[start : start + 500]:
            digest = hashlib.sha256(record["run_id"].encode()).hexdigest()[:8]
            batch.set(collection.document(f"{DAG_ID}-{record['run_after']:%Y%m%dT%H%M%SZ}-{digest}"), record)
        batch.commit()


def write(client, history: History) -> None:
    """Write `history` with batched commits (at most 500 writes each, Firestore's limit)."""
    writes: list[tuple[Any, dict[str, Any]]] = []
    events = client.collection(EVENTS)
    writes += [(events.document(f"event-{i:05d}"), doc) for i, doc in enumerate(history.events)]
    incidents = client.collection(INCIDENTS)
    writes += [(incidents.document(doc_id), doc) for doc_id, doc in history.incidents.items()]
    runs = client.collection(RUNS)
    writes += [(runs.document(doc_id), doc) for doc_id, doc in map(run_record, history.runs)]
    if history.state is not None:
        writes.append((client.collection(STATES).document(DAG_ID), history.state))
    for start in range(0, len(writes), 500):
        batch = client.batch()
        for ref, doc in writes[start : start + 500]:
            batch.set(ref, doc)
        batch.commit()


def connection_json(project: str = PROJECT) -> str:
    extra = {"project": project, "is_anonymous": True}
    return json.dumps({"conn_type": "google_cloud_platform", "extra": extra})
