"""What the coordinator does with each frame a welcomed host sends."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

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
    SubmitAck,
)
from coordinator.context import Context
from coordinator.db import now
from coordinator.dumps import apply_dump
from coordinator.script_requests import answer
from coordinator.sessions import HostSession
from coordinator.store_devices import replace_host_devices
from coordinator.store_submissions import is_stored, store_finished
from coordinator.store_tasks import (
    TaskRow,
    back_to_pending,
    finish,
    get_task,
    mark_running,
    record_finished_at,
)
from coordinator.submissions import apply_submits

log = logging.getLogger(__name__)

DEVICE_REJECTS = frozenset({"device_busy", "unknown_device"})
"""Reject reasons about the device itself; every other reason is about the host."""


def _timestamp(moment: datetime) -> float:
    """A host's clock reading as Unix seconds, never later than ours (timeouts count from it)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(moment.timestamp(), now())


def _refuse(session: HostSession, code: str, message: str, ref: str | None) -> None:
    log.warning("host %s: %s: %s", session.host_id, code, message)
    session.send(Error(code=code, message=message, ref=ref))


def _ownership_error(task: TaskRow | None, task_id: str, host_id: str) -> tuple[str, str] | None:
    if task is None:
        return "unknown_task", f"unknown task {task_id}"
    if task.host_id != host_id:
        return "not_your_task", f"task {task_id} is not assigned to this host"
    return None


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
        case Accept():
            await _on_accept(ctx, session, frame)
        case Reject():
            await _on_reject(ctx, session, frame)
        case Started():
            await _on_started(ctx, session, frame)
        case Submit():
            await handle_submits(ctx, session, [frame])
        case Dump():
            ack = await apply_dump(ctx, session.host_id, _public_base(ctx, session), frame)
            if not ack.ok:
                log.warning("host %s: dump %s refused: %s", session.host_id, frame.key, ack.error)
            session.send(ack)
        case Finished():
            await _on_finished(ctx, session, frame)
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
            _refuse(session, "invalid_frame", "hello is only valid as the first frame", None)


async def handle_submits(ctx: Context, session: HostSession, submits: list[Submit]) -> None:
    """A run of consecutive `submit` frames: one commit, then an ack for each, in order."""
    results = await apply_submits(ctx, session.host_id, submits)
    finals = 0
    for frame, (ack, final) in zip(submits, results, strict=True):
        if not ack.ok:
            log.warning("host %s: submit %s refused: %s", session.host_id, frame.key, ack.error)
        session.send(ack)
        if final:
            finals += 1
            log.info("task %s finished as %s (submission)", frame.task_id, frame.status)
    if finals:
        ctx.dispatcher.wake()


def _public_base(ctx: Context, session: HostSession) -> str:
    """Where public file URLs start: the configured URL, else how the host reached us."""
    if ctx.settings.public_url:
        return ctx.settings.public_url
    url = session.websocket.url
    scheme = "https" if url.scheme == "wss" else "http"
    return f"{scheme}://{url.netloc}"


async def _on_accept(ctx: Context, session: HostSession, frame: Accept) -> None:
    if frame.task_id in session.unaccepted:
        session.unaccepted.discard(frame.task_id)
        return
    async with ctx.db.transaction() as conn:
        task = await get_task(conn, frame.task_id)
    problem = _ownership_error(task, frame.task_id, session.host_id)
    if problem is not None:
        _refuse(session, *problem, frame.task_id)


async def _on_reject(ctx: Context, session: HostSession, frame: Reject) -> None:
    async with ctx.db.transaction() as conn:
        task = await get_task(conn, frame.task_id)
        problem = _ownership_error(task, frame.task_id, session.host_id)
        if problem is None and task is not None:
            await back_to_pending(conn, task.id)
    if problem is not None:
        _refuse(session, *problem, frame.task_id)
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
    ctx.dispatcher.wake()


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


async def _on_started(ctx: Context, session: HostSession, frame: Started) -> None:
    started_at = _timestamp(frame.started_at)
    async with ctx.db.transaction() as conn:
        if await mark_running(conn, frame.task_id, started_at, session.host_id):
            return
        # Not changed: a task that ended meanwhile (nothing to say) or not this host's.
        task = await get_task(conn, frame.task_id)
    problem = _ownership_error(task, frame.task_id, session.host_id)
    if problem is not None:
        _refuse(session, *problem, frame.task_id)


async def _on_finished(ctx: Context, session: HostSession, frame: Finished) -> None:
    """Apply a `finished` frame once (by key) and acknowledge it after commit."""
    ended_at = _timestamp(frame.finished_at)
    async with ctx.db.transaction() as conn:
        repeated = await is_stored(conn, frame.key)
        task = await get_task(conn, frame.task_id)
        problem = None if repeated else _ownership_error(task, frame.task_id, session.host_id)
        if not repeated and problem is None and task is not None:
            if task.is_final:
                await record_finished_at(conn, task.id, ended_at)
            else:
                await finish(
                    conn,
                    task.id,
                    state=frame.state,
                    reason=frame.reason,
                    error=frame.error,
                    result=frame.data,
                    finished_at=ended_at,
                )
            await store_finished(conn, frame)
    if problem is not None:
        log.warning("host %s: finished %s refused: %s", session.host_id, frame.key, problem[1])
        session.send(SubmitAck(key=frame.key, ok=False, error=problem[1]))
        return
    session.send(SubmitAck(key=frame.key, ok=True))
    if not repeated:
        # The task's end was logged already when a final submission ended it.
        level = logging.DEBUG if task is not None and task.is_final else logging.INFO
        log.log(
            level, "task %s finished on host %s: %s", frame.task_id, session.host_id, frame.state
        )
        ctx.dispatcher.wake()
