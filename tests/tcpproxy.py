"""A TCP proxy under a test's control, to cut a link the way networks do.

Modes: `pass` forwards bytes; `blackhole` stops forwarding both ways while keeping every
connection open (no FIN, no RST: a half-open link as each end sees it; new connections are
accepted and swallowed too); `reset()` aborts every connection with an RST.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.mode = "pass"
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode == "pass":
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if self.mode == "pass" and not writer.is_closing():
                writer.close()

    def reset(self) -> None:
        """Abort every open connection with an RST (SO_LINGER 0, then close)."""

        def abort() -> None:
            for writer in list(self._writers):
                sock = writer.get_extra_info("socket")
                # A connection that already closed has no descriptor left: setting its linger
                # fails, and must not spare the connections after it.
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                writer.transport.abort()
            self._writers.clear()

        self._loop.call_soon_threadsafe(abort)

    @contextmanager
    def running(self) -> Iterator[TcpProxy]:
        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the proxy did not start")
        try:
            yield self
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(30)
