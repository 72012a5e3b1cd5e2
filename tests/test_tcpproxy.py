"""tests/tcpproxy.py itself: `reset()` aborts every open connection, whatever closed before."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from scripts.devstack import wait_until
from tests.tcpproxy import TcpProxy

CLOSED_FIRST = 20


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@contextmanager
def echo_server() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def closed_sockets(proxy: TcpProxy) -> int:
    writers = list(proxy._writers)
    return sum(1 for w in writers if w.get_extra_info("socket").fileno() == -1)


def test_reset_aborts_open_connections_after_closed_ones() -> None:
    with echo_server() as port, TcpProxy(port).running() as proxy:
        for _ in range(CLOSED_FIRST):
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
                sock.sendall(b"x")
                assert sock.recv(1) == b"x"
        # Both sides of each closed connection: the client's and the upstream one.
        wait_until(lambda: closed_sockets(proxy) >= 2 * CLOSED_FIRST, "closed connections")
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as open_sock:
            open_sock.sendall(b"y")
            assert open_sock.recv(1) == b"y"
            proxy.reset()
            with pytest.raises(ConnectionResetError):
                open_sock.recv(1)
