"""The history page when Firestore is down: its Firestore client goes through a proxy that refuses
connections (or to a server that answers garbage), and every route answers 503 naming Firestore,
the connection, the project and what it was reading or writing, after the store's few seconds of
retries (`queries.RETRY_SECONDS`) rather than Google's minutes. A label stored while Firestore is
down is not written; stored again once Firestore is back, it is."""

from __future__ import annotations

import contextlib
import html
import socket
import threading
import time

import pytest

from tests.ui import history_data
from tests.ui.conftest import NOW, db, make_client  # noqa: F401  (the UI's TestClient, its seeding client)
from tests.ui.test_ui_labels import INCIDENT, URL, incident, user  # noqa: F401

NAMED = f"Firestore (connection 'google_cloud_default', project '{history_data.PROJECT}')"
# Google's own limits on a call are 60 s (a document) to 300 s (a query); the store's are seconds.
GOOGLE_SHORTEST_SECONDS = 60


@pytest.fixture
def firestore_via(db, monkeypatch):  # noqa: F811  (`db` seeds the emulator directly, not through it)
    """Point the app's Firestore client, built on its first request, at `address`."""
    return lambda address: monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", address)


@pytest.fixture
def store(firestore_via, firestore_proxy):
    """One store for the whole test, as the api-server keeps one (`app.get_store`), on the proxy."""
    from batch_cleanup.ui.queries import HistoryStore

    firestore_via(firestore_proxy.address)
    return HistoryStore(dag_id=history_data.DAG_ID)


def client_of(make_client, store, **kwargs):  # noqa: F811
    from batch_cleanup.ui import app as ui

    return make_client(overrides={ui.get_store: lambda: store}, **kwargs)


def down_for(read: str) -> str:
    """What the answer says of a read refused by the proxy, retried for `RETRY_SECONDS`."""
    from batch_cleanup.ui.queries import RETRY_SECONDS

    retried = f"Timeout of {RETRY_SECONDS:.1f}s exceeded, last exception: 503"  # Google's RetryError
    return f"{NAMED} could not be read for {read}: {retried}"


@pytest.mark.parametrize(
    ("path", "read"),
    [("api/incidents", "the incidents"), ("api/quality?range=90d", "the opened incidents")],
)
def test_an_api_read_answers_503_naming_firestore_and_the_read(
    make_client,  # noqa: F811
    store,
    firestore_proxy,
    path,
    read,
):
    client = client_of(make_client, store)
    assert client.get(f"/batch-cleanup/{path}").status_code == 200, "through the proxy, while it is up"
    firestore_proxy.refuse()

    started = time.monotonic()
    response = client.get(f"/batch-cleanup/{path}")

    assert time.monotonic() - started < GOOGLE_SHORTEST_SECONDS, "the store's retries, not Google's"
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert detail.startswith(down_for(read)), detail
    assert "Connection refused" in detail, detail


def test_the_page_answers_503_with_the_reason_in_html(make_client, store, firestore_proxy):  # noqa: F811
    firestore_proxy.refuse()

    response = client_of(make_client, store).get("/batch-cleanup/")

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Batch cleanup history is unavailable</h1>" in response.text
    # Every read fails; the answer names the first of them (the events), escaped.
    assert html.escape(down_for("the events")) in response.text, response.text
    assert NAMED not in response.text, "the quotes are escaped"


def test_a_label_is_not_stored_while_firestore_is_down_and_is_once_it_is_back(
    make_client,  # noqa: F811
    store,
    firestore_proxy,
    incident,  # noqa: F811
):
    client = client_of(make_client, store, user=user("ana", "user"))
    assert client.get("/batch-cleanup/api/incidents").status_code == 200
    firestore_proxy.refuse()

    refused = client.put(URL, json={"value": "noise", "note": "planned load test"})

    assert refused.status_code == 503
    detail = refused.json()["detail"]
    assert detail.startswith(f"{NAMED} could not store the label of incident {INCIDENT!r}: "), detail
    assert "Connection refused" in detail, detail
    assert incident()["label"]["source"] == "reactions", "nothing written"

    firestore_proxy.back()
    # gRPC reconnects with a backoff: the page may say 503 a few seconds more. A user reloads it.
    deadline = time.monotonic() + 60
    while client.get("/batch-cleanup/api/incidents").status_code == 503:
        assert time.monotonic() < deadline, "Firestore is back but the page still answers 503 after 60 s"
    stored = client.put(URL, json={"value": "noise", "note": "planned load test"})

    assert stored.status_code == 200, stored.text
    label = {"value": "noise", "source": "page", "by": ["ana"], "note": "planned load test"}
    assert stored.json()["label"] == {**label, "at": "2026-03-10T12:30:00Z"}
    assert incident()["label"] == {**label, "at": NOW}
    assert incident()["severity"] == "WARNING", "the rest of the incident is kept"


@pytest.fixture
def garbage_server():
    """A server that answers every connection with an HTTP/1.1 error page, as a proxy or load
    balancer in front of a down service would, and closes it."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed at teardown
                return
            with conn, contextlib.suppress(OSError):
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nBad Gateway")

    threading.Thread(target=answer, daemon=True).start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
    listener.close()


def test_a_garbage_answer_is_a_503_naming_firestore(make_client, firestore_via, garbage_server):  # noqa: F811
    from batch_cleanup.ui.queries import HistoryStore

    firestore_via(garbage_server)
    client = client_of(make_client, HistoryStore(dag_id=history_data.DAG_ID))

    response = client.get("/batch-cleanup/api/status")

    assert response.status_code == 503
    detail = response.json()["detail"]
    assert detail.startswith(f"{NAMED} could not be read for the state: "), detail
    assert "Trying to connect an http1.x server (HTTP status 502)" in detail, "gRPC's reading of it"


def test_a_client_without_the_transport_internals_is_kept_as_it_is_and_says_so(caplog):
    """`_bounded` reaches into google-cloud-firestore's transport; another version of the library must
    leave the page working (with Google's own limits), not break it."""
    from batch_cleanup.ui.queries import _bounded

    class Client:  # no `_firestore_api`
        pass

    client = Client()
    with caplog.at_level("WARNING"):
        assert _bounded(client) is client
    assert "keep Google's own limits" in caplog.text
