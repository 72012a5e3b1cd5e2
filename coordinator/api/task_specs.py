"""Turning a `POST /api/jobs/{id}/tasks` body into tasks to store: deadlines, priorities, retry
overrides, script versions, browser settings and dependencies checked, each task's starting state
decided.

`depends_on` names existing tasks (of jobs the caller may read) or, by `ref`, tasks of the same
request. Only those can form a cycle, so a cycle is looked for among them alone and refused.
A task whose dependency already ended other than `success` is created `skipped`; one with a
dependency still to succeed `blocked`; any other `pending`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from fastapi import HTTPException

from coordinator import schema as t
from coordinator.api.models import TaskCreate
from coordinator.db import new_id, now
from coordinator.db_conn import Conn
from coordinator.store_jobs import JobRow, get_job
from coordinator.store_tasks import NewTask
from coordinator.store_versions import version_scripts


def _refuse(field: str, problem: str) -> HTTPException:
    return HTTPException(status_code=422, detail=f"{field}: {problem}")


def _deadline(i: int, deadline: datetime | None) -> float | None:
    if deadline is None:
        return None
    if deadline.tzinfo is None:
        raise _refuse(f"tasks[{i}].deadline", "needs a time zone (e.g. 2030-01-01T00:00:00Z)")
    stamp = deadline.timestamp()
    if stamp <= now():
        raise _refuse(f"tasks[{i}].deadline", f"{deadline.isoformat()} is in the past")
    return stamp


def check_browser(job: JobRow, tasks: list[TaskCreate], kinds: dict[str, str]) -> None:
    """Refuse browser settings (the task's own or its job's) on a task pinned to a device that
    is not a browser. An unpinned task's device is known only when it is given one: a daemon
    fails it then (reason unsupported_settings) if that device is not a browser."""
    for i, task in enumerate(tasks):
        kind = kinds.get(task.remote_device_id or "", "browser")
        if kind == "browser":
            continue
        if task.browser is not None:
            field, whose = f"tasks[{i}].browser", "browser settings"
        elif job.browser is not None:
            field, whose = f"tasks[{i}].remote_device_id", f"job {job.id}'s browser settings"
        else:
            continue
        raise _refuse(
            field,
            f"device {task.remote_device_id} is not a browser ({kind}): it cannot honour {whose}",
        )


def _retry(task: TaskCreate) -> dict[str, Any]:
    overrides = {
        "max_attempts": task.max_attempts,
        "retry_delay_s": task.retry_delay_s,
        "retry_backoff": task.backoff,
        "retry_on": task.retry_on,
    }
    return {k: v for k, v in overrides.items() if v is not None}


async def _versions(
    conn: Conn, job: JobRow, tasks: list[TaskCreate]
) -> list[tuple[int, str] | None]:
    """Each task's (version, script SHA-256) if it names one; a version the job does not have
    is a 422 naming the task's field."""
    wanted = {task.script_version for task in tasks if task.script_version is not None}
    scripts = await version_scripts(conn, job.id, wanted)
    found: list[tuple[int, str] | None] = []
    for i, task in enumerate(tasks):
        number = task.script_version
        if number is not None and number not in scripts:
            raise _refuse(
                f"tasks[{i}].script_version",
                f"job {job.id} has no version {number} (its versions are 1 to {job.version})",
            )
        found.append(None if number is None else (number, scripts[number]))
    return found


def _refs(tasks: list[TaskCreate]) -> dict[str, int]:
    refs: dict[str, int] = {}
    for i, task in enumerate(tasks):
        if task.ref is None:
            continue
        if task.ref in refs:
            raise _refuse(f"tasks[{i}].ref", f"{task.ref!r} names tasks[{refs[task.ref]}] too")
        refs[task.ref] = i
    return refs


