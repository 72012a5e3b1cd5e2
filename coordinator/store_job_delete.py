"""Deleting a job and every row stored of it, in one transaction: its tasks with their
submissions, files, runs, timelines and artifacts, dependencies, data-dump keys and webhook
deliveries, its planned tasks, shares and script versions. Scripts stay (they are shared by
digest). Refused while a task of it is assigned or running: cancel first.

The job's row is locked FOR UPDATE first, so adding tasks to it through another replica waits
and then finds no job; a task a dispatch pass assigns meanwhile is not deleted, and the whole
deletion is then refused (rolled back) like one found running at the start.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from coordinator import schema as t
from coordinator.db_conn import Conn
from coordinator.store_jobs import lock_job
from coordinator.store_tasks import ACTIVE_STATES
from coordinator.store_webhooks import delete_of_job

c = t.tasks.c


class JobBusy(Exception):
    """Tasks of the job are assigned or running."""

    def __init__(self, job_id: str, count: int) -> None:
        super().__init__(
            f"job {job_id} has {count} task(s) assigned or running: cancel it "
            f"(POST /api/jobs/{job_id}/cancel) or wait until they end"
        )
        self.count = count


@dataclass(frozen=True)
class DeletedJob:
    tasks: int
    planned: int
    files: int
    file_paths: set[str]
    """Where the deleted file rows' bytes are (store_files.py): other rows may name them too."""


async def _active(conn: Conn, job_id: str) -> int:
    count = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(t.tasks)
        .where(c.job_id == job_id, c.state.in_(ACTIVE_STATES))
    )
    return int(count or 0)


async def delete_job(conn: Conn, job_id: str) -> DeletedJob | None:
    """Delete the job with all of it; None if there is no such job; JobBusy while a task of it
    is assigned or running (nothing is deleted then)."""
    if not await lock_job(conn, job_id, for_delete=True):
        return None
    active = await _active(conn, job_id)
    if active:
        raise JobBusy(job_id, active)
    ids = sa.select(c.id).where(c.job_id == job_id)
    d = t.task_dependencies.c
    await conn.execute(
        sa.delete(t.task_dependencies).where(sa.or_(d.task_id.in_(ids), d.depends_on.in_(ids)))
    )
    await conn.execute(sa.delete(t.runs).where(t.runs.c.task_id.in_(ids)))
    await conn.execute(sa.delete(t.submissions).where(t.submissions.c.task_id.in_(ids)))
    paths = set(
        await conn.scalars(sa.select(t.files.c.path).where(t.files.c.task_id.in_(ids)).distinct())
    )
    files = await conn.execute(sa.delete(t.files).where(t.files.c.task_id.in_(ids)))
    a = t.artifacts.c
    paths |= set(await conn.scalars(sa.select(a.path).where(a.task_id.in_(ids)).distinct()))
    await conn.execute(sa.delete(t.artifacts).where(a.task_id.in_(ids)))
    await conn.execute(sa.delete(t.timeline_entries).where(t.timeline_entries.c.task_id.in_(ids)))
    await conn.execute(sa.delete(t.dumps).where(t.dumps.c.job_task_id.in_(ids)))
    await delete_of_job(conn, job_id)
    tasks = await conn.execute(
        sa.delete(t.tasks).where(c.job_id == job_id, c.state.not_in(ACTIVE_STATES))
    )
    active = await _active(conn, job_id)
    if active:
        raise JobBusy(job_id, active)
    planned = await conn.execute(
        sa.delete(t.planned_tasks).where(t.planned_tasks.c.job_id == job_id)
    )
    await conn.execute(sa.delete(t.job_shares).where(t.job_shares.c.job_id == job_id))
    await conn.execute(sa.delete(t.job_versions).where(t.job_versions.c.job_id == job_id))
    await conn.execute(sa.delete(t.jobs).where(t.jobs.c.id == job_id))
    return DeletedJob(
        tasks.rowcount, planned.rowcount, files.rowcount, {str(path) for path in paths}
    )
