"""Labels on incidents: whether the people on call found an alert real or noise (issue 19, part 2).

An incident is labelled from the history page ("page": an Airflow user who may edit the DAG) or,
in bot-token mode, from the reactions on its first Slack message ("reactions": Slack user ids).
A label from the page wins over reactions; reactions of both kinds make it "disputed".

Stored on `batch_cleanup_incidents/{id}` (docs/firestore-schema.md): `label` (a map or null),
`reactions` (`{"real": [user ids], "noise": [user ids]}` as last read) and `first_reaction_at`.
Pure: no I/O and no clock; every time is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

REAL, NOISE, DISPUTED = "real", "noise", "disputed"
# What a person may set on the page; "disputed" only ever comes from reactions.
PAGE_VALUES = (REAL, NOISE)
PAGE, REACTIONS = "page", "reactions"
MAX_NOTE_CHARS = 500
# Each run reads the reactions of the open incident and of those resolved this many hours back.
READ_HOURS = 24


def reactions_of(emoji: Mapping[str, Sequence[str]], *, real: str, noise: str) -> dict[str, list[str]]:
    """The users who said real and noise, from Slack's reactions (emoji name → user ids, in the
    order they reacted). A skin tone (`+1::skin-tone-2`) counts as its emoji."""
    said: dict[str, list[str]] = {REAL: [], NOISE: []}
    for name, users in emoji.items():
        kind = {real: REAL, noise: NOISE}.get(name.split("::")[0])
        if kind is not None:
            said[kind] += [user for user in users if user not in said[kind]]
    return said


def label_from(
    reactions: Mapping[str, Sequence[str]] | None,
    page_label: Mapping[str, Any] | None,
    *,
    now: datetime | None = None,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The incident's label: `page_label` when there is one; else from `reactions` (None when
    nobody reacted), "disputed" when they disagree, `by` the users who reacted.

    `at` is when the label took its value: `previous`'s (the stored label) while the value stays
    the same, else `now`.
    """
    if page_label:
        return dict(page_label)
    real, noise = (list((reactions or {}).get(kind) or ()) for kind in (REAL, NOISE))
    if not real and not noise:
        return None
    value = DISPUTED if real and noise else REAL if real else NOISE
    kept = previous and previous.get("source") == REACTIONS and previous.get("value") == value
    return {
        "value": value,
        "source": REACTIONS,
        "by": list(dict.fromkeys(real + noise)),
        "at": previous["at"] if kept else now,
        "note": None,
    }


def page_label(value: str, *, user: str, note: str | None, now: datetime) -> dict[str, Any]:
    """The label a person sets on the history page; ValueError naming the field when it is not one."""
    if value not in PAGE_VALUES:
        raise ValueError(f"value must be one of {', '.join(PAGE_VALUES)}; got {value!r}")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
        raise ValueError(f"note must be text of at most {MAX_NOTE_CHARS} characters")
    return {"value": value, "source": PAGE, "by": [user], "at": now, "note": (note or "").strip() or None}


def changes(incident: Mapping[str, Any], reactions: Mapping[str, Sequence[str]], *, now: datetime) -> dict:
    """What to write on `incident` (its stored fields) after reading `reactions` at `now`: `reactions`,
    `first_reaction_at` and `label`, only those that changed ({} when none did).

    Slack tells no reaction's time: `first_reaction_at` is the time of the first read that saw one,
    so it is late by up to a run's interval. A reaction taken back leaves it as it was.
    """
    said = {kind: list(reactions.get(kind) or ()) for kind in (REAL, NOISE)}
    stored = incident.get("label") if isinstance(incident.get("label"), Mapping) else None
    page = stored if _from_page(stored) else None
    read = incident.get("reactions") if isinstance(incident.get("reactions"), Mapping) else {}
    before = {
        "reactions": {kind: list(read.get(kind) or ()) for kind in said},
        "first_reaction_at": incident.get("first_reaction_at"),
        "label": stored,
    }
    after = {
        "reactions": said,
        "first_reaction_at": before["first_reaction_at"] or (now if any(said.values()) else None),
        "label": label_from(said, page, now=now, previous=stored),
    }
    return {key: value for key, value in after.items() if before[key] != value}


def keep_page_label(stored: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` to write on an incident whose stored label is `stored`, less a `label` that would
    replace one set on the page: the stores' rule, so that a run that read the incident before a
    person labelled it cannot undo the label."""
    label = fields.get("label")
    if _from_page(stored) and not _from_page(label):
        return {key: value for key, value in fields.items() if key != "label"}
    return dict(fields)


def incident_thread(saved: Mapping[str, Any], replaced: Mapping[str, Any]) -> dict[str, Any]:
    """Where the reactions of the incident a state save writes are read: the first Slack message of
    the `saved` state while open, else of the state it `replaced` (the incident it closes); {}
    without one (webhook mode)."""
    state = saved if saved.get("open") else replaced
    if not state.get("slack_ts"):
        return {}
    return {"slack_channel": state.get("slack_channel"), "slack_ts": state["slack_ts"]}


def _from_page(label: Any) -> bool:
    return isinstance(label, Mapping) and label.get("source") == PAGE
