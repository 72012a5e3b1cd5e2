"""The queries of a dispatch pass: which offered devices are busy, and which pending tasks the
free ones may take. Each costs one statement for the whole pass, however many devices are
offered, and reads only index ranges of pending or active tasks, never the stored history.
"""

from __future__ import annotations

from coordinator.db import now
from coordinator.sqlite_conn import Connection
from coordinator.store_tasks import TaskRow, task_from_row

_RUNNABLE = (
    "state = 'pending' AND origin = 'run' "
    "AND EXISTS (SELECT 1 FROM jobs WHERE jobs.id = tasks.job_id "
    "AND jobs.type = 'devices_automation')"
)


def _marks(values: list[str]) -> str:
    return ",".join("?" * len(values))


async def busy_among(conn: Connection, device_ids: list[str]) -> set[str]:
    """The devices among `device_ids` that have an assigned or running task."""
    rows = await conn.execute_fetchall(
        f"SELECT device_id FROM tasks WHERE device_id IN ({_marks(device_ids)}) "
        "AND state IN ('assigned', 'running')",
        device_ids,
    )
    return {str(r["device_id"]) for r in rows}


async def queue_heads(conn: Connection, device_ids: list[str]) -> list[TaskRow]:
    """Each task the free `device_ids` could take first, in queue order:
    the oldest `len(device_ids)` unpinned runnable tasks, and each device's oldest pinned one.
    """
    wanted = ",".join(["(?)"] * len(device_ids))
    rows = await conn.execute_fetchall(
        f"WITH wanted(id) AS (VALUES {wanted}) "
        "SELECT * FROM tasks WHERE rowid IN ("
        f"  SELECT rowid FROM tasks WHERE {_RUNNABLE} AND pin_device_id IS NULL"
        "   ORDER BY created_at, rowid LIMIT ?"
        ") OR rowid IN ("
        f"  SELECT (SELECT rowid FROM tasks WHERE {_RUNNABLE} AND pin_device_id = wanted.id"
        "    ORDER BY created_at, rowid LIMIT 1)"
        "  FROM wanted"
        ") ORDER BY created_at, rowid",
        [*device_ids, len(device_ids)],
    )
    return [task_from_row(r) for r in rows]


async def mark_all_assigned(conn: Connection, picks: list[tuple[str, str, str]]) -> None:
    """(task_id, host_id, device_id): assign each task, still pending, to its device."""
    stamp = now()
    await conn.executemany(
        "UPDATE tasks SET state = 'assigned', host_id = ?, device_id = ?, assigned_at = ? "
        "WHERE id = ? AND state = 'pending'",
        [(host_id, device_id, stamp, task_id) for task_id, host_id, device_id in picks],
    )
