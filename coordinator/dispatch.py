"""Dispatch: hands pending tasks to the free devices of connected hosts.

Run after anything that can make work possible (credits, new tasks, a task ending, a host
connecting or leaving). One lock serialises runs, so no task and no device is handed out twice.
A device takes the oldest pending task it may run; when there is none, the oldest planned
sub-task it may run becomes a job task and is given to it.
"""

from __future__ import annotations

import asyncio
import logging

from agent.protocol import Assign, Assignment
from coordinator.db import Database
from coordinator.sessions import HostSession, SessionRegistry
from coordinator.store_devices import host_device_ids
from coordinator.store_jobs import get_job, get_script
from coordinator.store_planned import materialise, oldest_planned_for
from coordinator.store_tasks import busy_device_ids, mark_assigned, oldest_pending_for

log = logging.getLogger(__name__)


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
            task = await oldest_pending_for(conn, device_id)
            if task is None:
                planned = await oldest_planned_for(conn, device_id)
                task = None if planned is None else await materialise(conn, planned)
            if task is None:
                return None
            job = await get_job(conn, task.job_id)
            source = await get_script(conn, task.script_sha256)
            if job is None or source is None:
                raise RuntimeError(f"task {task.id} refers to a missing job or script")
            await mark_assigned(conn, task.id, session.host_id, device_id)
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
