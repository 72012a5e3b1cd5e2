"""/api/jobs/{id}: pause, resume, cancel and delete a job (docs/jobs.md).

Pause, resume and cancel need the job's owner or shared_edit; delete needs its owner.
"""

from __future__ import annotations

from fastapi import HTTPException

from coordinator.api.access import job_for, no_job
from coordinator.api.auth import CallerDep, ContextDep
from coordinator.api.models import Job, JobCancel, JobCancelled, JobDeleted
from coordinator.api.strict_json import api_router
from coordinator.api.views import job_view
from coordinator.cancel import cancel_job
from coordinator.store_files import remove_unreferenced
from coordinator.store_job_delete import JobBusy, delete_job
from coordinator.store_jobs import set_paused

router = api_router(prefix="/jobs", tags=["jobs"])


@router.post("/{job_id}/pause")
async def pause_job(job_id: str, ctx: ContextDep, caller: CallerDep) -> Job:
    """No task of the job is given to a device (nor a planned one made a task) until it is
    resumed; tasks already assigned or running go on."""
    async with ctx.db.transaction() as conn:
        await job_for(conn, job_id, caller, "control")
        job = await set_paused(conn, job_id, True)
    if job is None:
        raise no_job(job_id)
    return job_view(job)


@router.post("/{job_id}/resume")
async def resume_job(job_id: str, ctx: ContextDep, caller: CallerDep) -> Job:
    """Give the job's tasks to devices again, at once (every replica is told)."""
    async with ctx.db.transaction() as conn:
        await job_for(conn, job_id, caller, "control")
        job = await set_paused(conn, job_id, False)
    if job is None:
        raise no_job(job_id)
    ctx.dispatcher.announce()
    return job_view(job)


@router.post("/{job_id}/cancel")
async def post_cancel_job(
    job_id: str, ctx: ContextDep, caller: CallerDep, body: JobCancel | None = None
) -> JobCancelled:
    """Cancel every task of the job that has not ended, and its planned sub-tasks; the hosts
    running some are told to stop them. Tasks may be added afterwards."""
    async with ctx.db.transaction() as conn:
        await job_for(conn, job_id, caller, "control")
    cancelled = await cancel_job(ctx, job_id, None if body is None else body.reason)
    if cancelled is None:
        raise no_job(job_id)
    return JobCancelled(
        job_id=job_id,
        tasks=cancelled.tasks,
        running=len(cancelled.held),
        planned_tasks=cancelled.planned,
    )


@router.delete("/{job_id}")
async def remove_job(job_id: str, ctx: ContextDep, caller: CallerDep) -> JobDeleted:
    """Delete the job with its tasks, their files and everything else stored of it; 409 while
    a task of it is assigned or running."""
    async with ctx.db.transaction() as conn:
        await job_for(conn, job_id, caller, "delete")
        try:
            deleted = await delete_job(conn, job_id)
        except JobBusy as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
    if deleted is None:
        raise no_job(job_id)
    async with ctx.db.transaction() as conn:
        await remove_unreferenced(conn, ctx.settings.files_dir, deleted.file_paths)
    return JobDeleted(
        job_id=job_id, tasks=deleted.tasks, planned_tasks=deleted.planned, files=deleted.files
    )
