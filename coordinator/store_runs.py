"""A task's runs: one per attempt. The earlier ones are rows of `runs`, each written when its
attempt ended and was retried (coordinator/store_tasks.py `retry`); the current (or last) one
is the task's own row."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from coordinator import schema as t
from coordinator.db_conn import Conn
from coordinator.store_tasks import TaskRow


@dataclass(frozen=True)
class RunRow:
    attempt: int
    state: str
    failure_reason: str | None
    error: str | None
    host_id: str | None
    device_id: str | None
    assigned_at: float | None
    started_at: float | None
    finished_at: float | None


async def runs_of(conn: Conn, task: TaskRow) -> list[RunRow]:
    """Every attempt of `task`, oldest first."""
    r = t.runs.c
    rows = await conn.execute(sa.select(t.runs).where(r.task_id == task.id).order_by(r.attempt))
    earlier = [
        RunRow(
            attempt=row.attempt,
            state=row.state,
            failure_reason=row.failure_reason,
            error=row.error,
            host_id=row.host_id,
            device_id=row.device_id,
            assigned_at=row.assigned_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )
        for row in rows
    ]
    current = RunRow(
        attempt=task.attempt,
        state=task.state,
        failure_reason=task.failure_reason,
        error=task.error,
        host_id=task.host_id,
        device_id=task.device_id,
        assigned_at=task.assigned_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
    )
    return [*earlier, current]
