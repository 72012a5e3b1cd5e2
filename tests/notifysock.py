"""A NOTIFY_SOCKET for tests: a real AF_UNIX datagram socket that collects what a service sends."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from scripts.devstack import wait_until


class NotifySocket:
    """Bound at `path` (a file, or an abstract name starting with '@'); `address` is what goes
    into $NOTIFY_SOCKET. Every datagram received so far is in `messages`, one dict each."""

    def __init__(self, path: Path | str) -> None:
        self.address = str(path)
        bind_to = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(bind_to)
        self._sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    def drain(self) -> list[dict[str, str]]:
        """Read what has arrived; returns only the new datagrams."""
        new = []
        while True:
            try:
                raw = self._sock.recv(4096)
            except BlockingIOError:
                break
            new.append(dict(line.split("=", 1) for line in raw.decode().splitlines()))
        self.messages += new
        return new

    def wait_for(
        self, match: Callable[[dict[str, str]], bool], what: str, deadline_s: float = 60
    ) -> dict[str, str]:
        """The first datagram (already received or arriving before the deadline) that matches."""

        def check() -> dict[str, str] | None:
            self.drain()
            return next((m for m in self.messages if match(m)), None)

        return wait_until(check, what, deadline_s)

    def close(self) -> None:
        self._sock.close()
        if not self.address.startswith("@"):
            Path(self.address).unlink()