def _order(tasks: list[TaskCreate], inner: list[list[int]]) -> list[int]:
    """The request's tasks, each after the ones of the request it depends on; a cycle is a 422
    naming it."""
    done: set[int] = set()
    order: list[int] = []

    def visit(i: int, path: list[int]) -> None:
        if i in done:
            return
        if i in path:
            cycle = [*path[path.index(i) :], i]
            names = " → ".join(tasks[j].ref or f"tasks[{j}]" for j in cycle)
            raise _refuse(f"tasks[{i}].depends_on", f"a cycle: {names}")
        for j in inner[i]:
            visit(j, [*path, i])
        done.add(i)
        order.append(i)

    for i in range(len(tasks)):
        visit(i, [])
    return order


async def _existing(conn: Conn, ids: set[str], caller: str) -> dict[str, tuple[str, str | None]]:
    """id -> (state, None) for each existing task, or (state, why the caller may not use it).
    The rows are locked (on PostgreSQL) so that a dependency cannot end unseen meanwhile."""
    if not ids:
        return {}
    c = t.tasks.c
    rows = await conn.execute(
        sa.select(c.id, c.state, c.job_id).where(c.id.in_(sorted(ids))).with_for_update()
    )
    found: dict[str, tuple[str, str | None]] = {}
    readable: dict[str, bool] = {}
    for row in rows:
        if row.job_id not in readable:
            job = await get_job(conn, row.job_id)
            readable[row.job_id] = job is not None and job.access_of(caller) is not None
        why = None if readable[row.job_id] else f"task {row.id} is of a job you cannot read"
        found[str(row.id)] = (str(row.state), why)
    return found


async def build(
    conn: Conn, job: JobRow, tasks: list[TaskCreate], caller: str
) -> tuple[list[NewTask], list[tuple[str, str]]]:
    """The tasks to create on `job`, in request order, and their (task, depends on) pairs."""
    versions = await _versions(conn, job, tasks)
    refs = _refs(tasks)
    ids = [new_id() for _ in tasks]
    inner: list[list[int]] = [[] for _ in tasks]
    outer: list[list[str]] = [[] for _ in tasks]
    for i, task in enumerate(tasks):
        for name in dict.fromkeys(task.depends_on):
            if name in refs:
                inner[i].append(refs[name])
            else:
                outer[i].append(name)
    existing = await _existing(conn, {x for names in outer for x in names}, caller)
    for i, names in enumerate(outer):
        for name in names:
            if name not in existing:
                raise _refuse(f"tasks[{i}].depends_on", f"unknown task {name}")
            why = existing[name][1]
            if why is not None:
                raise _refuse(f"tasks[{i}].depends_on", why)
    states: dict[int, tuple[str, int, str | None]] = {}
    for i in _order(tasks, inner):
        failed = [(x, existing[x][0]) for x in outer[i] if existing[x][0] not in _OK_OR_OPEN]
        failed += [(ids[j], "skipped") for j in inner[i] if states[j][0] == "skipped"]
        waiting = sum(existing[x][0] != "success" for x in outer[i]) + len(inner[i])
        if failed:
            dep, state = failed[0]
            states[i] = ("skipped", 0, f"dependency {dep} ended {state}")
        else:
            states[i] = ("blocked" if waiting else "pending", waiting, None)
    specs = [
        NewTask(
            input=task.input,
            pin_device_id=task.remote_device_id,
            timeout_s=task.timeout_s,
            task_id=ids[i],
            priority=task.priority,
            deadline_at=_deadline(i, task.deadline),
            retry=_retry(task),
            state=states[i][0],
            blocked_by=states[i][1],
            error=states[i][2],
            version=versions[i],
            webhook_url=task.webhook_url,
            webhook_events=task.webhook_events,
            browser=task.browser,
        )
        for i, task in enumerate(tasks)
    ]
    pairs = [(ids[i], x) for i in range(len(tasks)) for x in outer[i]]
    pairs += [(ids[i], ids[j]) for i in range(len(tasks)) for j in inner[i]]
    return specs, pairs


_OK_OR_OPEN = frozenset({"success", "pending", "blocked", "assigned", "running"})
"""Dependency states that do not skip a new task: succeeded, or not ended yet."""
