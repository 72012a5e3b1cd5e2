"""Connected host sessions: one live websocket per host, its credits, and safe sending."""

from __future__ import annotations

import asyncio
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from agent.protocol import Frame, encode

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0
_MAX_CLOSE_REASON_BYTES = 120  # the websocket protocol allows 123


class HostSession:
    """One accepted, welcomed host connection."""

    def __init__(self, websocket: WebSocket, host_id: str, session_id: str, accepting: bool):
        self.websocket = websocket
        self.host_id = host_id
        self.session_id = session_id
        self.accepting = accepting
        self.credits: list[str] = []
        """Free devices from the latest `credits` frame, less those assigned or rejected since."""
        self.closed = False
        self._send_lock = asyncio.Lock()

    async def send(self, frame: Frame) -> bool:
        """Send one frame; False (never an exception) if the connection is gone or stuck."""
        async with self._send_lock:
            if self.closed:
                return False
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await self.websocket.send_text(encode(frame))
            except (WebSocketDisconnect, RuntimeError, OSError, TimeoutError) as exc:
                log.info(
                    "host %s: could not send %s: %r", self.host_id, frame.__class__.__name__, exc
                )
                return False
            return True

    async def close(self, code: int, reason: str) -> None:
        """Close with an application code; the session's receive loop then ends."""
        async with self._send_lock:
            if self.closed:
                return
            self.closed = True
            short = reason.encode()[:_MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await self.websocket.close(code=code, reason=short)
            except (WebSocketDisconnect, RuntimeError, OSError, TimeoutError) as exc:
                log.info("host %s: close %d failed: %r", self.host_id, code, exc)


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
