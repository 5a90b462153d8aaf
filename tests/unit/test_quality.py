"""Alert-quality figures (`quality.py`): labels counted per severity, Wilson intervals, reaction and
resolve times, CRITICAL pages per week, and the words that say what the figures rest on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batch_cleanup.quality import figures, quantile, said, wilson

START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(days=14)  # two weeks


def incident(
    minute: int,
    peak: str = "WARNING",
    label: str | None = None,
    *,
    reaction: float | None = None,
    resolve: float | None = None,
    **fields,
) -> dict:
    """An incident document opened `minute` minutes after START; reaction and resolve in minutes."""
    opened = START + timedelta(minutes=minute)
    return {
        "id": f"stalled_batch_cleanup-{opened:%Y%m%dT%H%M%SZ}",
        "dag_id": "stalled_batch_cleanup",
        "opened_at": opened,
        "closed_at": None if resolve is None else opened + timedelta(minutes=resolve),
        "severity": "WARNING",
        "peak_severity": peak,
        "label": label and {"value": label, "source": "page", "by": ["ana"], "at": opened, "note": None},
        "first_reaction_at": None if reaction is None else opened + timedelta(minutes=reaction),
        **fields,
    }


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        (3, 4, 0.3006, 0.9544),  # the textbook's 3 of 4
        (0, 10, 0.0, 0.2775),  # not zero-wide at 0 of n
        (10, 10, 0.7225, 1.0),
        (1, 1, 0.2065, 1.0),
        (45, 50, 0.7864, 0.9565),
    ],
)
def test_wilson_interval(successes, trials, low, high):
    got = wilson(successes, trials)
    assert got["value"] == successes / trials
    assert (round(got["low"], 4), round(got["high"], 4)) == (low, high)


def test_no_trials_no_interval():
    assert wilson(0, 0) is None


@pytest.mark.parametrize(
    ("values", "median", "p90"),
    [([], None, None), ([7], 7, 7), ([1, 2, 3, 4], 2.5, 3.7), ([10, 1, 5], 5, 9.0), (list(range(11)), 5, 9)],
)
def test_quantiles_interpolate_between_the_nearest_values(values, median, p90):
    assert (quantile(values, 0.5), quantile(values, 0.9)) == (median, p90 and pytest.approx(p90))


@pytest.mark.parametrize(
    ("counts", "words"),
    [
        ((0, 0, 0, 0), "no incidents"),
        ((1, 0, 0, 0), "1 incident, not labelled"),
        ((5, 0, 0, 0), "none of the 5 incidents was labelled"),
        ((4, 4, 3, 0), "3 of 4 labelled incidents were real"),
        ((1, 1, 0, 0), "0 of 1 labelled incident was real"),
        ((6, 4, 3, 0), "3 of 4 labelled incidents were real; 2 not labelled"),
        ((5, 5, 2, 1), "2 of 5 labelled incidents were real (1 disputed)"),
    ],
)
def test_the_words_always_say_how_many_were_labelled(counts, words):
    assert said(*counts) == words


def test_figures_per_severity_and_in_total():
    incidents = [
        incident(10, "WARNING", "real", reaction=4, resolve=60),
        incident(20, "WARNING", "noise", reaction=30, resolve=45),
        incident(30, "WARNING", None, resolve=15),
        incident(40, "CRITICAL", "real", reaction=2, resolve=120),
        incident(50, "CRITICAL", "real", reaction=6),  # still open
        incident(60, "CRITICAL", "disputed", resolve=90),
    ]

    got = figures(incidents, start=START, end=END)

    assert set(got) == {"WARNING", "CRITICAL", "total"}
    warning, critical, total = got["WARNING"], got["CRITICAL"], got["total"]
    counts = ("incidents", "labelled", "real", "noise", "disputed")
    assert [warning[k] for k in counts] == [3, 2, 1, 1, 0]
    assert [critical[k] for k in counts] == [3, 3, 2, 0, 1]
    assert [total[k] for k in counts] == [6, 5, 3, 1, 1]
    assert warning["said"] == "1 of 2 labelled incidents were real; 1 not labelled"
    assert critical["said"] == "2 of 3 labelled incidents were real (1 disputed)"
    assert total["said"] == "3 of 5 labelled incidents were real (1 disputed); 1 not labelled"
    # A disputed label counts as labelled and not real.
    assert total["precision"] == wilson(3, 5)
    assert critical["precision"]["value"] == pytest.approx(2 / 3)
    # Three incidents reached CRITICAL in two weeks; a WARNING one never paged CRITICAL.
    assert (warning["critical_pages_per_week"], critical["critical_pages_per_week"]) == (0, 1.5)
    assert total["critical_pages_per_week"] == 1.5
    assert warning["first_reaction_minutes"] == {"median": 17.0, "p90": 27.4, "count": 2}
    assert critical["first_reaction_minutes"] == {"median": 4.0, "p90": 5.6, "count": 2}
    assert total["first_reaction_minutes"] == {"median": 5.0, "p90": 22.8, "count": 4}
    # Only closed incidents have a time to resolve.
    assert critical["resolve_minutes"] == {"median": 105.0, "p90": 117.0, "count": 2}
    assert total["resolve_minutes"] == {"median": 60.0, "p90": 108.0, "count": 5}


def test_only_incidents_opened_in_the_range_count():
    """`(start, end]`: opened at the very start belongs to the range before, at the end to this one."""
    at_start, at_end = incident(0, label="real"), incident(14 * 24 * 60, label="noise")
    after = incident(14 * 24 * 60 + 1, label="real")
    before = {**incident(0, label="real"), "opened_at": START - timedelta(days=1)}

    total = figures([before, at_start, at_end, after], start=START, end=END)["total"]

    assert (total["incidents"], total["real"], total["noise"]) == (1, 0, 1)


def test_an_empty_range_has_counts_of_zero_and_no_rates():
    total = figures([], start=START, end=END)["total"]
    assert total == {
        "incidents": 0, "labelled": 0, "real": 0, "noise": 0, "disputed": 0, "precision": None,
        "said": "no incidents", "critical_pages_per_week": 0.0,
        "first_reaction_minutes": {"median": None, "p90": None, "count": 0},
        "resolve_minutes": {"median": None, "p90": None, "count": 0},
    }  # fmt: skip


def test_an_incident_without_peak_severity_falls_back_to_its_severity():
    older = {**incident(5, label="real"), "peak_severity": None, "severity": "CRITICAL"}
    got = figures([older], start=START, end=END)
    assert (got["CRITICAL"]["incidents"], got["WARNING"]["incidents"], got["total"]["real"]) == (1, 0, 1)


def test_a_reaction_stamped_before_the_incident_counts_as_immediate():
    early = incident(5, reaction=-3)
    assert figures([early], start=START, end=END)["total"]["first_reaction_minutes"]["median"] == 0


def test_a_label_value_it_does_not_know_counts_as_unlabelled_and_is_logged_naming_the_document(caplog):
    wrong, real = incident(5, label="maybe"), incident(6, label="real")
    total = figures([wrong, real], start=START, end=END)["total"]
    assert (total["incidents"], total["labelled"], total["real"]) == (2, 1, 1), "a bad document blocks none"
    assert "batch_cleanup_incidents/stalled_batch_cleanup-20260301T000500Z.label.value" in caplog.text


def test_a_naive_time_is_refused_naming_the_field():
    naive = {**incident(5), "opened_at": datetime(2026, 3, 2)}
    with pytest.raises(ValueError, match="opened_at must be timezone-aware"):
        figures([naive], start=START, end=END)
