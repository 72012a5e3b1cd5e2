"""Handlers of `agent.info.*` and `agent.log.*`: answered from what the daemon already holds."""

from __future__ import annotations

import logging
from typing import Any

from agent.hostapi.context import TaskContext
from agent.hostapi.registry import handler

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


@handler("info.get_device_info")
async def get_device_info(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    return dict(ctx.device_info)


@handler("info.get_automation_info")
async def get_automation_info(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    a = ctx.assignment
    return {
        "task_id": a.task_id,
        "job_id": a.job_id,
        "automation_id": a.automation_id,
        "attempt": a.attempt,
        "timeout": a.timeout_s,
        "started_at": ctx.started_at.isoformat(),
    }


@handler("log")
async def log(ctx: TaskContext, params: dict[str, Any]) -> None:
    level = _LEVELS.get(str(params.get("level")), logging.INFO)
    message = str(params.get("message", ""))
    fields = params.get("fields") or {}
    suffix = "".join(f" {k}={v!r}" for k, v in fields.items()) if isinstance(fields, dict) else ""
    ctx.log.log(
        level,
        "task %s: %s%s",
        ctx.task_id,
        message,
        suffix,
        extra={"task_id": ctx.task_id, "script_fields": fields, "source": "script"},
    )
