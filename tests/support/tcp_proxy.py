"""A TCP proxy for fault tests: it forwards bytes to a server until told to refuse, then passes again.

- `refuse()`: the listening socket is closed, so new connections are refused, and every open
  connection is reset (both sides see the connection cut), as when the server's host goes away.
- `back()`: the same port listens again; the server behind was never touched, so its data is intact.
  The port is chosen below the kernel's ephemeral range: while refused, no outgoing connection of
  another test can be given it, so `back()` finds it free.

Threads only: one accepting, two per connection (one each way).
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading

# SO_LINGER on, timeout 0: close() sends RST, so a cut connection fails at once rather than draining.
RESET = struct.pack("ii", 1, 0)


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = self._listen_below_ephemeral()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def refuse(self) -> None:
        """New connections refused, open ones reset."""
        with self._lock:
            listener, self._listener = self._listener, None
            cut, self._open = self._open, set()
        if listener is not None:
            _reset(listener)  # shutdown() first: close() alone leaves a blocked accept() listening
        for sock in cut:
            _reset(sock)

    def back(self) -> None:
        """Listen on the same port again and forward as before."""
        with self._lock:
            if self._listener is not None:
                return
        self._listen(self.port)

    def close(self) -> None:
        self.refuse()

    def _listen_below_ephemeral(self) -> int:
        low = _ephemeral_low()
        for _ in range(200):
            with contextlib.suppress(OSError):  # taken: another try
                return self._listen(random.randrange(max(1024, low - 16384), low))
        raise OSError(f"no free port below the ephemeral range ({low}) after 200 tries")

    def _listen(self, port: int) -> int:
        listener = socket.socket()
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, port))
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener.getsockname()[1]

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by refuse()
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:  # refused while this one connected
                    _reset(client)
                    _reset(upstream)
                    continue
                self._open.update((client, upstream))
            done = threading.Barrier(2, action=lambda pair=(client, upstream): self._end(pair))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink, done), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, done: threading.Barrier) -> None:
        """One direction; the connection is closed once both have ended."""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # the other direction may still carry an answer
        except OSError:  # cut, by refuse() or by either end: the other direction ends too
            _reset(source)
            _reset(sink)
        done.wait()

    def _end(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            self._open.difference_update(pair)
        for sock in pair:
            sock.close()


def _reset(sock: socket.socket) -> None:
    """Cut the connection; shutdown() also wakes a thread blocked in recv() on it."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _ephemeral_low() -> int:
    """The first port the kernel hands to outgoing connections (Linux; 32768 elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
