"""Planned tasks: sub-tasks a running script asked for with `add_sub_tasks`.

A planned task is `planned` until it becomes a job task (a row in `tasks`, state pending): at
once when it was added with run_immediately, else at the next dispatch pass that has a device
for it. Its status for `get_sub_tasks` is then derived from that job task (docs/states.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from coordinator import schema as t
from coordinator.db import new_id, now
from coordinator.db_conn import Conn, Hot
from coordinator.dialect import next_seqs
from coordinator.store_jobs import JobRow, get_job
from coordinator.store_tasks import NewTask, TaskRow, create_tasks, get_task

SUB_TASK_STATUS = {
    "pending": "planned",
    "blocked": "planned",
    "assigned": "running",
    "running": "running",
    "success": "confirmed",
    "failed": "failed",
    "timeout": "failed",
    "declined": "declined",
    "cancelled": "deleted",
    "expired": "failed",
    "skipped": "deleted",
}
"""Our task state -> the status `get_sub_tasks` reports (the seed's vocabulary)."""


@dataclass(frozen=True)
class PlannedRow:
    id: str
    job_id: str
    parent_task_id: str
    input: dict[str, Any]
    pin_device_id: str | None
    timeout_s: float
    job_task_id: str | None


def _row(row: sa.Row[Any]) -> PlannedRow:
    return PlannedRow(
        id=row.id,
        job_id=row.job_id,
        parent_task_id=row.parent_task_id,
        input=json.loads(row.input),
        pin_device_id=row.pin_device_id,
        timeout_s=row.timeout_s,
        job_task_id=row.job_task_id,
    )


async def add_planned(
    conn: Conn,
    job: JobRow,
    parent_task_id: str,
    inputs: list[dict[str, Any]],
    pin_device_id: str | None,
) -> list[PlannedRow]:
    stamp = now()
    rows = [
        PlannedRow(new_id(), job.id, parent_task_id, item, pin_device_id, job.timeout_s, None)
        for item in inputs
    ]
    if rows:
        seqs = await next_seqs(conn, t.planned_tasks, len(rows))
        await conn.execute(
            sa.insert(t.planned_tasks),
            [
                {
                    "id": row.id,
                    "job_id": job.id,
                    "parent_task_id": parent_task_id,
                    "input": json.dumps(row.input),
                    "pin_device_id": pin_device_id,
                    "timeout_s": row.timeout_s,
                    "created_at": stamp,
                    "seq": seq,
                }
                for row, seq in zip(rows, seqs, strict=True)
            ],
        )
    return rows


_DEPTH = Hot(sa.select(t.tasks.c.depth).where(t.tasks.c.id == sa.bindparam("b_id")))


async def sub_task_depth(conn: Conn, parent_task_id: str) -> int:
    """The depth of a sub-task of the parent: the parent's + 1 (1 if the parent is gone with its
    job: it was at least a task made over the API)."""
    depth = await conn.scalar(_DEPTH, {"b_id": parent_task_id})
    return 1 if depth is None else int(depth) + 1


async def materialise(conn: Conn, planned: PlannedRow) -> TaskRow | None:
    """Make the planned task a pending job task (once); None if it already is one."""
    job = await get_job(conn, planned.job_id)
    if job is None:
        return None
    task_id = new_id()
    claimed = await conn.execute(
        sa.update(t.planned_tasks)
        .where(t.planned_tasks.c.id == planned.id, t.planned_tasks.c.job_task_id.is_(None))
        .values(job_task_id=task_id)
    )
    if claimed.rowcount == 0:
        return None
    [task] = await create_tasks(
        conn,
        job,
        [
            NewTask(
                input=planned.input,
                pin_device_id=planned.pin_device_id,
                timeout_s=planned.timeout_s,
                parent_task_id=planned.parent_task_id,
                task_id=task_id,
                depth=await sub_task_depth(conn, planned.parent_task_id),
            )
        ],
    )
    return task


async def oldest_planned_for(conn: Conn, device_id: str) -> PlannedRow | None:
    """The oldest planned task (not yet a job task) that may run on the device.

    Two lookups, each an ordered walk of an index that stops at its first row (schema.py): of
    the unpinned planned tasks (`planned_open_unpinned`) and of those pinned to the device
    (`planned_open`). The older of the two wins.
    """
    p = t.planned_tasks.c
    found = []
    for pin in (p.pin_device_id.is_(None), p.pin_device_id == device_id):
        row = (
            await conn.execute(
                sa.select(t.planned_tasks)
                .where(p.job_task_id.is_(None), pin, p.job_id.in_(t.AUTOMATION_JOB_IDS))
                .order_by(p.seq)
                .limit(1)
            )
        ).first()
        if row is not None:
            found.append(row)
    return _row(min(found, key=lambda row: row.seq)) if found else None


async def count_open_planned(conn: Conn, job_id: str) -> int:
    """How many planned tasks of the job are not yet job tasks."""
    p = t.planned_tasks.c
    count = await conn.scalar(
        sa.select(sa.func.count()).where(p.job_id == job_id, p.job_task_id.is_(None))
    )
    return int(count or 0)


_ANY_OPEN = Hot(
    sa.select(t.planned_tasks.c.id).where(t.planned_tasks.c.job_task_id.is_(None)).limit(1)
)


async def any_open_planned(conn: Conn) -> bool:
    return await conn.scalar(_ANY_OPEN) is not None


async def planned_of_parent(conn: Conn, parent_task_id: str, ids: list[str]) -> list[PlannedRow]:
    """Those of `ids` whose parent is `parent_task_id` (others are left out)."""
    if not ids:
        return []
    p = t.planned_tasks.c
    rows = await conn.execute(
        sa.select(t.planned_tasks).where(p.parent_task_id == parent_task_id, p.id.in_(ids))
    )
    return [_row(r) for r in rows]


def sub_task_view(planned: PlannedRow, task: TaskRow | None) -> dict[str, Any]:
    """What `get_sub_tasks` reports for one planned task (docs/script-api.md)."""
    if planned.job_task_id is None:
        status, proof, comment = "planned", None, None
    elif task is None:
        status, proof, comment = "deleted", None, None
    else:
        status = SUB_TASK_STATUS.get(task.state, task.state)
        proof = task.result if task.result is not None else task.progress
        comment = task.failure_reason
    return {
        "parent_task_id": planned.parent_task_id,
        "comment": comment,
        "job_proof": proof,
        "timeout": planned.timeout_s,
        "status": status,
        "job_task_id": planned.job_task_id,
        "input": planned.input,
    }


async def sub_tasks(conn: Conn, parent_task_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for planned in await planned_of_parent(conn, parent_task_id, ids):
        task = None if planned.job_task_id is None else await get_task(conn, planned.job_task_id)
        out[planned.id] = sub_task_view(planned, task)
    return out
