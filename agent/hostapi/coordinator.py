"""Handlers of the job API calls only the coordinator can answer (sub-tasks, other jobs,
automation variables, checkpoints): each is forwarded as one `request` for this task.

The params are validated here with the same models the SDK checks before sending; the task id
is the context's. The coordinator's answer becomes `{"success": True, **result}`; a refusal, a
lost link or no answer within `request_timeout_s` becomes `{"success": False, "error": ...}`.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from agent.hostapi.context import BackendError, TaskContext
from agent.hostapi.registry import HANDLERS
from agent.scriptrpc import COORDINATOR_CALLS


async def forward(method: str, ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    checked = COORDINATOR_CALLS[method].model_validate(
        params, context={"max_file_bytes": ctx.max_file_bytes}
    )
    name = method.partition(".")[2]
    try:
        async with asyncio.timeout(ctx.request_timeout_s):
            result = await ctx.backend.request(ctx.task_id, name, checked.model_dump())
    except TimeoutError:
        return {
            "success": False,
            "error": f"{name}: no answer from the coordinator within {ctx.request_timeout_s:g} s",
        }
    except BackendError as exc:
        return {"success": False, "error": f"{name}: {exc}"}
    return {**result, "success": True, "error": None}


for _method in COORDINATOR_CALLS:
    HANDLERS[_method] = partial(forward, _method)
