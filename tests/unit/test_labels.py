"""labels.py: which emoji say what, a page label over reactions, "disputed", who and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batch_cleanup.labels import (
    changes,
    incident_thread,
    keep_page_label,
    label_from,
    page_label,
    reactions_of,
)

NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=15)
NAMES = {"real": "white_check_mark", "noise": "no_bell"}
PAGE = {"value": "noise", "source": "page", "by": ["ana"], "at": EARLIER, "note": "planned load test"}


def said(real=(), noise=()):
    return {"real": list(real), "noise": list(noise)}


@pytest.mark.parametrize(
    ("emoji", "expected"),
    [
        ({}, said()),
        ({"white_check_mark": ["U1", "U2"]}, said(real=["U1", "U2"])),
        ({"no_bell": ["U3"], "eyes": ["U1"], "tada": ["U2"]}, said(noise=["U3"])),
        (
            {"white_check_mark::skin-tone-2": ["U1"], "white_check_mark": ["U1", "U2"]},
            said(real=["U1", "U2"]),
        ),
        ({"white_check_mark": ["U1"], "no_bell": ["U1"]}, said(real=["U1"], noise=["U1"])),
    ],
    ids=["none", "real", "others-ignored", "skin-tone-same-user-once", "one-user-both"],
)
def test_reactions_of_reads_only_the_two_emoji(emoji, expected):
    assert reactions_of(emoji, **NAMES) == expected


def test_the_emoji_names_are_settings():
    assert reactions_of({"+1": ["U1"], "-1": ["U2"]}, real="+1", noise="-1") == said(["U1"], ["U2"])
    assert reactions_of({"white_check_mark": ["U1"]}, real="+1", noise="-1") == said()


@pytest.mark.parametrize(
    ("reactions", "value", "by"),
    [
        (said(real=["U1", "U2"]), "real", ["U1", "U2"]),
        (said(noise=["U3"]), "noise", ["U3"]),
        (said(real=["U1"], noise=["U3", "U1"]), "disputed", ["U1", "U3"]),
    ],
    ids=["real", "noise", "disputed"],
)
def test_reactions_make_a_label_with_who_and_when(reactions, value, by):
    assert label_from(reactions, None, now=NOW) == {
        "value": value,
        "source": "reactions",
        "by": by,
        "at": NOW,
        "note": None,
    }


@pytest.mark.parametrize("reactions", [None, said(), said(real=["U1"], noise=["U2"])], ids=repr)
def test_a_page_label_wins_over_any_reactions(reactions):
    assert label_from(reactions, PAGE, now=NOW) == PAGE


def test_no_reactions_and_no_page_label_is_no_label():
    assert label_from(said(), None, now=NOW) is None
    assert label_from(None, None) is None


def test_the_label_keeps_its_time_while_its_value_stays():
    first = label_from(said(real=["U1"]), None, now=EARLIER)
    same = label_from(said(real=["U1", "U2"]), None, now=NOW, previous=first)
    turned = label_from(said(real=["U1"], noise=["U2"]), None, now=NOW, previous=same)

    assert (same["at"], same["by"]) == (EARLIER, ["U1", "U2"]), "another ✅ is the same label"
    assert (turned["value"], turned["at"]) == ("disputed", NOW)
    page_before = label_from(said(real=["U1"]), None, now=NOW, previous={**PAGE, "value": "real"})
    assert page_before["at"] == NOW, "a page label's time is not a reaction label's"


def test_a_page_label_names_the_user_and_keeps_the_note():
    assert page_label("real", user="ana", note="  fixed the worker pool ", now=NOW) == {
        "value": "real",
        "source": "page",
        "by": ["ana"],
        "at": NOW,
        "note": "fixed the worker pool",
    }
    assert page_label("noise", user="ana", note="   ", now=NOW)["note"] is None
    assert page_label("noise", user="ana", note="x" * 500, now=NOW)["note"] == "x" * 500


@pytest.mark.parametrize(
    ("value", "note", "field"),
    [("disputed", None, "value"), ("REAL", None, "value"), ("real", "x" * 501, "note"), ("real", 5, "note")],
)
def test_a_page_label_refuses_what_it_cannot_be_naming_the_field(value, note, field):
    with pytest.raises(ValueError, match=rf"^{field} must be"):
        page_label(value, user="ana", note=note, now=NOW)


# --- what a read changes ---------------------------------------------------------------------------


def test_a_first_read_without_reactions_changes_nothing():
    assert changes({"id": "i1", "closed_at": None}, said(), now=NOW) == {}


def test_the_first_reaction_sets_its_time_and_the_label():
    got = changes({"id": "i1"}, said(noise=["U1"]), now=NOW)

    assert got == {
        "reactions": said(noise=["U1"]),
        "first_reaction_at": NOW,
        "label": {"value": "noise", "source": "reactions", "by": ["U1"], "at": NOW, "note": None},
    }


def test_an_unchanged_read_changes_nothing_and_a_new_reaction_only_what_moved():
    stored = {"id": "i1", **changes({}, said(real=["U1"]), now=EARLIER)}
    assert changes(stored, said(real=["U1"]), now=NOW) == {}

    more = changes(stored, said(real=["U1", "U2"]), now=NOW)
    assert set(more) == {"reactions", "label"}, "the first reaction's time stays"
    assert (more["label"]["by"], more["label"]["at"]) == (["U1", "U2"], EARLIER)


def test_a_reaction_taken_back_clears_the_label_but_not_the_first_reactions_time():
    stored = {"id": "i1", **changes({}, said(real=["U1"]), now=EARLIER)}

    assert changes(stored, said(), now=NOW) == {"reactions": said(), "label": None}


def test_under_a_page_label_reactions_are_kept_and_the_label_is_not_touched():
    got = changes({"id": "i1", "label": PAGE}, said(real=["U1"], noise=["U2"]), now=NOW)

    assert got == {"reactions": said(real=["U1"], noise=["U2"]), "first_reaction_at": NOW}


def test_garbage_stored_fields_are_read_as_nothing():
    got = changes({"label": "real", "reactions": ["U1"]}, said(real=["U1"]), now=NOW)
    assert got["reactions"] == said(real=["U1"]) and got["label"]["value"] == "real"


# --- the stores' rules -----------------------------------------------------------------------------


def test_a_label_from_reactions_never_replaces_a_page_label():
    fields = {"label": {"value": "real", "source": "reactions"}, "reactions": said(real=["U1"])}

    assert keep_page_label(PAGE, fields) == {"reactions": said(real=["U1"])}
    assert keep_page_label(PAGE, {"label": {**PAGE, "value": "real"}}) == {"label": {**PAGE, "value": "real"}}
    assert keep_page_label(None, fields) == fields
    assert keep_page_label({"value": "noise", "source": "reactions"}, {"label": None}) == {"label": None}


def test_the_incident_thread_is_the_saved_states_or_for_a_closing_save_the_replaced_ones():
    thread = {"slack_channel": "C1", "slack_ts": "1.1"}
    assert incident_thread({"open": True, **thread, "x": 1}, {}) == thread
    assert incident_thread({"open": False}, {"open": True, **thread}) == thread
    assert incident_thread({"open": True}, {"open": True, **thread}) == {}, "webhook mode: no thread"
    assert incident_thread({"open": False}, {}) == {}
