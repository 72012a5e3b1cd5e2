"""Handlers of `agent.utils.job.*` and `agent.utils.*`: the job API, scoped to one task.

Results are never raised: each handler returns the result object the script sees
(`{"success": bool, "error": str | None, ...}`). Arguments that do not validate raise ValueError,
which reaches the script as ValueError (the SDK checks the same model before sending, so a
well-behaved script never gets that far).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from agent.hostapi.context import BackendError, FinalSubmission, NotStored, TaskContext
from agent.hostapi.registry import handler
from agent.protocol import Dump, FileBlob, Submit
from agent.scriptrpc import FileParam, SubmitTaskParams, SubmitToAnotherJobParams


def _blobs(files: list[FileParam]) -> list[FileBlob]:
    return [FileBlob(name=f.name, extension=f.extension, data_b64=f.base64Data) for f in files]


async def _deliver(ctx: TaskContext, frame: Submit | Dump, what: str) -> dict[str, Any]:
    try:
        async with asyncio.timeout(ctx.request_timeout_s):
            return await ctx.backend.submit(frame)
    except TimeoutError:
        return {
            "success": False,
            "error": f"{what} not accepted within {ctx.request_timeout_s:g} s",
        }
    except NotStored:
        raise
    except BackendError as exc:
        return {"success": False, "error": str(exc)}


@handler("job.submit_task")
async def submit_task(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    p = SubmitTaskParams.model_validate(params, context={"max_file_bytes": ctx.max_file_bytes})
    async with ctx.submit_lock:
        if ctx.final is not None:
            return {"success": False, "error": f"task {ctx.task_id} already has a final submission"}
        # The job API ignores files of a progress update; they never leave the host.
        files = _blobs(p.files) if p.finish else []
        frame = Submit(
            key=uuid.uuid4().hex,
            task_id=ctx.task_id,
            seq=ctx.next_seq,
            status=p.automation_status,
            data=p.data,
            finish=p.finish,
            files=files,
            attempt=ctx.assignment.attempt,
        )
        try:
            result = await _deliver(ctx, frame, "submission")
        except NotStored as exc:
            return {"success": False, "error": str(exc)}
        ctx.seq_used()
        if p.finish and result.get("success") is True and p.automation_status != "running":
            ctx.final = FinalSubmission(state=p.automation_status, data=p.data)
        return result


@handler("job.submit_task_to_another_job")
async def submit_task_to_another_job(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    """A new task on a data-dump job: durable like submit_task (a `dump` frame, its own key),
    and nothing of the current task changes. The coordinator checks the target's conditions."""
    p = SubmitToAnotherJobParams.model_validate(
        params, context={"max_file_bytes": ctx.max_file_bytes}
    )
    frame = Dump(
        key=uuid.uuid4().hex,
        task_id=ctx.task_id,
        job_id=p.job_id,
        status=p.status,
        data=p.data,
        files=_blobs(p.files),
    )
    try:
        result = await _deliver(ctx, frame, "data dump")
    except NotStored as exc:
        result = {"success": False, "error": str(exc)}
    if result.get("success") is False and result.get("error"):
        result = {**result, "error": f"submit_task_to_another_job: {result['error']}"}
    return result


@handler("job.get_current_task")
async def get_current_task(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    a = ctx.assignment
    return {
        "success": True,
        # The seed's reading: the id this task's sub-tasks carry as their parent, so never null.
        "parent_task_id": a.task_id,
        "spawned_by": a.parent_task_id,
        "job_proof": a.input,
        "timeout": a.timeout_s,
        "attempt": a.attempt,
        "output_schema": a.output_schema,
    }
