"""A run of a host's `accept`, `started`, `submit` and `finished` frames, in one transaction.

These are the frames of every task's life (docs/protocol.md), and a host sends them back to
back; the session loop (host_loop.py) hands over each run of them it already holds. The run is
applied in one transaction, frame by frame in order, each judged as if applied alone, and the
answers (acks, refusals) go out in order after the commit: an ack never tells of an effect that
is not stored. A commit costs more than a statement (it writes every changed page to the WAL):
one per run, not one per frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from agent.protocol import Accept, Error, Finished, Started, Submit, SubmitAck
from coordinator.context import Context
from coordinator.db import now
from coordinator.db_conn import Conn
from coordinator.sessions import HostSession
from coordinator.store_submissions import store_finished, task_and_key
from coordinator.store_tasks import TaskRow, get_task, mark_running, record_finished_at
from coordinator.submissions import apply_submits, decode_submits
from coordinator.task_end import end_run

log = logging.getLogger(__name__)

RunFrame = Accept | Started | Submit | Finished
RUN_FRAMES = (Accept, Started, Submit, Finished)

Answer = Callable[[], None]
"""What to send (and log) for one frame or one group of submits, once the run is committed."""


def timestamp(moment: datetime) -> float:
    """A host's clock reading as Unix seconds, never later than ours (timeouts count from it)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(moment.timestamp(), now())


def refuse(session: HostSession, code: str, message: str, ref: str | None) -> None:
    log.warning("host %s: %s: %s", session.host_id, code, message)
    session.send(Error(code=code, message=message, ref=ref))


def ownership_error(task: TaskRow | None, task_id: str, host_id: str) -> tuple[str, str] | None:
    if task is None:
        return "unknown_task", f"unknown task {task_id}"
    if task.host_id != host_id:
        return "not_your_task", f"task {task_id} is not assigned to this host"
    return None


async def handle_run(ctx: Context, session: HostSession, frames: list[RunFrame]) -> None:
    """Apply `frames` in one transaction, then send each one's answer in order."""
    submits = [f for f in frames if isinstance(f, Submit)]
    decoded = dict(zip((id(f) for f in submits), decode_submits(submits), strict=True))
    answers: list[Answer] = []
    async with ctx.db.transaction() as conn:
        group: list[Submit] = []
        for frame in [*frames, None]:
            if isinstance(frame, Submit):
                group.append(frame)
                continue
            if group:
                results = await apply_submits(
                    ctx, conn, session.host_id, group, [decoded[id(f)] for f in group]
                )
                answers.append(partial(_answer_submits, ctx, session, group, results))
                group = []
            if isinstance(frame, Accept):
                answers.append(await _apply_accept(conn, session, frame))
            elif isinstance(frame, Started):
                answers.append(await _apply_started(conn, session, frame))
            elif isinstance(frame, Finished):
                answers.append(await _apply_finished(ctx, conn, session, frame))
    for send in answers:
        send()


def _answer_submits(
    ctx: Context, session: HostSession, submits: list[Submit], results: list[tuple[SubmitAck, bool]]
) -> None:
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


def _nothing() -> None:
    return None


async def _apply_accept(conn: Conn, session: HostSession, frame: Accept) -> Answer:
    if frame.task_id in session.unaccepted:
        session.unaccepted.discard(frame.task_id)
        return _nothing
    return _refusal(session, frame.task_id, await get_task(conn, frame.task_id))


def _refusal(session: HostSession, task_id: str, task: TaskRow | None) -> Answer:
    """Nothing to say for a task of this host's; else the refusal to send."""
    problem = ownership_error(task, task_id, session.host_id)
    if problem is None:
        return _nothing
    return partial(refuse, session, *problem, task_id)


async def _apply_started(conn: Conn, session: HostSession, frame: Started) -> Answer:
    if await mark_running(conn, frame.task_id, timestamp(frame.started_at), session.host_id):
        return _nothing
    # Not changed: a task that ended meanwhile (nothing to say) or not this host's.
    task = await get_task(conn, frame.task_id)
    if task is not None and frame.attempt is not None and frame.attempt != task.attempt:
        return _nothing  # an attempt that ended here already
    return _refusal(session, frame.task_id, task)


async def _apply_finished(
    ctx: Context, conn: Conn, session: HostSession, frame: Finished
) -> Answer:
    """Apply a `finished` frame once (by key); its ack is the answer."""
    ended_at = timestamp(frame.finished_at)
    task, repeated = await task_and_key(conn, frame.task_id, frame.key)
    if task is not None and frame.attempt is not None and frame.attempt != task.attempt:
        # That run ended here already (timed out, its host lost) and the task was retried.
        log.info("task %s: ignored the end of its attempt %d", task.id, frame.attempt)
        return partial(session.send, SubmitAck(key=frame.key, ok=True))
    problem = None if repeated else ownership_error(task, frame.task_id, session.host_id)
    if not repeated and problem is None and task is not None:
        if task.is_final and frame.error is None:
            # Ended by its final submission (the common case): the run's end goes with the key.
            await store_finished(conn, frame, ended_at)
        elif task.is_final:
            # What the script raised after its final submission is kept too.
            await record_finished_at(conn, task.id, ended_at, frame.error)
            await store_finished(conn, frame)
        else:
            await end_run(
                conn,
                task,
                ctx.dispatcher.announce,
                state=frame.state,
                reason=frame.reason,
                error=frame.error,
                result=frame.data,
                finished_at=ended_at,
            )
            await store_finished(conn, frame)
    if problem is not None:
        return partial(_refuse_finished, session, frame, problem[1])
    return partial(_ack_finished, ctx, session, frame, repeated, task)


def _refuse_finished(session: HostSession, frame: Finished, why: str) -> None:
    log.warning("host %s: finished %s refused: %s", session.host_id, frame.key, why)
    session.send(SubmitAck(key=frame.key, ok=False, error=why))


def _ack_finished(
    ctx: Context, session: HostSession, frame: Finished, repeated: bool, task: TaskRow | None
) -> None:
    session.send(SubmitAck(key=frame.key, ok=True))
    if repeated:
        return
    # The task's end was logged already when a final submission ended it.
    level = logging.DEBUG if task is not None and task.is_final else logging.INFO
    log.log(level, "task %s finished on host %s: %s", frame.task_id, session.host_id, frame.state)
    ctx.dispatcher.wake()
