"""The job API methods scripts reach through `request` frames (docs/script-api.md has the rules).

Each is `async def name(call: Call) -> dict`, listed in `JOB_METHODS`. Params are validated with
the same models the daemon and the SDK use; every refusal is a `RequestFailed` whose message
says what was wrong.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agent.scriptrpc import (
    AddSubTasksParams,
    AutomationVariablesParams,
    CheckpointParams,
    GetSubTasksParams,
    describe_validation_error,
)
from coordinator.fan_out import tasks_held, too_deep, too_many
from coordinator.limits import input_too_large
from coordinator.request_call import Call, RequestFailed
from coordinator.store_devices import known_device_ids
from coordinator.store_jobs import JobRow, get_job, lock_job
from coordinator.store_planned import add_planned, materialise, sub_tasks
from coordinator.store_tasks import (
    ACTIVE_STATES,
    TaskRow,
    get_task,
    get_tasks,
    set_automation_variables,
    set_checkpoint,
    take_waiting_task,
)

M = TypeVar("M", bound=BaseModel)


def _params(call: Call, model: type[M], name: str) -> M:
    try:
        return model.model_validate(call.params)
    except ValidationError as exc:
        raise RequestFailed(describe_validation_error(name, exc)) from None


async def _own_job(call: Call) -> JobRow:
    async with call.ctx.db.transaction() as conn:
        job = await get_job(conn, call.task.job_id)
    if job is None:
        raise RequestFailed(f"the job of task {call.task.id} no longer exists")
    return job


async def use_another_task(call: Call) -> dict[str, Any]:
    async with call.ctx.db.transaction() as conn:
        other = await take_waiting_task(conn, call.task.job_id, call.task.id)
    if other is None:
        return {"job_task_id": None, "job_proof": None}
    proof = other.progress if other.progress is not None else other.input
    return {"job_task_id": other.id, "job_proof": json.dumps(proof)}


async def _target_job(call: Call, job_id: str | None) -> JobRow:
    """The job sub-tasks go to: this task's, or another one the owner may add to."""
    own = await _own_job(call)
    if job_id is None or job_id == own.id:
        return own
    async with call.ctx.db.transaction() as conn:
        target = await get_job(conn, job_id)
    if target is None:
        raise RequestFailed(f"job {job_id} not found")
    if target.access_of(own.owner) not in ("owner", "shared_edit"):
        raise RequestFailed(
            f"job {job_id}: the owner of this task's job ({own.owner}) neither owns it nor has "
            "shared_edit on it"
        )
    if not target.allow_sub_tasks:
        raise RequestFailed(f"job {job_id} does not allow sub-tasks (allow_sub_tasks is false)")
    return target


async def add_sub_tasks(call: Call) -> dict[str, Any]:
    p = _params(call, AddSubTasksParams, "add_sub_tasks")
    for i, item in enumerate(p.job_variables):
        problem = input_too_large(f"job_variables[{i}]", item, call.ctx.settings.max_input_bytes)
        if problem is not None:
            raise RequestFailed(f"add_sub_tasks: {problem}")
    job_id = (await _target_job(call, p.job_id)).id
    async with call.ctx.db.transaction() as conn:
        # Held until commit: a cancel of the job, or another add to it, waits (fan_out.py).
        target = await get_job(conn, job_id) if await lock_job(conn, job_id) else None
        if target is None:
            raise RequestFailed(f"job {job_id} not found")
        # Read again under the lock: a cancel may have ended it since the request came in.
        parent = await get_task(conn, call.task.id)
        if parent is None or parent.state not in ACTIVE_STATES:
            state = "gone" if parent is None else parent.state
            raise RequestFailed(f"task {call.task.id} is {state}, not running")
        problem = too_deep(target, parent.depth + 1) or too_many(
            target, await tasks_held(conn, target.id), len(p.job_variables)
        )
        if problem is not None:
            # The daemon puts the method's name before it, as before every refusal.
            raise RequestFailed(problem)
        pin = p.remote_device_id
        if pin is not None and not await known_device_ids(conn, {pin}):
            raise RequestFailed(f"unknown remote_device_id {pin} (no host has reported it)")
        planned = await add_planned(conn, target, call.task.id, p.job_variables, pin)
        # A paused job's planned tasks wait as they are, like those of dispatch passes.
        run_now = p.run_immediately and not target.paused
        job_task_ids: dict[str, str] = {}
        for row in planned if run_now else []:
            task = await materialise(conn, row)
            assert task is not None, "a planned task made in this transaction"
            job_task_ids[row.id] = task.id
    call.ctx.dispatcher.announce()
    result: dict[str, Any] = {
        "inserted_ids": [
            {"planned_task_id": row.id, "input": json.dumps(row.input)} for row in planned
        ]
    }
    if p.run_immediately:
        if run_now:
            await call.ctx.dispatcher.settle()
        async with call.ctx.db.transaction() as conn:
            tasks = await get_tasks(conn, set(job_task_ids.values()))
        result["assignment_results"] = [
            {"planned_task_id": row.id, "assigned": _given_out(tasks, job_task_ids.get(row.id))}
            for row in planned
        ]
    return result


def _given_out(tasks: dict[str, TaskRow], task_id: str | None) -> bool:
    task = None if task_id is None else tasks.get(task_id)
    return task is not None and task.state != "pending"


async def get_sub_tasks(call: Call) -> dict[str, Any]:
    p = _params(call, GetSubTasksParams, "get_sub_tasks")
    async with call.ctx.db.transaction() as conn:
        found = await sub_tasks(conn, call.task.id, list(dict.fromkeys(p.planned_task_ids)))
    return {"tasks": found}


async def set_variables(call: Call) -> dict[str, Any]:
    p = _params(call, AutomationVariablesParams, "set_automation_variables")
    async with call.ctx.db.transaction() as conn:
        await set_automation_variables(conn, call.task.id, p.variables)
    return {"automation_variables": p.variables}


async def get_variables(call: Call) -> dict[str, Any]:
    async with call.ctx.db.transaction() as conn:
        task = await get_task(conn, call.task.id)
    variables = task.automation_variables if task is not None else None
    return {"automation_variables": variables if variables is not None else {}}


async def save_checkpoint(call: Call) -> dict[str, Any]:
    p = _params(call, CheckpointParams, "save_checkpoint")
    async with call.ctx.db.transaction() as conn:
        await set_checkpoint(conn, call.task.id, p.checkpoint)
    return {}


async def get_latest_checkpoint(call: Call) -> dict[str, Any]:
    async with call.ctx.db.transaction() as conn:
        task = await get_task(conn, call.task.id)
    return {"checkpoint": task.checkpoint if task is not None else None}


JOB_METHODS: dict[str, Callable[[Call], Awaitable[dict[str, Any]]]] = {
    "use_another_task": use_another_task,
    "add_sub_tasks": add_sub_tasks,
    "get_sub_tasks": get_sub_tasks,
    "set_automation_variables": set_variables,
    "get_automation_variables": get_variables,
    "save_checkpoint": save_checkpoint,
    "get_latest_checkpoint": get_latest_checkpoint,
}
