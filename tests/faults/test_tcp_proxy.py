"""The fault proxy itself: it forwards, refuses and cuts, and comes back on the same port."""

from __future__ import annotations

import socket
import socketserver
import threading

import pytest

from tests.support.tcp_proxy import TcpProxy


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


@pytest.fixture
def proxy():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = TcpProxy(*server.server_address)
    yield proxy
    proxy.close()
    server.shutdown()
    server.server_close()


def echo(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    return sock.recv(1024)


def test_forwards_refuses_cuts_and_comes_back_on_the_same_port(proxy):
    port = proxy.port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as open_one:
        assert echo(open_one, b"before") == b"before"
        proxy.refuse()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        # The open connection is cut: reset, or closed before an answer.
        with pytest.raises(OSError):
            if not echo(open_one, b"during"):
                raise ConnectionResetError("closed")
    proxy.back()
    assert proxy.port == port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as again:
        assert echo(again, b"after") == b"after"


def test_its_port_is_below_the_ephemeral_range_so_no_outgoing_connection_takes_it_while_refused(proxy):
    """`back()` rebinds the same port: had an outgoing connection of another test been handed that
    port during the outage, the bind would fail (`Address already in use`), as it once did in CI."""
    from tests.support.tcp_proxy import _ephemeral_low

    assert 1024 <= proxy.port < _ephemeral_low()
    proxy.refuse()
    proxy.back()
    assert proxy.port < _ephemeral_low()
