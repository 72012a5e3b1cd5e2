"""Device side of the adb transport: packets, the CNXN/AUTH handshake, and streams.

One `TransportConnection` per TCP connection from the adb server. Each OPEN becomes a `Stream`
served by its own task; a stream writes under adb's flow control (one WRTE in flight until the
host's OKAY) and buffers what the host writes, so a service reads it as a byte stream whatever
the packet boundaries were.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from drivers.sim.faults import Faults

log = logging.getLogger(__name__)

A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_AUTH = 0x48545541

AUTH_TOKEN = 1
AUTH_SIGNATURE = 2
AUTH_RSAPUBLICKEY = 3

A_VERSION = 0x01000001
MAX_PAYLOAD = 256 * 1024
# Anything larger than this in a header is a broken peer, not data worth waiting for.
MAX_ACCEPTED_PAYLOAD = 1024 * 1024

_HEADER = struct.Struct("<6I")


class ProtocolError(Exception):
    """The peer sent something that is not an adb packet."""


class StreamClosed(Exception):
    """The stream closed before the bytes the service waited for arrived."""


class Packet(NamedTuple):
    command: int
    arg0: int
    arg1: int
    data: bytes


def encode_packet(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    checksum = sum(data) & 0xFFFFFFFF
    header = _HEADER.pack(command, arg0, arg1, len(data), checksum, command ^ 0xFFFFFFFF)
    return header + data


async def read_packet(reader: asyncio.StreamReader) -> Packet:
    header = await reader.readexactly(_HEADER.size)
    command, arg0, arg1, length, _checksum, magic = _HEADER.unpack(header)
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic in packet header {header.hex()}")
    if length > MAX_ACCEPTED_PAYLOAD:
        raise ProtocolError(f"payload of {length} bytes is too large")
    data = await reader.readexactly(length) if length else b""
    return Packet(command, arg0, arg1, data)


class Stream:
    """One adb stream as a service sees it."""

    def __init__(self, conn: TransportConnection, local_id: int, remote_id: int) -> None:
        self._conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self._inbox = bytearray()
        self._arrived = asyncio.Event()
        self._may_send = asyncio.Event()
        self._may_send.set()
        self._closed = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def read(self) -> bytes:
        """What the host wrote since the last read; b"" once the stream is closed."""
        while not self._inbox:
            if self.closed:
                return b""
            self._arrived.clear()
            await self._arrived.wait()
        data = bytes(self._inbox)
        self._inbox.clear()
        return data

    async def read_exactly(self, size: int) -> bytes:
        while len(self._inbox) < size:
            if self.closed:
                raise StreamClosed(f"stream closed with {len(self._inbox)} of {size} bytes")
            self._arrived.clear()
            await self._arrived.wait()
        data = bytes(self._inbox[:size])
        del self._inbox[:size]
        return data

    async def write(self, data: bytes) -> None:
        """Send data to the host; raises StreamClosed if the stream closes first."""
        limit = self._conn.max_payload
        for start in range(0, len(data), limit):
            while not self._may_send.is_set():
                if self.closed:
                    raise StreamClosed("stream closed while writing")
                waiter = asyncio.ensure_future(self._may_send.wait())
                closer = asyncio.ensure_future(self._closed.wait())
                await asyncio.wait({waiter, closer}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                closer.cancel()
            if self.closed:
                raise StreamClosed("stream closed while writing")
            self._may_send.clear()
            self._conn.send(A_WRTE, self.local_id, self.remote_id, data[start : start + limit])

    def close(self) -> None:
        """Close from the device side (tells the host); safe to call more than once."""
        if self.closed:
            return
        self._mark_closed()
        self._conn.send(A_CLSE, self.local_id, self.remote_id)

    def _mark_closed(self) -> None:
        self._closed.set()
        self._arrived.set()
        self._conn.forget(self.local_id)

    def on_write(self, data: bytes) -> None:
        self._inbox.extend(data)
        self._arrived.set()

    def on_okay(self) -> None:
        self._may_send.set()

    def on_close(self) -> None:
        self._mark_closed()


Service = Callable[[Stream], Awaitable[None]]
Router = Callable[[str], Service | None]


class TransportConnection:
    """One adb server connected to the phone."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        banner: str,
        router: Router,
        faults: Faults,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._banner = banner.encode()
        self._router = router
        self._faults = faults
        self._streams: dict[int, Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_id = 1
        self.max_payload = MAX_PAYLOAD
        self._version = A_VERSION
        self.online = False
        self.awaiting_auth = False

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        if self._writer.is_closing():
            return
        self._writer.write(encode_packet(command, arg0, arg1, data))

    def forget(self, local_id: int) -> None:
        self._streams.pop(local_id, None)

    def accept(self) -> None:
        """Finish the handshake: the host sees the phone as `device` from now on."""
        self.awaiting_auth = False
        self.online = True
        self.send(A_CNXN, self._version, MAX_PAYLOAD, self._banner)

    def close(self) -> None:
        self._writer.close()

    async def run(self) -> None:
        try:
            while True:
                packet = await read_packet(self._reader)
                self._handle(packet)
                await self._writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ProtocolError as exc:
            log.warning("closing adb connection: %s", exc)
        finally:
            for stream in list(self._streams.values()):
                stream.on_close()
            for task in list(self._tasks):
                task.cancel()
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    def _handle(self, packet: Packet) -> None:
        if packet.command == A_CNXN:
            self._version = min(packet.arg0, A_VERSION)
            self.max_payload = max(1024, min(packet.arg1, MAX_PAYLOAD))
            if self._faults.auth_required:
                self.awaiting_auth = True
                self._send_auth_token()
            else:
                self.accept()
        elif packet.command == A_AUTH:
            # A signature never verifies and a public key waits for the user to accept it:
            # exactly what a phone asking for authorisation does.
            if self.awaiting_auth and packet.arg0 == AUTH_SIGNATURE:
                self._send_auth_token()
        elif not self.online:
            return
        elif packet.command == A_OPEN:
            self._spawn(self._open(packet.arg0, packet.data.rstrip(b"\0").decode("utf-8")))
        elif packet.command == A_WRTE:
            stream = self._streams.get(packet.arg1)
            if stream is not None:
                stream.on_write(packet.data)
                self.send(A_OKAY, stream.local_id, stream.remote_id)
        elif packet.command == A_OKAY:
            stream = self._streams.get(packet.arg1)
            if stream is not None:
                stream.on_okay()
        elif packet.command == A_CLSE:
            stream = self._streams.get(packet.arg1)
            if stream is not None:
                stream.on_close()

    def _send_auth_token(self) -> None:
        self.send(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, remote_id: int, destination: str) -> None:
        if self._faults.latency > 0:
            await asyncio.sleep(self._faults.latency)
        service = self._router(destination)
        if service is None:
            self.send(A_CLSE, 0, remote_id)
            return
        local_id = self._next_id
        self._next_id += 1
        stream = Stream(self, local_id, remote_id)
        self._streams[local_id] = stream
        self.send(A_OKAY, local_id, remote_id)
        try:
            await service(stream)
        except StreamClosed:
            pass
        except Exception:
            log.exception("service for %r failed", destination)
        finally:
            stream.close()
