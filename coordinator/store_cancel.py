"""Cancelling tasks in bulk: those of a job, or a task with the sub-tasks it added (and theirs).

A task is cancelled whatever its state before the end (pending, blocked, assigned, running): it
is final at once, with a failure reason saying why and an optional `error` text. The ones a host
held come back as `Held`, for the caller to tell their hosts to stop them. A planned task not
yet a job task becomes one already cancelled, so it is never dispatched and `get_sub_tasks`
reports it `deleted`. Data-dump tasks are records, not work: never cancelled here.

Open planned tasks are closed before the tasks: a dispatch pass of another replica that made one
a job task meanwhile has committed that task by the time the tasks are cancelled (the planned
rows are locked FOR UPDATE, which it waits for, or it committed first), so the task is cancelled
with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from coordinator import schema as t
from coordinator.db import new_id, now
from coordinator.db_conn import Conn
from coordinator.dialect import next_seqs
from coordinator.store_dependencies import dependency_ended
from coordinator.store_webhooks import queue_finals

CANCELLABLE = ("pending", "blocked", "assigned", "running")
"""Every state before the end: `blocked` tasks (waiting on dependencies) have not started."""

c = t.tasks.c
p = t.planned_tasks.c


@dataclass(frozen=True)
class Held:
    """A cancelled task that a host was given: it must be told to stop it."""

    task_id: str
    host_id: str


@dataclass(frozen=True)
class Cancelled:
    tasks: int
    """Job tasks cancelled (planned ones not counted)."""
    held: list[Held]
    planned: int
    """Planned tasks cancelled before they became job tasks."""


async def cancel_tasks(
    conn: Conn, which: sa.ColumnElement[bool], *, reason: str, error: str | None
) -> tuple[int, list[Held]]:
    """Cancel the tasks `which` selects that are not final yet; how many, and those held."""
    rows = await conn.execute(
        sa.update(t.tasks)
        .where(which, c.origin == "run", c.state.in_(CANCELLABLE))
        .values(state="cancelled", failure_reason=reason, error=error, finished_at=now())
        .returning(c.id, c.host_id, c.has_dependents)
    )
    found = list(rows)
    await queue_finals(conn, [row.id for row in found])
    for row in found:
        if row.has_dependents:
            await dependency_ended(conn, row.id, "cancelled")  # skips the tasks waiting on it
    held = [Held(row.id, row.host_id) for row in found if row.host_id is not None]
    return len(found), held


async def cancel_planned(
    conn: Conn, which: sa.ColumnElement[bool], *, reason: str, error: str | None
) -> int:
    """Make each open planned task `which` selects a job task that is already cancelled."""
    parent = t.tasks.alias("parent")
    version = (
        sa.select(sa.func.max(t.job_versions.c.version))
        .where(t.job_versions.c.job_id == p.job_id)
        .scalar_subquery()
    )
    rows = (
        await conn.execute(
            sa.select(
                t.planned_tasks,
                t.jobs.c.script_sha256,
                version.label("script_version"),
                parent.c.depth.label("parent_depth"),
            )
            .join(t.jobs, t.jobs.c.id == p.job_id)
            .outerjoin(parent, parent.c.id == p.parent_task_id)
            .where(p.job_task_id.is_(None), which)
            .order_by(p.seq)
            .with_for_update(of=t.planned_tasks)
        )
    ).all()
    if not rows:
        return 0
    stamp = now()
    task_ids = [new_id() for _ in rows]
    seqs = await next_seqs(conn, t.tasks, len(rows))
    await conn.execute(
        sa.update(t.planned_tasks)
        .where(p.id == sa.bindparam("b_planned"))
        .values(job_task_id=sa.bindparam("b_task")),
        [
            {"b_planned": row.id, "b_task": task_id}
            for row, task_id in zip(rows, task_ids, strict=True)
        ],
    )
    await conn.execute(
        sa.insert(t.tasks),
        [
            _cancelled_task(row, task_id, seq, stamp, reason, error)
            for row, task_id, seq in zip(rows, task_ids, seqs, strict=True)
        ],
    )
    await queue_finals(conn, task_ids)
    return len(rows)


def _cancelled_task(
    row: Any, task_id: str, seq: int, stamp: float, reason: str, error: str | None
) -> dict[str, Any]:
    return {
        "id": task_id,
        "job_id": row.job_id,
        "script_sha256": row.script_sha256,
        "script_version": row.script_version,
        "input": row.input,
        "pin_device_id": row.pin_device_id,
        "state": "cancelled",
        "failure_reason": reason,
        "error": error,
        "timeout_s": row.timeout_s,
        "parent_task_id": row.parent_task_id,
        # As store_planned.sub_task_depth has it.
        "depth": 1 if row.parent_depth is None else row.parent_depth + 1,
        "created_at": stamp,
        "finished_at": stamp,
        "seq": seq,
    }


async def cancel_job_tasks(conn: Conn, job_id: str, *, reason: str, error: str | None) -> Cancelled:
    """Cancel every task of the job not final yet, and its open planned tasks."""
    planned = await cancel_planned(conn, p.job_id == job_id, reason=reason, error=error)
    count, held = await cancel_tasks(conn, c.job_id == job_id, reason=reason, error=error)
    return Cancelled(count, held, planned)


def _descendants(root_id: str, job_ids: sa.CompoundSelect[tuple[str]]) -> sa.Select[tuple[str]]:
    """The ids of the tasks the root's script added, and theirs, down the tree, in the jobs of
    `job_ids` (the walk stops at a task of any other job)."""
    child = t.tasks.alias("child")
    tree = (
        sa.select(c.id)
        .where(c.parent_task_id == root_id, c.origin == "run", c.job_id.in_(job_ids))
        .cte("tree", recursive=True)
    )
    tree = tree.union_all(
        sa.select(child.c.id)
        .join(tree, child.c.parent_task_id == tree.c.id)
        .where(child.c.origin == "run", child.c.job_id.in_(job_ids))
    )
    return sa.select(tree.c.id)


async def cancel_sub_tasks(
    conn: Conn,
    root_id: str,
    job_ids: sa.CompoundSelect[tuple[str]],
    *,
    reason: str,
    error: str | None,
) -> Cancelled:
    """Cancel the root's sub-tasks and theirs (in the jobs of `job_ids`) not final yet, and the
    open planned tasks the root and they added."""
    parents = sa.or_(
        p.parent_task_id == root_id, p.parent_task_id.in_(_descendants(root_id, job_ids))
    )
    planned = await cancel_planned(
        conn, sa.and_(parents, p.job_id.in_(job_ids)), reason=reason, error=error
    )
    count, held = await cancel_tasks(
        conn, c.id.in_(_descendants(root_id, job_ids)), reason=reason, error=error
    )
    return Cancelled(count, held, planned)
