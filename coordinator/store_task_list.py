"""Task lists: the tasks a caller may view that pass a filter, a page at a time in creation
order, and how many pass in all.

A page is keyed by `seq` (creation order; a task's never changes and is never reused): it holds
the tasks after the previous page's last one. So while tasks are created, every task that
existed when a listing began is listed exactly once, and none twice. Filters are applied as each
page is read: a task whose state changes between two pages is listed by the state it has when
its page is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from coordinator import schema as t
from coordinator.db_conn import Conn
from coordinator.store_tasks import TaskRow, task_from_row

c = t.tasks.c


@dataclass(frozen=True)
class TaskFilter:
    """What a listed task must be; None (or no states) is no condition. Times are stored Unix
    seconds, each pair a half-open range: `after <= time < before`."""

    job_id: str | None = None
    states: tuple[str, ...] = ()
    device: str | None = None
    """The device the task runs or ran on (its latest attempt), or is pinned to."""
    host: str | None = None
    """The host of its latest attempt."""
    parent: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    finished_after: float | None = None
    finished_before: float | None = None


@dataclass(frozen=True)
class TaskPage:
    tasks: list[TaskRow]
    last_seq: int | None
    """The seq to read the next page after; None when no task follows this page."""


def _conditions(visible_to: str, where: TaskFilter) -> list[sa.ColumnElement[bool]]:
    visible_jobs = sa.union(
        sa.select(t.jobs.c.id).where(t.jobs.c.owner == visible_to),
        sa.select(t.job_shares.c.job_id).where(t.job_shares.c.owner == visible_to),
    )
    clauses: list[sa.ColumnElement[bool]] = [c.job_id.in_(visible_jobs)]
    if where.job_id is not None:
        clauses.append(c.job_id == where.job_id)
    if where.states:
        clauses.append(c.state.in_(where.states))
    if where.device is not None:
        clauses.append(sa.or_(c.device_id == where.device, c.pin_device_id == where.device))
    if where.host is not None:
        clauses.append(c.host_id == where.host)
    if where.parent is not None:
        clauses.append(c.parent_task_id == where.parent)
    for column, after, before in (
        (c.created_at, where.created_after, where.created_before),
        (c.finished_at, where.finished_after, where.finished_before),
    ):
        if after is not None:
            clauses.append(column >= after)
        if before is not None:
            clauses.append(column < before)
    return clauses


async def page_of_tasks(
    conn: Conn, *, visible_to: str, where: TaskFilter, after_seq: int | None, limit: int
) -> TaskPage:
    """Up to `limit` tasks of jobs `visible_to` owns or has a share of that pass `where`,
    oldest first, from just after the task of seq `after_seq` (None: from the first)."""
    clauses = _conditions(visible_to, where)
    if after_seq is not None:
        clauses.append(c.seq > after_seq)
    # One row more than the page says whether another page follows.
    rows: list[sa.Row[Any]] = list(
        await conn.execute(sa.select(t.tasks).where(*clauses).order_by(c.seq).limit(limit + 1))
    )
    page = rows[:limit]
    last_seq = int(page[-1].seq) if len(rows) > limit else None
    return TaskPage([task_from_row(row) for row in page], last_seq)


async def count_tasks(conn: Conn, *, visible_to: str, where: TaskFilter) -> int:
    """How many tasks `page_of_tasks` would list from the first page on (a count of every
    matching row: it costs as much as reading them)."""
    clauses = _conditions(visible_to, where)
    total = await conn.scalar(sa.select(sa.func.count()).select_from(t.tasks).where(*clauses))
    return int(total or 0)
