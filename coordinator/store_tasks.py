"""Stored tasks and every change of their state.

State changes are guarded in SQL (`WHERE state IN (...)`) so that a change decided from a stale
read cannot overwrite a newer one; each returns whether it happened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.protocol import TERMINAL_STATES
from coordinator.db import new_id, now
from coordinator.sqlite_conn import Connection, Row
from coordinator.store_jobs import JobRow

ACTIVE_STATES = ("assigned", "running")


@dataclass(frozen=True)
class TaskRow:
    id: str
    job_id: str
    script_sha256: str
    input: dict[str, Any]
    pin_device_id: str | None
    state: str
    host_id: str | None
    device_id: str | None
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    failure_reason: str | None
    error: str | None
    attempt: int
    timeout_s: float
    parent_task_id: str | None
    origin: str
    """`run` (work for a device) or `dump` (a record made by submit_task_to_another_job)."""
    automation_variables: dict[str, Any] | None
    checkpoint: dict[str, Any] | None
    created_at: float
    assigned_at: float | None
    started_at: float | None
    finished_at: float | None

    @property
    def is_final(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True)
class NewTask:
    input: dict[str, Any]
    pin_device_id: str | None
    timeout_s: float | None
    parent_task_id: str | None = None
    task_id: str | None = None
    """Given when the id must be known before the row exists (a planned task's job task)."""


def _json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def task_from_row(row: Row) -> TaskRow:
    return TaskRow(
        id=row["id"],
        job_id=row["job_id"],
        script_sha256=row["script_sha256"],
        input=json.loads(row["input"]),
        pin_device_id=row["pin_device_id"],
        state=row["state"],
        host_id=row["host_id"],
        device_id=row["device_id"],
        progress=_json_or_none(row["progress"]),
        result=_json_or_none(row["result"]),
        failure_reason=row["failure_reason"],
        error=row["error"],
        attempt=row["attempt"],
        timeout_s=row["timeout_s"],
        parent_task_id=row["parent_task_id"],
        origin=row["origin"],
        automation_variables=_json_or_none(row["automation_variables"]),
        checkpoint=_json_or_none(row["checkpoint"]),
        created_at=row["created_at"],
        assigned_at=row["assigned_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


async def _fetch(conn: Connection, sql: str, args: tuple[Any, ...]) -> list[TaskRow]:
    async with conn.execute(sql, args) as cur:
        return [task_from_row(r) for r in await cur.fetchall()]


async def create_tasks(conn: Connection, job: JobRow, specs: list[NewTask]) -> list[TaskRow]:
    """Create pending tasks that will run the job's current script version."""
    stamp = now()
    ids = [spec.task_id or new_id() for spec in specs]
    await conn.executemany(
        "INSERT INTO tasks (id, job_id, script_sha256, input, pin_device_id, state, "
        "timeout_s, parent_task_id, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
        [
            (
                task_id,
                job.id,
                job.script_sha256,
                json.dumps(spec.input),
                spec.pin_device_id,
                spec.timeout_s if spec.timeout_s is not None else job.timeout_s,
                spec.parent_task_id,
                stamp,
            )
            for task_id, spec in zip(ids, specs, strict=True)
        ],
    )
    created = await get_tasks(conn, set(ids))
    return [created[task_id] for task_id in ids]


async def get_task(conn: Connection, task_id: str) -> TaskRow | None:
    rows = await _fetch(conn, "SELECT * FROM tasks WHERE id = ?", (task_id,))
    return rows[0] if rows else None


async def get_tasks(conn: Connection, task_ids: set[str]) -> dict[str, TaskRow]:
    """The tasks that exist among `task_ids`, by id: one query per 500 ids."""
    ids = sorted(task_ids)
    found: dict[str, TaskRow] = {}
    for first in range(0, len(ids), 500):
        chunk = ids[first : first + 500]
        rows = await conn.execute_fetchall(
            f"SELECT * FROM tasks WHERE id IN ({','.join('?' * len(chunk))})", chunk
        )
        found.update((t.id, t) for t in map(task_from_row, rows))
    return found


async def list_tasks(
    conn: Connection,
    *,
    visible_to: str,
    job_id: str | None,
    state: str | None,
    device: str | None,
    limit: int,
    offset: int,
) -> tuple[list[TaskRow], int]:
    """One page of the tasks of jobs `visible_to` owns or has a share of, oldest first, and
    how many match in all.

    `device` matches the device a task ran on or the device it is pinned to.
    """
    clauses = [
        "job_id IN (SELECT id FROM jobs WHERE owner = ? "
        "UNION SELECT job_id FROM job_shares WHERE owner = ?)"
    ]
    args: list[Any] = [visible_to, visible_to]
    if job_id is not None:
        clauses.append("job_id = ?")
        args.append(job_id)
    if state is not None:
        clauses.append("state = ?")
        args.append(state)
    if device is not None:
        clauses.append("(device_id = ? OR pin_device_id = ?)")
        args.extend([device, device])
    where = f" WHERE {' AND '.join(clauses)}"
    async with conn.execute(f"SELECT COUNT(*) AS n FROM tasks{where}", tuple(args)) as cur:
        count_row = await cur.fetchone()
    total = int(count_row["n"]) if count_row is not None else 0
    rows = await _fetch(
        conn,
        f"SELECT * FROM tasks{where} ORDER BY created_at, rowid LIMIT ? OFFSET ?",
        (*args, limit, offset),
    )
    return rows, total


async def active_on_host(conn: Connection, host_id: str) -> list[TaskRow]:
    """Tasks the coordinator believes are assigned to or running on the host."""
    return await _fetch(
        conn,
        "SELECT * FROM tasks WHERE host_id = ? AND state IN ('assigned', 'running')",
        (host_id,),
    )


async def busy_device_ids(conn: Connection) -> set[str]:
    async with conn.execute(
        "SELECT device_id FROM tasks WHERE state IN ('assigned', 'running')"
    ) as cur:
        return {str(r["device_id"]) for r in await cur.fetchall()}


async def oldest_pending_for(conn: Connection, device_id: str) -> TaskRow | None:
    """The oldest pending task that may run on the device: unpinned or pinned to it, of a
    devices_automation job (a manual job's tasks are not run by devices)."""
    rows = await _fetch(
        conn,
        "SELECT * FROM tasks WHERE state = 'pending' AND origin = 'run' "
        "AND (pin_device_id IS NULL OR pin_device_id = ?) "
        "AND job_id IN (SELECT id FROM jobs WHERE type = 'devices_automation') "
        "ORDER BY created_at, rowid LIMIT 1",
        (device_id,),
    )
    return rows[0] if rows else None


async def _changed(conn: Connection, sql: str, args: tuple[Any, ...]) -> bool:
    async with conn.execute(sql, args) as cur:
        return cur.rowcount > 0


async def mark_assigned(conn: Connection, task_id: str, host_id: str, device_id: str) -> bool:
    return await _changed(
        conn,
        "UPDATE tasks SET state = 'assigned', host_id = ?, device_id = ?, assigned_at = ? "
        "WHERE id = ? AND state = 'pending'",
        (host_id, device_id, now(), task_id),
    )


async def back_to_pending(conn: Connection, task_id: str) -> bool:
    """An assigned task its host will not run goes back to the queue."""
    return await _changed(
        conn,
        "UPDATE tasks SET state = 'pending', host_id = NULL, device_id = NULL, "
        "assigned_at = NULL WHERE id = ? AND state = 'assigned'",
        (task_id,),
    )


async def mark_running(
    conn: Connection, task_id: str, started_at: float, host_id: str | None = None
) -> bool:
    """Make an active task running; with `host_id`, only if it is that host's."""
    return await _changed(
        conn,
        "UPDATE tasks SET state = 'running', started_at = COALESCE(started_at, ?) "
        "WHERE id = ? AND state IN ('assigned', 'running') AND host_id = COALESCE(?, host_id)",
        (started_at, task_id, host_id),
    )


async def finish(
    conn: Connection,
    task_id: str,
    *,
    state: str,
    reason: str | None = None,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    finished_at: float | None = None,
) -> bool:
    """Make an active (or, for cancel, pending) task final; False if it already was."""
    return await _changed(
        conn,
        "UPDATE tasks SET state = ?, failure_reason = ?, error = ?, "
        "result = COALESCE(?, result), finished_at = COALESCE(?, finished_at) "
        "WHERE id = ? AND state IN ('pending', 'assigned', 'running')",
        (
            state,
            reason,
            error,
            None if result is None else json.dumps(result),
            finished_at,
            task_id,
        ),
    )


async def record_finished_at(conn: Connection, task_id: str, finished_at: float) -> None:
    await conn.execute(
        "UPDATE tasks SET finished_at = ? WHERE id = ? AND finished_at IS NULL",
        (finished_at, task_id),
    )


async def set_progress(conn: Connection, updates: list[tuple[str, int, Any]]) -> None:
    """(task_id, seq, data): keep the data of each task's latest (highest seq) update."""
    if not updates:
        return
    await conn.executemany(
        "UPDATE tasks SET progress = ?, progress_seq = ? "
        "WHERE id = ? AND (progress_seq IS NULL OR progress_seq <= ?)",
        [(json.dumps(data), seq, task_id, seq) for task_id, seq, data in updates],
    )


async def overdue(conn: Connection, grace_s: float) -> list[TaskRow]:
    """Active tasks past their timeout plus grace, counted from start (or from assignment)."""
    return await _fetch(
        conn,
        "SELECT * FROM tasks WHERE "
        "(state = 'running' AND COALESCE(started_at, assigned_at) + timeout_s + ? < ?) OR "
        "(state = 'assigned' AND assigned_at + timeout_s + ? < ?)",
        (grace_s, now(), grace_s, now()),
    )


async def create_dump_task(
    conn: Connection, job: JobRow, *, state: str, proof: dict[str, Any], key_task: str
) -> str:
    """A data-dump record on `job`: never dispatched; `state` is the status the script gave.

    `key_task` is the running task that wrote it (kept as its parent, for tracing).
    """
    task_id = new_id()
    stamp = now()
    final_at = None if state == "pending" else stamp
    await conn.execute(
        "INSERT INTO tasks (id, job_id, script_sha256, input, state, result, timeout_s, "
        "parent_task_id, origin, created_at, finished_at) "
        "VALUES (?, ?, ?, '{}', ?, ?, ?, ?, 'dump', ?, ?)",
        (
            task_id,
            job.id,
            job.script_sha256,
            state,
            json.dumps(proof),
            job.timeout_s,
            key_task,
            stamp,
            final_at,
        ),
    )
    return task_id


async def set_automation_variables(
    conn: Connection, task_id: str, variables: dict[str, Any]
) -> None:
    """Replace the task's variables; `waiting: true` (exactly) makes it discoverable."""
    waiting = variables.get("waiting") is True
    await conn.execute(
        "UPDATE tasks SET automation_variables = ?, waiting = ?, "
        "waiting_since = CASE WHEN ? THEN COALESCE(waiting_since, ?) ELSE NULL END WHERE id = ?",
        (json.dumps(variables), int(waiting), int(waiting), now(), task_id),
    )


async def take_waiting_task(conn: Connection, job_id: str, asking_task_id: str) -> TaskRow | None:
    """Hand one waiting task of the job to the asker, or None.

    One conditional UPDATE picks and clears it (`waiting` = 0, `automation_variables.waiting` =
    false), so two askers can never get the same task. Chosen: the task that has been waiting
    longest; only tasks still assigned or running count.
    """
    async with conn.execute(
        "UPDATE tasks SET waiting = 0, waiting_since = NULL, "
        "automation_variables = json_set(automation_variables, '$.waiting', json('false')) "
        "WHERE id = (SELECT id FROM tasks WHERE job_id = ? AND id != ? AND waiting = 1 "
        "AND state IN ('assigned', 'running') ORDER BY waiting_since, rowid LIMIT 1) "
        "AND waiting = 1 RETURNING id",
        (job_id, asking_task_id),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else await get_task(conn, str(row["id"]))


async def set_checkpoint(conn: Connection, task_id: str, checkpoint: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE tasks SET checkpoint = ? WHERE id = ?", (json.dumps(checkpoint), task_id)
    )


async def set_result(conn: Connection, task_id: str, result: dict[str, Any]) -> None:
    await conn.execute("UPDATE tasks SET result = ? WHERE id = ?", (json.dumps(result), task_id))
