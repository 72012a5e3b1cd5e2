"""Connected host sessions: one live websocket per host, its credits, and ordered sending.

Every frame to a host goes through its session's queue and one writer task, so frames reach the
host in the order they were posted (an `assign` never overtakes the `cancel` of its task) and no
caller waits on a slow host: the dispatcher posts and moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from agent.protocol import Frame, encode

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0
_MAX_CLOSE_REASON_BYTES = 120  # the websocket protocol allows 123
_SEND_ERRORS = (WebSocketDisconnect, RuntimeError, OSError, TimeoutError)


class HostSession:
    """One accepted, welcomed host connection."""

    def __init__(self, websocket: WebSocket, host_id: str, session_id: str, accepting: bool):
        self.websocket = websocket
        self.host_id = host_id
        self.session_id = session_id
        self.accepting = accepting
        self.device_ids: set[str] = set()
        """The devices of the host's latest `hello` or `devices` frame: the only ones it may
        offer."""
        self.credits: list[str] = []
        """Free devices from the latest `credits` frame, less those assigned or rejected since."""
        self.closed = False
        self._broken = False
        self._io_lock = asyncio.Lock()
        self._outgoing: asyncio.Queue[tuple[str, asyncio.Future[bool]]] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_all())

    def post(self, text: str) -> asyncio.Future[bool]:
        """Queue an encoded frame; the future says whether it was sent (never raises)."""
        sent: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outgoing.put_nowait((text, sent))
        return sent

    async def send(self, frame: Frame) -> bool:
        """Send one frame after those posted before it; False if the host is gone or stuck."""
        return await self.post(encode(frame))

    async def _write_all(self) -> None:
        while True:
            text, sent = await self._outgoing.get()
            ok = False
            try:
                ok = await self._write(text)
            finally:
                if not sent.done():
                    sent.set_result(ok)

    async def _write(self, text: str) -> bool:
        async with self._io_lock:
            if self.closed or self._broken:
                return False
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await self.websocket.send_text(text)
            except _SEND_ERRORS as exc:
                # A host that cannot take a frame for SEND_TIMEOUT_S will not take the next one
                # either: fail the rest at once; its receive side ends the session.
                self._broken = True
                log.info("host %s: could not send: %r", self.host_id, exc)
                return False
            return True

    async def close(self, code: int, reason: str) -> None:
        """Close with an application code; the session's receive loop then ends."""
        async with self._io_lock:
            if self.closed:
                return
            self.closed = True
            short = reason.encode()[:_MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await self.websocket.close(code=code, reason=short)
            except _SEND_ERRORS as exc:
                log.info("host %s: close %d failed: %r", self.host_id, code, exc)

    async def end(self) -> None:
        """Stop the writer once the session is over; frames still queued count as not sent."""
        self.closed = True
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        while not self._outgoing.empty():
            _, sent = self._outgoing.get_nowait()
            if not sent.done():
                sent.set_result(False)


class SessionRegistry:
    """The current session of each connected host."""

    def __init__(self) -> None:
        self._by_host: dict[str, HostSession] = {}

    def get(self, host_id: str) -> HostSession | None:
        return self._by_host.get(host_id)

    def all(self) -> list[HostSession]:
        return list(self._by_host.values())

    def install(self, session: HostSession) -> HostSession | None:
        """Make `session` its host's current one; returns the session it replaces, if any."""
        old = self._by_host.get(session.host_id)
        self._by_host[session.host_id] = session
        return old

    def remove(self, session: HostSession) -> None:
        """Forget `session` unless a newer session of the same host has replaced it."""
        if self._by_host.get(session.host_id) is session:
            del self._by_host[session.host_id]
