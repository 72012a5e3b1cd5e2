"""Task dependencies (`depends_on`): a task waits, `blocked`, until every task it depends on has
succeeded; if one ends any other way, it ends `skipped`, naming that dependency, and so do the
tasks that depend on it in turn.

A task can only depend on tasks that exist when it is created (or on tasks created in the same
request, coordinator/api/task_specs.py refuses a cycle among those), so the stored graph has no
cycle. `tasks.blocked_by` counts the dependencies not yet succeeded; `tasks.has_dependents`
spares the end of a task nobody waits for a lookup here.
"""

from __future__ import annotations

import sqlalchemy as sa

from coordinator import schema as t
from coordinator.db import now
from coordinator.db_conn import Conn
from coordinator.store_webhooks import queue_finals

DEPENDENCY_FAILED = "dependency_failed"
"""Failure reason of a task skipped because a dependency did not succeed."""

c = t.tasks.c
d = t.task_dependencies.c


async def add_dependencies(conn: Conn, pairs: list[tuple[str, str]]) -> None:
    """Store (task, the task it depends on) pairs, and mark the depended-on tasks."""
    if not pairs:
        return
    await conn.execute(
        sa.insert(t.task_dependencies), [{"task_id": a, "depends_on": b} for a, b in pairs]
    )
    targets = sorted({b for _, b in pairs})
    await conn.execute(sa.update(t.tasks).where(c.id.in_(targets)).values(has_dependents=1))


async def dependencies_of(conn: Conn, task_id: str) -> list[str]:
    found = await conn.scalars(
        sa.select(d.depends_on).where(d.task_id == task_id).order_by(d.depends_on)
    )
    return [str(x) for x in found]


async def _blocked_dependents(conn: Conn, task_id: str) -> list[str]:
    found = await conn.scalars(
        sa.select(d.task_id)
        .join(t.tasks, c.id == d.task_id)
        .where(d.depends_on == task_id, c.state == "blocked")
        .order_by(c.seq)
    )
    return [str(x) for x in found]


async def dependency_ended(conn: Conn, task_id: str, state: str) -> list[str]:
    """Task `task_id` became final as `state`: unblock or skip the tasks that wait for it.
    Returns the ids of the tasks that became `pending` (work to dispatch)."""
    waiting = await _blocked_dependents(conn, task_id)
    if not waiting:
        return []
    if state == "success":
        await conn.execute(
            sa.update(t.tasks)
            .where(c.id.in_(waiting), c.state == "blocked")
            .values(blocked_by=c.blocked_by - 1)
        )
        ready = list(
            await conn.scalars(
                sa.select(c.id).where(c.id.in_(waiting), c.state == "blocked", c.blocked_by <= 0)
            )
        )
        if ready:
            await conn.execute(
                sa.update(t.tasks).where(c.id.in_(ready)).values(state="pending", blocked_by=0)
            )
        return [str(x) for x in ready]
    await _skip(conn, waiting, f"dependency {task_id} ended {state}")
    return []


async def _skip(conn: Conn, task_ids: list[str], why: str) -> None:
    """Skip the blocked tasks `task_ids`, then every blocked task that depends on them."""
    stamp = now()
    queue = [(task_id, why) for task_id in task_ids]
    while queue:
        task_id, error = queue.pop(0)
        skipped = await conn.execute(
            sa.update(t.tasks)
            .where(c.id == task_id, c.state == "blocked")
            .values(
                state="skipped", failure_reason=DEPENDENCY_FAILED, error=error, finished_at=stamp
            )
        )
        if skipped.rowcount:
            await queue_finals(conn, [task_id])
            queue += [
                (dependent, f"dependency {task_id} ended skipped")
                for dependent in await _blocked_dependents(conn, task_id)
            ]
