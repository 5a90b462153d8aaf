"""The fault tests' fixtures: the end-to-end ones (fresh stand-ins, a Firestore client), and a TCP
proxy in front of the session's Firestore emulator that a test can cut and bring back."""

from __future__ import annotations

import pytest

from tests.dags.conftest import db, events, fresh  # noqa: F401  (the end-to-end scenarios' fixtures)
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def firestore_proxy(firestore):
    """A proxy to the emulator: runs pointed at `proxy.address` lose Firestore on `refuse()`."""
    host, port = firestore.host.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    yield proxy
    proxy.close()
