"""Who may do what with a job over HTTP: its owner, or a share of the kind the call needs.

- view (read the job, its tasks and their files): the owner, shared_view or shared_edit;
- edit (change the job, a new script version, add or cancel tasks): the owner or shared_edit;
- control (pause, resume or cancel the job): the owner or shared_edit;
- share (give or take shares) and delete (the job with all of it): the owner.

An unknown job or task is 404; a known one the caller may not use that way is 403, naming the
caller's access.
"""

from __future__ import annotations

from typing import Literal

from fastapi import HTTPException

from coordinator.db_conn import Conn
from coordinator.store_jobs import JobRow, get_job
from coordinator.store_tasks import TaskRow, get_task

Need = Literal["view", "edit", "control", "share", "delete"]
_ALLOWED: dict[Need, tuple[str, ...]] = {
    "view": ("owner", "shared_view", "shared_edit"),
    "edit": ("owner", "shared_edit"),
    "control": ("owner", "shared_edit"),
    "share": ("owner",),
    "delete": ("owner",),
}
_WHO: dict[Need, str] = {
    "view": "its owner, shared_view or shared_edit",
    "edit": "its owner or shared_edit",
    "control": "its owner or shared_edit",
    "share": "its owner",
    "delete": "its owner",
}


def no_job(job_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"job {job_id} not found")


async def job_for(conn: Conn, job_id: str, caller: str, need: Need) -> JobRow:
    """The job, if `caller` may use it as `need` says; else 404 or 403."""
    job = await get_job(conn, job_id)
    if job is None:
        raise no_job(job_id)
    access = job.access_of(caller)
    if access not in _ALLOWED[need]:
        raise HTTPException(
            status_code=403,
            detail=f"job {job_id}: {caller} is not {_WHO[need]} (access: {access})",
        )
    return job


async def task_for(conn: Conn, task_id: str, caller: str, need: Need) -> TaskRow:
    """The task, if `caller` may use its job as `need` says; else 404 or 403."""
    task = await get_task(conn, task_id)
    if task is None:
        raise HTTPException(status_code=404, detail=f"task {task_id} not found")
    await job_for(conn, task.job_id, caller, need)
    return task
