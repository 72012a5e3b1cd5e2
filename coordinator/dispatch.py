"""Dispatch: hands pending tasks to the free devices of connected hosts.

Run after anything that can make work possible (credits, new tasks, a task ending, a host
connecting or leaving). One lock serialises runs, so no task and no device is handed out twice.
A device takes the oldest pending task it may run; when there is none, the oldest planned
sub-task it may run becomes a job task and is given to it. A task whose `assign` frame would be
over the frame limit is failed at once (`assignment_too_large`) and the device takes the next.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncConnection

from agent.protocol import MAX_FRAME_BYTES, Assign, Assignment, encode
from coordinator.db import Database, now
from coordinator.limits import json_bytes
from coordinator.sessions import HostSession, SessionRegistry
from coordinator.store_devices import host_device_ids
from coordinator.store_jobs import get_job, get_script
from coordinator.store_planned import materialise, oldest_planned_for
from coordinator.store_tasks import (
    TaskRow,
    busy_device_ids,
    finish,
    mark_assigned,
    oldest_pending_for,
)

log = logging.getLogger(__name__)

ASSIGNMENT_TOO_LARGE = "assignment_too_large"
"""Failure reason of a task whose `assign` frame would exceed MAX_FRAME_BYTES."""


class Dispatcher:
    def __init__(self, db: Database, sessions: SessionRegistry) -> None:
        self._db = db
        self._sessions = sessions
        self._lock = asyncio.Lock()

    async def dispatch(self) -> None:
        async with self._lock:
            for session in self._sessions.all():
                if session.accepting and not session.closed:
                    await self._fill(session)

    async def _fill(self, session: HostSession) -> None:
        for device_id in list(session.credits):
            assignment = await self._assign(session, device_id)
            if assignment is None:
                continue
            session.credits.remove(device_id)
            log.info(
                "task %s assigned to host %s device %s",
                assignment.task_id,
                session.host_id,
                device_id,
            )
            if not await session.send(Assign(task=assignment)):
                # The task stays assigned: reconnect reconciliation or timeout+grace frees it.
                return

    async def _assign(self, session: HostSession, device_id: str) -> Assignment | None:
        async with self._db.transaction() as conn:
            if device_id not in await host_device_ids(conn, session.host_id):
                return None
            if device_id in await busy_device_ids(conn):
                return None
            while True:
                task = await _next_task_for(conn, device_id)
                if task is None:
                    return None
                assignment = await _assignment(conn, task, device_id)
                problem = _too_large(assignment)
                if problem is None:
                    await mark_assigned(conn, task.id, session.host_id, device_id)
                    return assignment
                # Failed for good here: sent, it would break the host's link and come back
                # pending at its reconnect, again and again, starving the host's other devices.
                await finish(
                    conn,
                    task.id,
                    state="failed",
                    reason=ASSIGNMENT_TOO_LARGE,
                    error=problem,
                    finished_at=now(),
                )
                log.warning("task %s failed (%s): %s", task.id, ASSIGNMENT_TOO_LARGE, problem)


async def _next_task_for(conn: AsyncConnection, device_id: str) -> TaskRow | None:
    """The oldest pending task the device may run, else its oldest planned one, made a task."""
    task = await oldest_pending_for(conn, device_id)
    if task is None:
        planned = await oldest_planned_for(conn, device_id)
        task = None if planned is None else await materialise(conn, planned)
    return task


async def _assignment(conn: AsyncConnection, task: TaskRow, device_id: str) -> Assignment:
    job = await get_job(conn, task.job_id)
    source = await get_script(conn, task.script_sha256)
    if job is None or source is None:
        raise RuntimeError(f"task {task.id} refers to a missing job or script")
    return Assignment(
        task_id=task.id,
        job_id=task.job_id,
        remote_device_id=device_id,
        script_sha256=task.script_sha256,
        script_source=source,
        input=task.input,
        parameters=job.parameters,
        timeout_s=task.timeout_s,
        attempt=task.attempt,
        parent_task_id=task.parent_task_id,
        automation_id=job.automation_id,
    )


def _too_large(assignment: Assignment) -> str | None:
    """Why the `assign` frame of `assignment` cannot be sent (over the frame limit), or None."""
    size = len(encode(Assign(task=assignment)).encode())
    if size <= MAX_FRAME_BYTES:
        return None
    return (
        f"the assign frame would be {size} bytes, over the websocket frame limit of "
        f"{MAX_FRAME_BYTES} bytes (script {len(assignment.script_source.encode())} bytes, "
        f"input {json_bytes(assignment.input)} bytes, "
        f"parameters {json_bytes(assignment.parameters)} bytes)"
    )
