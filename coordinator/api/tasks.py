"""/api/tasks: read, list and cancel tasks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from agent.protocol import TaskState
from coordinator.api.auth import ContextDep
from coordinator.api.models import Task, TaskList
from coordinator.api.views import task_view
from coordinator.cancel import CancelRefused, cancel_task
from coordinator.store_tasks import get_task, list_tasks

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.get("/{task_id}")
async def read_task(task_id: str, request: Request, ctx: ContextDep) -> Task:
    async with ctx.db.transaction() as conn:
        task = await get_task(conn, task_id)
        if task is None:
            raise HTTPException(status_code=404, detail=f"task {task_id} not found")
        return await task_view(conn, request, task)


@router.get("")
async def read_tasks(
    request: Request,
    ctx: ContextDep,
    job_id: str | None = None,
    state: TaskState | None = None,
    device: Annotated[
        str | None, Query(description="The device a task runs on or is pinned to.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> TaskList:
    """Tasks oldest first, filtered, one page at a time."""
    async with ctx.db.transaction() as conn:
        rows, total = await list_tasks(
            conn, job_id=job_id, state=state, device=device, limit=limit, offset=offset
        )
        items = [await task_view(conn, request, row) for row in rows]
    return TaskList(items=items, total=total, limit=limit, offset=offset)


@router.post("/{task_id}/cancel")
async def post_cancel(task_id: str, request: Request, ctx: ContextDep) -> Task:
    """Cancel a task; see `coordinator.cancel.cancel_task` for what happens in each state."""
    try:
        task = await cancel_task(ctx, task_id)
    except CancelRefused as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    if task is None:
        raise HTTPException(status_code=404, detail=f"task {task_id} not found")
    async with ctx.db.transaction() as conn:
        return await task_view(conn, request, task)
