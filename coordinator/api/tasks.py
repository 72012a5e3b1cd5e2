"""/api/tasks: read, list and cancel tasks (of the jobs the caller may use: access.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import HTTPException, Query, Request

from coordinator.api.access import job_for, task_for
from coordinator.api.auth import CallerDep, ContextDep
from coordinator.api.cursor import encode_cursor
from coordinator.api.instants import first_stamp_shown_from
from coordinator.api.models import CancelledTask, RunList, Task, TaskList, TaskQuery
from coordinator.api.query import Flag, flag
from coordinator.api.strict_json import api_router
from coordinator.api.views import run_view, task_view
from coordinator.cancel import CancelRefused, cancel_task
from coordinator.store_runs import runs_of
from coordinator.store_task_list import TaskFilter, count_tasks, page_of_tasks

router = api_router(prefix="/tasks", tags=["tasks"])


@router.get("/{task_id}")
async def read_task(task_id: str, request: Request, ctx: ContextDep, caller: CallerDep) -> Task:
    async with ctx.db.transaction() as conn:
        task = await task_for(conn, task_id, caller, "view")
        return await task_view(conn, request, task)


@router.get("")
async def read_tasks(
    request: Request, ctx: ContextDep, caller: CallerDep, query: Annotated[TaskQuery, Query()]
) -> TaskList:
    """Tasks of the jobs the caller may view that pass every filter given, oldest first, one
    page at a time: pass `next_cursor` back as `cursor` for the next (docs/jobs.md, Task lists)."""
    where = TaskFilter(
        job_id=query.job_id,
        states=tuple(query.state),
        device=query.device,
        host=query.host,
        parent=query.parent,
        created_after=_bound(query.created_after),
        created_before=_bound(query.created_before),
        finished_after=_bound(query.finished_after),
        finished_before=_bound(query.finished_before),
    )
    async with ctx.db.transaction() as conn:
        if query.job_id is not None:
            await job_for(conn, query.job_id, caller, "view")
        page = await page_of_tasks(
            conn, visible_to=caller, where=where, after_seq=query.cursor, limit=query.limit
        )
        total = None
        if query.with_total:
            total = await count_tasks(conn, visible_to=caller, where=where)
        items = [await task_view(conn, request, row) for row in page.tasks]
    return TaskList(
        items=items,
        limit=query.limit,
        next_cursor=None if page.last_seq is None else encode_cursor(page.last_seq),
        total=total,
    )


def _bound(moment: datetime | None) -> float | None:
    return None if moment is None else first_stamp_shown_from(moment)


@router.get("/{task_id}/runs")
async def read_runs(task_id: str, ctx: ContextDep, caller: CallerDep) -> RunList:
    """Each attempt of the task, oldest first (docs/jobs.md, Retries)."""
    async with ctx.db.transaction() as conn:
        task = await task_for(conn, task_id, caller, "view")
        return RunList(runs=[run_view(run) for run in await runs_of(conn, task)])


@router.post("/{task_id}/cancel")
async def post_cancel(
    task_id: str,
    request: Request,
    ctx: ContextDep,
    caller: CallerDep,
    sub_tasks: Annotated[
        Flag,
        Query(
            description="Also cancel the sub-tasks it added, and theirs, planned ones included "
            "(in the jobs the caller may edit)."
        ),
    ] = "true",
) -> CancelledTask:
    """Cancel a task (needs edit on its job): it ends `cancelled` at once, and a host that holds
    it is told to stop it (coordinator/cancel.py). 409 if it has already ended."""
    async with ctx.db.transaction() as conn:
        await task_for(conn, task_id, caller, "edit")
    try:
        cancelled = await cancel_task(ctx, task_id, caller, sub_tasks=flag(sub_tasks))
    except CancelRefused as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    if cancelled is None:
        raise HTTPException(status_code=404, detail=f"task {task_id} not found")
    task, spread = cancelled
    async with ctx.db.transaction() as conn:
        view = await task_view(conn, request, task)
    return CancelledTask(**view.model_dump(), sub_tasks_cancelled=spread)
