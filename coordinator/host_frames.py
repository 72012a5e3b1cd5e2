"""What the coordinator does with each frame a welcomed host sends."""

from __future__ import annotations

import logging

from agent.protocol import (
    Accept,
    Credits,
    Devices,
    Dump,
    Error,
    Finished,
    Heartbeat,
    Hello,
    HostFrame,
    Reject,
    Request,
    Started,
    Submit,
    TimelineBatch,
)
from coordinator.context import Context
from coordinator.dumps import apply_dump
from coordinator.host_runs import handle_run, ownership_error, refuse
from coordinator.script_requests import answer
from coordinator.sessions import HostSession
from coordinator.store_devices import replace_host_devices
from coordinator.store_tasks import (
    back_to_pending,
    get_task,
)
from coordinator.store_timeline import apply_timeline

log = logging.getLogger(__name__)

DEVICE_REJECTS = frozenset({"device_busy", "unknown_device"})
"""Reject reasons about the device itself; every other reason is about the host."""


async def handle_frame(ctx: Context, session: HostSession, frame: HostFrame) -> None:
    match frame:
        case Devices():
            if frame.devices != session.devices:
                async with ctx.db.transaction() as conn:
                    await replace_host_devices(conn, session.host_id, frame.devices)
                session.set_devices(frame.devices)
                ctx.dispatcher.wake()
        case Credits():
            session.credits = list(dict.fromkeys(frame.free))
            # A hello with accepting=false holds work back only until the host's next credits.
            session.accepting = True
            ctx.dispatcher.wake()
        case Reject():
            await _on_reject(ctx, session, frame)
        case Accept() | Started() | Submit() | Finished():
            await handle_run(ctx, session, [frame])
        case Dump():
            ack = await apply_dump(ctx, session.host_id, _public_base(ctx, session), frame)
            if not ack.ok:
                log.warning("host %s: dump %s refused: %s", session.host_id, frame.key, ack.error)
            session.send(ack)
        case TimelineBatch():
            ack = await apply_timeline(ctx, session.host_id, frame)
            if not ack.ok:
                log.warning(
                    "host %s: timeline %s refused: %s", session.host_id, frame.key, ack.error
                )
            session.send(ack)
        case Request():
            session.send(await answer(ctx, session.host_id, frame))
        case Heartbeat():
            await _on_heartbeat(ctx, session, frame)
        case Error():
            log.warning(
                "host %s reports error %s: %s (ref %s)",
                session.host_id,
                frame.code,
                frame.message,
                frame.ref,
            )
        case Hello():
            refuse(session, "invalid_frame", "hello is only valid as the first frame", None)


def _public_base(ctx: Context, session: HostSession) -> str:
    """Where public file URLs start: the configured URL, else how the host reached us."""
    if ctx.settings.public_url:
        return ctx.settings.public_url
    url = session.websocket.url
    scheme = "https" if url.scheme == "wss" else "http"
    return f"{scheme}://{url.netloc}"


async def _on_reject(ctx: Context, session: HostSession, frame: Reject) -> None:
    async with ctx.db.transaction() as conn:
        task = await get_task(conn, frame.task_id)
        problem = ownership_error(task, frame.task_id, session.host_id)
        if problem is None and task is not None:
            await back_to_pending(conn, task.id)
    if problem is not None:
        refuse(session, *problem, frame.task_id)
        return
    assert task is not None
    session.unaccepted.discard(task.id)
    log.info("host %s rejected task %s: %s", session.host_id, task.id, frame.reason)
    if frame.reason in DEVICE_REJECTS:
        # The device is not offered again until the host's next credits say it is free.
        if task.device_id in session.credits:
            session.credits.remove(task.device_id)
    else:
        # A reason of the host (its disk, its outbox, stopping): the device is offered again
        # (its assignment took it out of the credits) but the host gets nothing until its
        # next credits or a heartbeat saying it takes work.
        if task.device_id is not None and task.device_id not in session.credits:
            session.credits.append(task.device_id)
        session.accepting = False
    ctx.dispatcher.announce()


async def _on_heartbeat(ctx: Context, session: HostSession, frame: Heartbeat) -> None:
    """A host's heartbeat says whether it takes work; a hold no longer true is lifted."""
    if frame.accepting is False:
        if session.accepting:
            log.info("host %s takes no work: %s", session.host_id, frame.pause_reason)
        session.accepting = False
    elif not session.accepting:
        log.info("host %s takes work again", session.host_id)
        session.accepting = True
        ctx.dispatcher.wake()
