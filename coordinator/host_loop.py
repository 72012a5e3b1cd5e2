"""A welcomed host's session loop: frames read ahead, handled in order, task frames in runs.

A reader task parses frames as they arrive, at most READ_AHEAD_FRAMES ahead of their handling.
It starts before reconciliation, so the connection is read (and websocket pings answered) from
the first moment, however long the database takes. The handler takes frames in order; a run of
consecutive `accept`, `started`, `submit` and `finished` frames already waiting is applied in
one transaction (group commit, host_runs.py), which is what lets a reconnected host's outbox
drain fast. Every answer, an `error` for a frame that did not parse included, goes out in the
order of the frames it answers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from agent import boundedjson
from agent.protocol import (
    CLOSE_HEARTBEAT_TIMEOUT,
    MAX_FRAME_BYTES,
    Error,
    FrameError,
    Heartbeat,
    Hello,
    HostFrame,
    parse_host_frame,
)
from coordinator.context import Context
from coordinator.host_frames import handle_frame
from coordinator.host_runs import RUN_FRAMES, RunFrame, handle_run
from coordinator.reconcile import reconcile
from coordinator.sessions import HostSession

log = logging.getLogger(__name__)

READ_AHEAD_FRAMES = 32
"""Frames parsed ahead of their handling, per host, and so the longest run of frames that
shares a transaction. Frames may be 16 MiB: this bounds what one host makes us hold, as
uvicorn's own read-ahead (ws_max_queue, 32) does."""


@dataclass(frozen=True)
class BadFrame:
    """A frame that did not parse: the `error` that answers it, in its turn."""

    error: Error


@dataclass(frozen=True)
class End:
    """The reader has stopped: the host left, failed, or fell silent."""


Item = HostFrame | BadFrame


async def serve(ctx: Context, session: HostSession, hello: Hello) -> None:
    """Reconcile, then handle frames until the host leaves, is replaced, or falls silent."""
    heartbeats = asyncio.create_task(_send_heartbeats(session, ctx.settings.heartbeat_s))
    inbox: asyncio.Queue[Item | End] = asyncio.Queue(maxsize=READ_AHEAD_FRAMES)
    receiving = asyncio.create_task(_receive(ctx, session, inbox))
    try:
        await reconcile(ctx, session, hello)
        item = await inbox.get()
        while not isinstance(item, End):
            if not isinstance(item, RUN_FRAMES):
                await _handle(ctx, session, item)
                item = await inbox.get()
                continue
            run: list[RunFrame] = [item]
            following: Item | End | None = None
            while following is None and not inbox.empty():
                queued = inbox.get_nowait()
                if isinstance(queued, RUN_FRAMES):
                    run.append(queued)
                else:
                    following = queued
            await _handle(ctx, session, run)
            item = following if following is not None else await inbox.get()
    finally:
        heartbeats.cancel()
        receiving.cancel()


async def _send_heartbeats(session: HostSession, interval_s: float) -> None:
    while not session.closed:
        await asyncio.sleep(interval_s)
        session.send(Heartbeat(sent_at=datetime.now(UTC)))


async def _receive(ctx: Context, session: HostSession, inbox: asyncio.Queue[Item | End]) -> None:
    """Read and parse frames into `inbox` until the host is gone or falls silent; then End."""
    try:
        while True:
            try:
                async with asyncio.timeout(2 * ctx.settings.heartbeat_s):
                    message = await session.websocket.receive()
            except TimeoutError:
                log.warning("host %s: heartbeat timeout", session.host_id)
                await session.close(CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout")
                break
            if message["type"] == "websocket.disconnect":
                break
            await inbox.put(_parse(session, message.get("text"), message.get("bytes")))
    except Exception as exc:
        # The connection failed under us: the session ends as if the host had left.
        log.info("host %s: reading failed: %r", session.host_id, exc)
    await inbox.put(End())


def _parse(session: HostSession, text: str | None, data: bytes | None) -> Item:
    raw: str | bytes = text if text is not None else (data or b"")
    try:
        return parse_host_frame(raw)
    except FrameError as exc:
        ref = _error_ref(raw) if isinstance(raw, str) and len(raw) <= MAX_FRAME_BYTES else None
        log.warning("host %s sent a bad frame: %s: %s", session.host_id, exc.code, exc.message)
        return BadFrame(Error(code=exc.code, message=exc.message, ref=ref))


def _error_ref(raw: str) -> str | None:
    try:
        obj = boundedjson.loads(raw)
    except boundedjson.BadJson:
        return None
    if isinstance(obj, dict):
        for field in ("key", "id", "task_id"):
            if isinstance(obj.get(field), str):
                return str(obj[field])
    return None


async def _handle(ctx: Context, session: HostSession, work: Item | list[RunFrame]) -> None:
    """One frame, or a run (host_runs.py); a failure is told to the host, never ends the
    session."""
    if isinstance(work, BadFrame):
        session.send(work.error)
        return
    kind = "/".join(dict.fromkeys(f.type for f in work)) if isinstance(work, list) else work.type
    try:
        if isinstance(work, list):
            await handle_run(ctx, session, work)
        else:
            await handle_frame(ctx, session, work)
    except Exception:
        log.exception("host %s: handling %s failed", session.host_id, kind)
        session.send(Error(code="internal_error", message=f"the coordinator failed on {kind}"))
