"""The host websocket (`/ws/host`): authentication, the opening handshake, reconciliation.

See docs/protocol.md: token checked before the upgrade (HTTP 401), `hello` then `welcome`,
takeover of an older session (4001). The session loop that follows (reconciliation, heartbeats,
4003 after two silent intervals, an `error` frame for every refused frame) is host_loop.py.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from agent import boundedjson
from agent.protocol import (
    AUTH_HEADER,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_SESSION_REPLACED,
    CLOSE_UNSUPPORTED_VERSION,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    FrameError,
    Hello,
    Welcome,
    encode,
    parse_host_frame,
)
from coordinator.context import Context
from coordinator.db import new_id
from coordinator.host_loop import serve
from coordinator.replicas import welcomed
from coordinator.sessions import HostSession
from coordinator.store_hosts import digest, host_for_token, touch_host

log = logging.getLogger(__name__)


def _bearer(websocket: WebSocket) -> str | None:
    scheme, _, token = websocket.headers.get(AUTH_HEADER, "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _peer(websocket: WebSocket) -> str:
    client = websocket.client
    return f"{client.host}:{client.port}" if client else "unknown peer"


async def host_endpoint(websocket: WebSocket) -> None:
    ctx: Context = websocket.app.state.ctx
    token = _bearer(websocket)
    host_id = None
    if token is not None:
        async with ctx.db.transaction() as conn:
            host_id = await host_for_token(conn, digest(token))
    if host_id is None:
        why = "missing token" if token is None else "bad token"
        log.warning("host connection from %s refused: %s", _peer(websocket), why)
        await websocket.send_denial_response(
            JSONResponse({"detail": f"host token refused: {why}"}, status_code=401)
        )
        return
    if ctx.sessions.closing:
        log.info("host %s connection refused: the coordinator is stopping", host_id)
        await websocket.send_denial_response(
            JSONResponse({"detail": "the coordinator is stopping"}, status_code=503)
        )
        return
    await websocket.accept()
    hello = await _receive_hello(ctx, websocket, host_id)
    if hello is None:
        return
    session = HostSession(websocket, host_id, new_id(), accepting=hello.accepting)
    old = ctx.sessions.install(session)
    if old is not None:
        log.info(
            "host %s session %s replaced by session %s",
            host_id,
            old.session_id,
            session.session_id,
        )
        await old.close(CLOSE_SESSION_REPLACED, "session replaced")
    welcomed(ctx, session)
    try:
        session.post(
            encode(
                Welcome(
                    protocol_version=PROTOCOL_VERSION,
                    session_id=session.session_id,
                    heartbeat_interval_s=ctx.settings.heartbeat_s,
                    max_frame_bytes=MAX_FRAME_BYTES,
                )
            )
        )
        log.info("host %s connected (session %s)", host_id, session.session_id)
        await serve(ctx, session, hello)
    finally:
        ctx.sessions.remove(session)
        await session.end()
        async with ctx.db.transaction() as conn:
            await touch_host(conn, host_id)
        log.info("host %s disconnected (session %s)", host_id, session.session_id)
        ctx.dispatcher.wake()


async def _close_early(websocket: WebSocket, host_id: str, code: int, reason: str) -> None:
    log.warning("host %s: closing with %d: %s", host_id, code, reason)
    await websocket.close(code=code, reason=reason.encode()[:120].decode(errors="ignore"))


async def _receive_hello(ctx: Context, websocket: WebSocket, host_id: str) -> Hello | None:
    """The host's valid `hello`, or None after closing the connection with the reason."""
    try:
        async with asyncio.timeout(2 * ctx.settings.heartbeat_s):
            message = await websocket.receive()
    except TimeoutError:
        await _close_early(websocket, host_id, CLOSE_PROTOCOL_ERROR, "no hello received")
        return None
    if message["type"] == "websocket.disconnect":
        return None
    raw = message.get("text")
    if raw is None:
        await _close_early(websocket, host_id, CLOSE_PROTOCOL_ERROR, "first frame must be hello")
        return None
    version = _claimed_version(raw)
    if version is not None and version != PROTOCOL_VERSION:
        await _close_early(
            websocket,
            host_id,
            CLOSE_UNSUPPORTED_VERSION,
            f"protocol version {version} unsupported; this coordinator speaks {PROTOCOL_VERSION}",
        )
        return None
    try:
        frame = parse_host_frame(raw)
    except FrameError as exc:
        await _close_early(websocket, host_id, CLOSE_PROTOCOL_ERROR, f"bad hello: {exc.message}")
        return None
    if not isinstance(frame, Hello):
        await _close_early(
            websocket, host_id, CLOSE_PROTOCOL_ERROR, f"first frame must be hello, not {frame.type}"
        )
        return None
    if frame.host_id != host_id:
        await _close_early(
            websocket,
            host_id,
            CLOSE_PROTOCOL_ERROR,
            f"hello host_id {frame.host_id!r} does not match the token's host",
        )
        return None
    return frame


def _claimed_version(raw: str) -> object | None:
    """The protocol_version of a hello, read before validation so a newer hello gets 4000."""
    try:
        obj = boundedjson.loads(raw)
    except boundedjson.BadJson:
        return None
    if isinstance(obj, dict) and obj.get("type") == "hello":
        return obj.get("protocol_version")
    return None
