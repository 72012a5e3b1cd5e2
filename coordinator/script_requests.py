"""Answers to scripts' `request` frames: a registry of methods, one function each.

To add a method, write `async def name(call: Call) -> dict` decorated with `@method("name")`
(or list it in a module's table, as coordinator/job_requests.py does); raise `RequestFailed`
with a message for the script when it cannot be answered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agent.protocol import Reply, Request
from coordinator.context import Context
from coordinator.job_requests import JOB_METHODS
from coordinator.request_call import Call, RequestFailed
from coordinator.store_tasks import ACTIVE_STATES, get_task

log = logging.getLogger(__name__)

Method = Callable[[Call], Awaitable[dict[str, Any]]]
METHODS: dict[str, Method] = dict(JOB_METHODS)


def method(name: str) -> Callable[[Method], Method]:
    def register(func: Method) -> Method:
        METHODS[name] = func
        return func

    return register


@method("get_current_task")
async def get_current_task(call: Call) -> dict[str, Any]:
    # parent_task_id is the task's own id (the id its sub-tasks carry), as the seed reads it.
    return {
        "parent_task_id": call.task.id,
        "spawned_by": call.task.parent_task_id,
        "job_proof": call.task.input,
        "timeout": call.task.timeout_s,
    }


async def answer(ctx: Context, host_id: str, request: Request) -> Reply:
    """The reply to one request; never raises for a bad request."""
    func = METHODS.get(request.method)
    if func is None:
        known = ", ".join(sorted(METHODS))
        return Reply(
            id=request.id, ok=False, error=f"unknown method '{request.method}' (known: {known})"
        )
    async with ctx.db.transaction() as conn:
        task = await get_task(conn, request.task_id)
    if task is None or task.host_id != host_id or task.state not in ACTIVE_STATES:
        return Reply(
            id=request.id, ok=False, error=f"task {request.task_id} is not running on this host"
        )
    try:
        result = await func(Call(ctx=ctx, host_id=host_id, task=task, params=request.params))
    except RequestFailed as exc:
        return Reply(id=request.id, ok=False, error=str(exc))
    return Reply(id=request.id, ok=True, result=result)
