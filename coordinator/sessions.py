"""Connected host sessions: one live websocket per host, its credits, and ordered sending.

Every frame to a host goes through its session's queue and one writer task, so frames reach the
host in the order they were queued (an `assign` never overtakes the `cancel` of its task) and no
caller waits on a slow host. A frame that cannot be sent is dropped: the protocol recovers every
such loss (the host resends what was not acknowledged; its reconnect reconciles the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from agent.protocol import DeviceInfo, Frame, encode

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
        self.devices: list[DeviceInfo] = []
        """The host's latest device list (`hello` or `devices`), as stored: a repeated list
        (the daemon sends one after every task) is not written again."""
        self.device_ids: set[str] = set()
        """The ids of `devices`: the only devices the host may offer."""
        self.unaccepted: set[str] = set()
        """Tasks assigned in this session and not yet accepted: an `accept` of one of them
        needs no database read."""
        self.credits: list[str] = []
        """Free devices from the latest `credits` frame, less those assigned or rejected since."""
        self.closed = False
        self._broken = False
        self._io_lock = asyncio.Lock()
        self._outgoing: asyncio.Queue[str] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_all())

    def set_devices(self, devices: list[DeviceInfo]) -> None:
        self.devices = devices
        self.device_ids = {d.remote_device_id for d in devices}

    def send(self, frame: Frame) -> None:
        """Queue one frame behind those queued before it."""
        self.post(encode(frame))

    def post(self, text: str) -> None:
        """Queue one frame already encoded."""
        if not (self.closed or self._broken):
            self._outgoing.put_nowait(text)

    async def _write_all(self) -> None:
        while True:
            text = await self._outgoing.get()
            async with self._io_lock:
                if self.closed or self._broken:
                    continue
                try:
                    async with asyncio.timeout(SEND_TIMEOUT_S):
                        await self.websocket.send_text(text)
                except _SEND_ERRORS as exc:
                    # A host that cannot take a frame for SEND_TIMEOUT_S will not take the next
                    # one either: drop the rest; its receive side ends the session.
                    self._broken = True
                    log.info("host %s: could not send: %r", self.host_id, exc)

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
        """Stop the writer once the session is over; frames still queued are dropped."""
        self.closed = True
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer


class SessionRegistry:
    """The current session of each connected host."""

    def __init__(self) -> None:
        self._by_host: dict[str, HostSession] = {}
        self.closing = False
        """The coordinator is stopping: no new session, no new assignment (coordinator/
        drain.py)."""
        self.emptied = asyncio.Event()
        """Set while no session is installed."""
        self.emptied.set()

    def get(self, host_id: str) -> HostSession | None:
        return self._by_host.get(host_id)

    def all(self) -> list[HostSession]:
        return list(self._by_host.values())

    def install(self, session: HostSession) -> HostSession | None:
        """Make `session` its host's current one; returns the session it replaces, if any."""
        old = self._by_host.get(session.host_id)
        self._by_host[session.host_id] = session
        self.emptied.clear()
        return old

    def remove(self, session: HostSession) -> None:
        """Forget `session` unless a newer session of the same host has replaced it."""
        if self._by_host.get(session.host_id) is session:
            del self._by_host[session.host_id]
        if not self._by_host:
            self.emptied.set()
