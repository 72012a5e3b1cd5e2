"""The queries of a dispatch pass: which offered devices are busy, and which pending tasks the
free ones may take. Each costs one statement for the whole pass, however many devices are
offered, and reads only index ranges of pending or active tasks, never the stored history.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import Grouping

from coordinator import schema as t
from coordinator.db import now
from coordinator.db_conn import Conn, Hot, one_of
from coordinator.dialect import among, id_list, id_list_value
from coordinator.store_tasks import ACTIVE_STATES, TaskRow, task_from_row

c = t.tasks.c


def _busy(dialect: str) -> sa.Select[tuple[str]]:
    return sa.select(c.device_id).where(
        among(dialect, c.device_id, "devices"), one_of(c.state, ACTIVE_STATES)
    )


_BUSY = Hot.by_dialect(_busy)


def _assign_all(dialect: str) -> sa.Update:
    """PostgreSQL: assign each task of the list `tasks` that is still pending to the host and
    device at its place (`array_position`) in the lists `hosts` and `devices`; returns the ids
    of those assigned. The tasks are found by `= ANY` (an index lookup each; joined with
    `unnest`, the planner may walk every pending task instead)."""
    # In parentheses: PostgreSQL takes no subscript right after a CAST.
    tasks, hosts, devices = (
        Grouping(sa.cast(sa.bindparam(name), postgresql.ARRAY(sa.Text)))
        for name in ("tasks", "hosts", "devices")
    )
    place = sa.func.array_position(tasks, c.id)
    return (
        sa.update(t.tasks)
        .where(among(dialect, c.id, "tasks"), c.state == "pending")
        .values(
            state="assigned",
            host_id=hosts[place],
            device_id=devices[place],
            assigned_at=sa.bindparam("b_at", sa.Double),
        )
        .returning(c.id)
    )


_ASSIGN_ONE = Hot(
    sa.update(t.tasks)
    .where(c.id == sa.bindparam("b_id"), c.state == "pending")
    .values(
        state="assigned",
        host_id=sa.bindparam("b_host"),
        device_id=sa.bindparam("b_device"),
        assigned_at=sa.bindparam("b_at"),
    )
)
_ASSIGN_ALL = Hot.by_dialect(_assign_all)


def _due(columns: Any) -> sa.ColumnElement[bool]:
    """A task (of the table or alias whose `.c` is `columns`) that may be given out now: past
    its retry delay and not past its deadline."""
    at = sa.bindparam("now", type_=sa.Double)
    return sa.and_(
        sa.or_(columns.not_before.is_(None), columns.not_before <= at),
        sa.or_(columns.deadline_at.is_(None), columns.deadline_at > at),
    )


def _heads(dialect_name: str) -> sa.Select[Any]:
    """The first `n` unpinned runnable tasks, and the first one pinned to each device of
    `devices`, in queue order (priority, then FIFO). Each lookup walks an index in that order
    and stops early (coordinator/schema.py: `tasks_unpinned`, `tasks_queue`)."""
    unpinned = (
        sa.select(c.id)
        .where(sa.text(t.UNPINNED_QUEUE), c.job_id.in_(t.AUTOMATION_JOB_IDS), _due(c))
        .order_by(c.queue_rank, c.seq)
        .limit(sa.bindparam("n", type_=sa.Integer))
    )
    offered = id_list(dialect_name, "devices")
    pinned = t.tasks.alias("pinned")
    head_of_device = (
        sa.select(pinned.c.id)
        .where(
            pinned.c.state == "pending",
            pinned.c.origin == "run",
            pinned.c.pin_device_id == offered.c.value,
            pinned.c.job_id.in_(t.AUTOMATION_JOB_IDS),
            _due(pinned.c),
        )
        .order_by(pinned.c.queue_rank, pinned.c.seq)
        .limit(1)
        .scalar_subquery()
    )
    unpinned_ids = unpinned.subquery("unpinned")
    heads = sa.union_all(
        sa.select(unpinned_ids.c.id),
        sa.select(head_of_device.label("id")).select_from(offered),
    ).subquery("heads")
    # A join on the primary key, not `id IN (...) OR id IN (...)`, which PostgreSQL answers by
    # filtering every stored task.
    return sa.select(t.tasks).join(heads, c.id == heads.c.id).order_by(c.queue_rank, c.seq)


_HEADS = Hot.by_dialect(_heads)


async def busy_among(conn: Conn, device_ids: list[str]) -> set[str]:
    """The devices among `device_ids` that have an assigned or running task."""
    ids = id_list_value(conn.dialect.name, device_ids)
    found = await conn.scalars(_BUSY, {"devices": ids})
    return {str(device_id) for device_id in found}


async def queue_heads(conn: Conn, device_ids: list[str]) -> list[TaskRow]:
    """Each task the free `device_ids` could take first, in queue order:
    the first `len(device_ids)` unpinned runnable tasks, and each device's first pinned one.
    """
    ids = id_list_value(conn.dialect.name, device_ids)
    rows = await conn.execute(_HEADS, {"n": len(device_ids), "devices": ids, "now": now()})
    return [task_from_row(r) for r in rows]


async def mark_all_assigned(conn: Conn, picks: list[tuple[str, str, str]]) -> set[str]:
    """(task_id, host_id, device_id): assign each task that is still pending to its device; the
    ids of those assigned. A task another writer took meanwhile (a coordinator replica on the
    same PostgreSQL database) is left out, so no task is given out twice. PostgreSQL: one
    statement for all (a round trip saved per task); SQLite, where a statement costs no round
    trip: one each (a list in JSON would be parsed again for every row it updates)."""
    if not picks:
        return set()
    stamp = now()
    dialect = conn.dialect.name
    if dialect == "postgresql":
        tasks, hosts, devices = (list(column) for column in zip(*picks, strict=True))
        assigned = await conn.scalars(
            _ASSIGN_ALL, {"tasks": tasks, "hosts": hosts, "devices": devices, "b_at": stamp}
        )
        return {str(task_id) for task_id in assigned}
    done = set()
    for task_id, host_id, device_id in picks:
        changed = await conn.execute(
            _ASSIGN_ONE, {"b_id": task_id, "b_host": host_id, "b_device": device_id, "b_at": stamp}
        )
        if changed.rowcount == 1:
            done.add(task_id)
    return done
