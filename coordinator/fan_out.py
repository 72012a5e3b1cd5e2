"""A job's fan-out limits: how deep its sub-tasks may nest (`max_depth`) and how many tasks it
may hold (`max_tasks`, open planned tasks included). They bound a script that adds sub-tasks
that add sub-tasks: past either, `add_sub_tasks` adds nothing and says which limit it met, and
`POST /api/jobs/{id}/tasks` is refused.

The count and the insert it allows must be one transaction that holds the job's row
(`store_jobs.lock_job`): on PostgreSQL, two replicas adding to one job then count one after the
other, so the job never holds more than max_tasks through these two ways. A planned task that
becomes a job task leaves the count as it was.
"""

from __future__ import annotations

import sqlalchemy as sa

from coordinator import schema as t
from coordinator.db_conn import Conn
from coordinator.store_jobs import JobRow
from coordinator.store_planned import count_open_planned

MAX_DEPTH_LIMIT = 100
"""The largest max_depth a job may have."""
MAX_TASKS_LIMIT = 1_000_000
"""The largest max_tasks a job may have."""


async def tasks_held(conn: Conn, job_id: str) -> int:
    """The job's tasks (data dumps included) and its planned tasks not yet job tasks."""
    tasks = await conn.scalar(
        sa.select(sa.func.count()).select_from(t.tasks).where(t.tasks.c.job_id == job_id)
    )
    return int(tasks or 0) + await count_open_planned(conn, job_id)


def too_deep(job: JobRow, depth: int) -> str | None:
    """Why sub-tasks at `depth` may not be added to the job, or None."""
    if depth <= job.max_depth:
        return None
    return f"sub-task depth {depth} is over job {job.id}'s max_depth of {job.max_depth}"


def too_many(job: JobRow, held: int, adding: int) -> str | None:
    """Why `adding` more tasks may not join the `held` ones of the job, or None."""
    if held + adding <= job.max_tasks:
        return None
    return (
        f"job {job.id} holds {held} tasks (planned ones included); {adding} more would be over "
        f"its max_tasks of {job.max_tasks}"
    )
