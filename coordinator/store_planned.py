"""Planned tasks: sub-tasks a running script asked for with `add_sub_tasks`.

A planned task is `planned` until it becomes a job task (a row in `tasks`, state pending): at
once when it was added with run_immediately, else at the next dispatch pass that has a device
for it. Its status for `get_sub_tasks` is then derived from that job task (docs/states.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from coordinator.db import new_id, now
from coordinator.sqlite_conn import Connection, Row
from coordinator.store_jobs import JobRow, get_job
from coordinator.store_tasks import NewTask, TaskRow, create_tasks, get_task

SUB_TASK_STATUS = {
    "pending": "planned",
    "assigned": "running",
    "running": "running",
    "success": "confirmed",
    "failed": "failed",
    "timeout": "failed",
    "declined": "declined",
    "cancelled": "deleted",
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


def _row(row: Row) -> PlannedRow:
    return PlannedRow(
        id=row["id"],
        job_id=row["job_id"],
        parent_task_id=row["parent_task_id"],
        input=json.loads(row["input"]),
        pin_device_id=row["pin_device_id"],
        timeout_s=row["timeout_s"],
        job_task_id=row["job_task_id"],
    )


async def add_planned(
    conn: Connection,
    job: JobRow,
    parent_task_id: str,
    inputs: list[dict[str, Any]],
    pin_device_id: str | None,
) -> list[PlannedRow]:
    stamp = now()
    rows = []
    for item in inputs:
        row = PlannedRow(new_id(), job.id, parent_task_id, item, pin_device_id, job.timeout_s, None)
        await conn.execute(
            "INSERT INTO planned_tasks (id, job_id, parent_task_id, input, pin_device_id, "
            "timeout_s, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row.id, job.id, parent_task_id, json.dumps(item), pin_device_id, row.timeout_s, stamp),
        )
        rows.append(row)
    return rows


async def materialise(conn: Connection, planned: PlannedRow) -> TaskRow | None:
    """Make the planned task a pending job task (once); None if it already is one."""
    job = await get_job(conn, planned.job_id)
    if job is None:
        return None
    task_id = new_id()
    async with conn.execute(
        "UPDATE planned_tasks SET job_task_id = ? WHERE id = ? AND job_task_id IS NULL",
        (task_id, planned.id),
    ) as cur:
        if cur.rowcount == 0:
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
            )
        ],
    )
    return task


async def oldest_planned_for(conn: Connection, device_id: str) -> PlannedRow | None:
    """The oldest planned task (not yet a job task) that may run on the device."""
    async with conn.execute(
        "SELECT * FROM planned_tasks WHERE job_task_id IS NULL "
        "AND (pin_device_id IS NULL OR pin_device_id = ?) "
        "AND job_id IN (SELECT id FROM jobs WHERE type = 'devices_automation') "
        "ORDER BY created_at, rowid LIMIT 1",
        (device_id,),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else _row(row)


async def count_open_planned(conn: Connection, job_id: str) -> int:
    """How many planned tasks of the job are not yet job tasks."""
    async with conn.execute(
        "SELECT COUNT(*) AS n FROM planned_tasks WHERE job_id = ? AND job_task_id IS NULL",
        (job_id,),
    ) as cur:
        row = await cur.fetchone()
    return 0 if row is None else int(row["n"])


async def any_open_planned(conn: Connection) -> bool:
    async with conn.execute("SELECT 1 FROM planned_tasks WHERE job_task_id IS NULL LIMIT 1") as cur:
        return await cur.fetchone() is not None


async def planned_of_parent(
    conn: Connection, parent_task_id: str, ids: list[str]
) -> list[PlannedRow]:
    """Those of `ids` whose parent is `parent_task_id` (others are left out)."""
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    async with conn.execute(
        f"SELECT * FROM planned_tasks WHERE parent_task_id = ? AND id IN ({marks})",
        (parent_task_id, *ids),
    ) as cur:
        return [_row(r) for r in await cur.fetchall()]


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


async def sub_tasks(
    conn: Connection, parent_task_id: str, ids: list[str]
) -> dict[str, dict[str, Any]]:
    out = {}
    for planned in await planned_of_parent(conn, parent_task_id, ids):
        task = None if planned.job_task_id is None else await get_task(conn, planned.job_task_id)
        out[planned.id] = sub_task_view(planned, task)
    return out
