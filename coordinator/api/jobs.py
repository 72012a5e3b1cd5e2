"""/api/jobs: create jobs, read them, give them a new script version, add tasks."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from coordinator.api.auth import ContextDep
from coordinator.api.models import Job, JobCreate, ScriptUpdate, TasksCreate, TasksCreated
from coordinator.api.views import job_view, task_view
from coordinator.store_devices import known_device_ids
from coordinator.store_jobs import create_job, get_job, set_job_script
from coordinator.store_tasks import NewTask, create_tasks, get_task

router = APIRouter(prefix="/jobs", tags=["jobs"])


def _no_job(job_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"job {job_id} not found")


@router.post("", status_code=201)
async def post_job(body: JobCreate, ctx: ContextDep) -> Job:
    async with ctx.db.transaction() as conn:
        job = await create_job(
            conn,
            name=body.name,
            source=body.script,
            parameters=body.parameters,
            timeout_s=body.timeout_s,
            automation_id=body.automation_id,
        )
    return job_view(job)


@router.get("/{job_id}")
async def read_job(job_id: str, ctx: ContextDep) -> Job:
    async with ctx.db.transaction() as conn:
        job = await get_job(conn, job_id)
    if job is None:
        raise _no_job(job_id)
    return job_view(job)


@router.put("/{job_id}/script")
async def put_script(job_id: str, body: ScriptUpdate, ctx: ContextDep) -> Job:
    """Make a new script version current; tasks created from now on run it."""
    async with ctx.db.transaction() as conn:
        job = await set_job_script(conn, job_id, body.script)
    if job is None:
        raise _no_job(job_id)
    return job_view(job)


@router.post("/{job_id}/tasks", status_code=201)
async def post_tasks(
    job_id: str, body: TasksCreate, request: Request, ctx: ContextDep
) -> TasksCreated:
    """Create pending tasks (all or none) and dispatch them to free devices."""
    pins = {t.remote_device_id for t in body.tasks if t.remote_device_id is not None}
    async with ctx.db.transaction() as conn:
        job = await get_job(conn, job_id)
        if job is None:
            raise _no_job(job_id)
        unknown = sorted(pins - await known_device_ids(conn, pins))
        if unknown:
            raise HTTPException(
                status_code=422,
                detail=f"unknown remote_device_id: {', '.join(unknown)} (no host has reported it)",
            )
        rows = await create_tasks(
            conn,
            job,
            [NewTask(t.input, t.remote_device_id, t.timeout_s) for t in body.tasks],
        )
    await ctx.dispatcher.dispatch()
    async with ctx.db.transaction() as conn:
        # Read again: dispatch may have assigned some already.
        fresh = [await get_task(conn, row.id) for row in rows]
        views = [await task_view(conn, request, t) for t in fresh if t is not None]
    return TasksCreated(tasks=views)
