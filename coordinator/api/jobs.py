"""/api/jobs: create jobs, read and change them, share them, new script versions, add tasks.

The caller's owner identity is its API key's name: a job belongs to the key that created it.
Who may read, change or share it: coordinator/api/access.py. Listing jobs: job_list.py; pausing,
cancelling and deleting them: job_controls.py.
"""

from __future__ import annotations

from fastapi import HTTPException

from coordinator.api import task_specs
from coordinator.api.access import job_for, no_job
from coordinator.api.auth import CallerDep, ContextDep
from coordinator.api.models import (
    Job,
    JobCreate,
    JobCreated,
    JobUpdate,
    ScriptUpdate,
    ShareUpdate,
    TasksCreate,
    TasksCreated,
)
from coordinator.api.strict_json import api_router
from coordinator.api.views import job_view, new_task_view
from coordinator.fan_out import tasks_held, too_many
from coordinator.limits import input_too_large, script_too_large
from coordinator.retry_policy import RetryPolicy
from coordinator.store_dependencies import add_dependencies
from coordinator.store_devices import device_kinds
from coordinator.store_jobs import (
    create_job,
    lock_job,
    remove_share,
    set_job_script,
    set_share,
    update_job,
)
from coordinator.store_tasks import create_tasks

router = api_router(prefix="/jobs", tags=["jobs"])
_CLEARABLE = ("automation_id", "output_schema", "webhook_url", "webhook_events", "browser")
"""Fields a PATCH may set to null."""


def _refuse_if_too_large(problem: str | None) -> None:
    if problem is not None:
        raise HTTPException(status_code=413, detail=problem)


@router.post("", status_code=201)
async def post_job(body: JobCreate, ctx: ContextDep, caller: CallerDep) -> JobCreated:
    """Create a job; the answer holds its webhook secret (docs/webhooks.md)."""
    _refuse_if_too_large(script_too_large(body.script, ctx.settings.max_script_bytes))
    async with ctx.db.transaction() as conn:
        job = await create_job(
            conn,
            name=body.name,
            source=body.script,
            parameters=body.parameters,
            timeout_s=body.timeout_s,
            automation_id=body.automation_id,
            owner=caller,
            job_type=body.type,
            allow_sub_tasks=body.allow_sub_tasks,
            retry=RetryPolicy(
                max_attempts=body.max_attempts,
                retry_delay_s=body.retry_delay_s,
                backoff=body.backoff,
                retry_on=tuple(body.retry_on),
            ),
            max_depth=body.max_depth,
            max_tasks=body.max_tasks,
            output_schema=body.output_schema,
            webhook_url=body.webhook_url,
            webhook_events=body.webhook_events,
            browser=body.browser,
            keep_screenshots=body.keep_screenshots,
            screenshot_on_failure=body.screenshot_on_failure,
        )
    assert job.webhook_secret is not None, "every job is made with one"
    return JobCreated(**job_view(job).model_dump(), webhook_secret=job.webhook_secret)


@router.patch("/{job_id}")
async def patch_job(job_id: str, body: JobUpdate, ctx: ContextDep, caller: CallerDep) -> Job:
    """Change the fields given; needs the job's owner or shared_edit."""
    changes = body.model_dump(exclude_unset=True)
    for field, value in changes.items():
        if value is None and field not in _CLEARABLE:
            raise HTTPException(status_code=422, detail=f"{field} cannot be null")
    if "backoff" in changes:
        changes["retry_backoff"] = changes.pop("backoff")
    if "browser" in changes:
        changes["browser"] = body.browser  # the model: it stores the fields that were given
    async with ctx.db.transaction() as conn:
        await job_for(conn, job_id, caller, "edit")
        job = await update_job(conn, job_id, changes)
    if job is None:
        raise no_job(job_id)
    ctx.dispatcher.announce()
    return job_view(job)


@router.put("/{job_id}/shares/{owner}")
async def put_share(
    job_id: str, owner: str, body: ShareUpdate, ctx: ContextDep, caller: CallerDep
) -> Job:
    """Give `owner` shared_view or shared_edit on the job; needs the job's owner."""
    async with ctx.db.transaction() as conn:
        job = await job_for(conn, job_id, caller, "share")
        if owner == job.owner:
            raise HTTPException(status_code=422, detail=f"{owner} owns job {job_id} already")
        await set_share(conn, job_id, owner, body.access)
        job = await job_for(conn, job_id, caller, "share")
    return job_view(job)


@router.delete("/{job_id}/shares/{owner}")
async def delete_share(job_id: str, owner: str, ctx: ContextDep, caller: CallerDep) -> Job:
    """Take `owner`'s share away; needs the job's owner."""
    async with ctx.db.transaction() as conn:
        await job_for(conn, job_id, caller, "share")
        if not await remove_share(conn, job_id, owner):
            raise HTTPException(status_code=404, detail=f"{owner} has no share on job {job_id}")
        job = await job_for(conn, job_id, caller, "share")
    return job_view(job)


@router.get("/{job_id}")
async def read_job(job_id: str, ctx: ContextDep, caller: CallerDep) -> Job:
    async with ctx.db.transaction() as conn:
        job = await job_for(conn, job_id, caller, "view")
    return job_view(job)


@router.put("/{job_id}/script")
async def put_script(job_id: str, body: ScriptUpdate, ctx: ContextDep, caller: CallerDep) -> Job:
    """Make a new script version current; tasks created from now on run it."""
    _refuse_if_too_large(script_too_large(body.script, ctx.settings.max_script_bytes))
    async with ctx.db.transaction() as conn:
        await job_for(conn, job_id, caller, "edit")
        job = await set_job_script(conn, job_id, body.script)
    if job is None:
        raise no_job(job_id)
    return job_view(job)


@router.post("/{job_id}/tasks", status_code=201)
async def post_tasks(
    job_id: str, body: TasksCreate, ctx: ContextDep, caller: CallerDep
) -> TasksCreated:
    """Create tasks (all or none: pending, or blocked on their dependencies) and dispatch them
    to free devices; needs edit. 409 if the job would then hold more than its max_tasks."""
    for i, task in enumerate(body.tasks):
        limit = ctx.settings.max_input_bytes
        _refuse_if_too_large(input_too_large(f"tasks[{i}].input", task.input, limit))
    pins = {t.remote_device_id for t in body.tasks if t.remote_device_id is not None}
    async with ctx.db.transaction() as conn:
        # Held until commit: another add to the job counts after this one (fan_out.py).
        await lock_job(conn, job_id)
        job = await job_for(conn, job_id, caller, "edit")
        problem = too_many(job, await tasks_held(conn, job_id), len(body.tasks))
        if problem is not None:
            raise HTTPException(status_code=409, detail=problem)
        kinds = await device_kinds(conn, pins)
        unknown = sorted(pins - kinds.keys())
        if unknown:
            raise HTTPException(
                status_code=422,
                detail=f"unknown remote_device_id: {', '.join(unknown)} (no host has reported it)",
            )
        task_specs.check_browser(job, body.tasks, kinds)
        specs, dependencies = await task_specs.build(conn, job, body.tasks, caller)
        rows = await create_tasks(conn, job, specs)
        await add_dependencies(conn, dependencies)
    ctx.dispatcher.announce()
    return TasksCreated(tasks=[new_task_view(row) for row in rows])
