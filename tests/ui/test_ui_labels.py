"""Labelling an incident on the history page: `PUT /batch-cleanup/api/incidents/{id}/label` against the
Firestore emulator, as Airflow users of each role (Airflow's Simple auth manager decides who may
edit the DAG), and the label as the page shows it: escaped, with buttons for editors only."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.ui import history_data
from tests.ui.conftest import NOW

H = history_data.hour_of(NOW)
OPENED = H - timedelta(hours=3)
INCIDENT = f"{history_data.DAG_ID}-{OPENED:%Y%m%dT%H%M%SZ}"
URL = f"/batch-cleanup/api/incidents/{INCIDENT}/label"
HOSTILE = '<script>alert("x")</script> & <b>bold</b>'


def user(name: str, role: str):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return SimpleAuthManagerUser(username=name, role=role)


@pytest.fixture
def incident(db):
    """One closed incident whose reactions say real; returns how to read it back from Firestore."""
    history = history_data.History()
    reactions = {"value": "real", "source": "reactions", "by": ["U0ALICE"], "at": H, "note": None}
    history.incident(
        OPENED, H - timedelta(hours=2), severity="WARNING", peak_severity="WARNING", label=reactions
    )
    history_data.write(db, history)
    return lambda: db.collection(history_data.INCIDENTS).document(INCIDENT).get().to_dict()


def test_an_editor_labels_an_incident_and_the_page_label_replaces_the_reactions_one(make_client, incident):
    client = make_client(user=user("ana", "user"))

    response = client.put(URL, json={"value": "noise", "note": "  planned load test "})

    assert response.status_code == 200
    expected = {"value": "noise", "source": "page", "by": ["ana"], "at": "2026-03-10T12:30:00Z"}
    assert response.json() == {"id": INCIDENT, "label": {**expected, "note": "planned load test"}}
    stored = incident()
    assert stored["label"] == {**expected, "at": NOW, "note": "planned load test"}
    assert stored["severity"] == "WARNING", "the rest of the incident is kept"
    [row] = client.get("/batch-cleanup/api/incidents?range=24h").json()["incidents"]
    assert row["label"] == {**expected, "note": "planned load test"}


def test_a_label_without_a_note_and_a_second_one_replaces_the_first(make_client, incident):
    make_client(user=user("ana", "admin")).put(URL, json={"value": "noise"})
    make_client(user=user("bo", "op")).put(URL, json={"value": "real", "note": None})

    assert incident()["label"] == {"value": "real", "source": "page", "by": ["bo"], "at": NOW, "note": None}


def test_a_viewer_may_not_label(make_client, incident):
    response = make_client(user=user("vic", "viewer")).put(URL, json={"value": "noise"})

    assert response.status_code == 403
    assert response.json() == {
        "detail": "Labelling an incident needs edit access to DAG stalled_batch_cleanup"
    }
    assert incident()["label"]["source"] == "reactions"


def test_a_signed_out_request_is_refused(make_client, incident):
    response = make_client(signed_in=False).put(URL, json={"value": "noise"})

    assert response.status_code == 401 and response.json() == {"detail": "Not authenticated"}
    assert incident()["label"]["source"] == "reactions"


@pytest.mark.parametrize(
    "incident_id", ["stalled_batch_cleanup-20200101T000000Z", f"other_dag-{OPENED:%Y%m%dT%H%M%SZ}"]
)
def test_an_incident_the_dag_does_not_have_is_a_404_naming_it(make_client, db, incident, incident_id):
    history = history_data.History()
    history.incident(OPENED, None, dag_id="other_dag")
    history_data.write(db, history)

    response = make_client(user=user("ana", "user")).put(
        f"/batch-cleanup/api/incidents/{incident_id}/label", json={"value": "noise"}
    )

    assert response.status_code == 404
    assert response.json() == {"detail": f"No incident {incident_id!r} of DAG stalled_batch_cleanup"}
    assert "label" not in (
        db.collection(history_data.INCIDENTS).document(f"other_dag-{OPENED:%Y%m%dT%H%M%SZ}").get().to_dict()
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": "disputed"}, "value"),
        ({"value": "REAL"}, "value"),
        ({}, "value"),
        ({"value": "real", "note": "x" * 501}, "note"),
        ({"value": "real", "note": 5}, "note"),
    ],
    ids=["disputed", "upper-case", "missing", "note-too-long", "note-not-text"],
)
def test_a_bad_label_is_a_422_naming_the_field(make_client, incident, body, field):
    response = make_client(user=user("ana", "user")).put(URL, json=body)

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]
    assert incident()["label"]["source"] == "reactions"


def test_the_page_shows_the_label_escaped_and_buttons_only_to_editors(make_client, db, incident):
    make_client(user=user("ana", "user")).put(URL, json={"value": "noise", "note": HOSTILE})

    editor = make_client(user=user("ana", "user")).get("/batch-cleanup/?range=24h").text
    viewer = make_client(user=user("vic", "viewer")).get("/batch-cleanup/?range=24h").text

    assert HOSTILE not in editor and "<b>bold</b>" not in editor
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
    assert f'<small class="note">{escaped}</small>' in editor
    assert '<span class="badge label-noise">noise</span>' in editor
    assert "by ana, 2026-03-10 12:30 UTC" in editor
    assert f'<span class="label-buttons" data-incident="{INCIDENT}">' in editor
    assert "label-buttons" not in viewer and escaped in viewer
    assert "\\u003cscript\\u003e" in editor, "the embedded JSON escapes < too"


def test_a_label_from_reactions_names_the_slack_users(make_client, incident):
    page = make_client().get("/batch-cleanup/?range=24h").text

    assert '<span class="badge label-real">real</span>' in page
    assert "reactions of U0ALICE, 2026-03-10 12:00 UTC" in page
