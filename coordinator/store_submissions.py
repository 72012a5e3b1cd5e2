"""The idempotency table: the key of every `submit` and `finished` whose effect was committed;
and the reads a host's `submit` and `finished` frames are judged on, which take their keys and
their tasks in one query each (a round trip saved per frame on PostgreSQL)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from agent.protocol import Finished, Submit
from coordinator import schema as t
from coordinator.db import now
from coordinator.db_conn import Conn, Hot
from coordinator.dialect import among, id_list_value
from coordinator.store_jobs import JobOutcome
from coordinator.store_tasks import TaskRow, record_finished_at, task_from_row

s = t.submissions.c
c = t.tasks.c
j = t.jobs.c
_ONE_ROW = sa.select(sa.literal_column("1").label("one")).subquery("one_row")
"""Outer-joined with what a lookup finds, so that it answers one row even when it finds none."""


_STORE_STATEMENT = sa.insert(t.submissions).values(
    key=sa.bindparam("b_key"),
    task_id=sa.bindparam("b_task"),
    seq=sa.bindparam("b_seq"),
    status=sa.bindparam("b_status"),
    data=sa.bindparam("b_data"),
    finish=sa.bindparam("b_finish"),
    created_at=sa.bindparam("b_at"),
)
_STORE = Hot(_STORE_STATEMENT)
_STORE_ENDED = Hot(
    _STORE_STATEMENT.add_cte(
        sa.update(t.tasks)
        .where(c.id == sa.bindparam("b_task"), c.finished_at.is_(None))
        .values(finished_at=sa.bindparam("b_ended"))
        .cte("ended")
    )
)
"""PostgreSQL only (SQLite has no UPDATE in a WITH): a `finished` frame's key, and the end time
of its task's run, in one statement."""


_TASK_AND_KEY = Hot(
    sa.select(
        sa.exists().where(s.key == sa.bindparam("b_key")).label("key_stored"), t.tasks
    ).select_from(_ONE_ROW.outerjoin(t.tasks, c.id == sa.bindparam("b_id")))
)


async def task_and_key(conn: Conn, task_id: str, key: str) -> tuple[TaskRow | None, bool]:
    """The task (None if there is none) and whether `key` is stored, in one query: what a
    `finished` frame is judged on."""
    row = (await conn.execute(_TASK_AND_KEY, {"b_id": task_id, "b_key": key})).first()
    return (None if row.id is None else task_from_row(row)), bool(row.key_stored)


@dataclass(frozen=True)
class SubmitView:
    """What a run of `submit` frames is judged on, read in one query (`submit_view`)."""

    stored: set[str]
    """The run's keys already stored."""
    tasks: dict[str, TaskRow]
    """The run's tasks that exist, by id."""
    jobs: dict[str, JobOutcome]
    """Each of those tasks' job's outcome columns, by task id."""


def _submit_view(dialect: str) -> sa.Select[Any]:
    keys = sa.select(s.key).where(among(dialect, s.key, "keys")).subquery("stored")
    stored = (
        sa.func.array_agg(keys.c.key)
        if dialect == "postgresql"
        else sa.func.json_group_array(keys.c.key)
    )
    # Two flat outer joins: SQLite would scan every task to build a nested `tasks JOIN jobs`.
    found = _ONE_ROW.outerjoin(t.tasks, among(dialect, c.id, "ids")).outerjoin(
        t.jobs, j.id == c.job_id
    )
    return sa.select(
        sa.select(stored).scalar_subquery().label("stored_keys"),
        t.tasks,
        j.output_schema.label("job_output_schema"),
        j.webhook_url.label("job_webhook_url"),
    ).select_from(found)


_SUBMIT_VIEW = Hot.by_dialect(_submit_view)


async def submit_view(conn: Conn, keys: list[str], task_ids: set[str]) -> SubmitView:
    """Which of `keys` are stored, and the tasks among `task_ids` with their jobs' outcome
    columns."""
    dialect = conn.dialect.name
    rows = await conn.execute(
        _SUBMIT_VIEW,
        {
            "keys": id_list_value(dialect, keys),
            "ids": id_list_value(dialect, sorted(task_ids)),
        },
    )
    view = SubmitView(set(), {}, {})
    for row in rows:
        stored = row.stored_keys
        view.stored.update(json.loads(stored) if isinstance(stored, str) else stored or ())
        if row.id is not None:
            view.tasks[row.id] = task_from_row(row)
            view.jobs[row.id] = JobOutcome(row.job_output_schema, row.job_webhook_url)
    return view


async def submissions_of(conn: Conn, task_id: str) -> list[dict[str, Any]]:
    """The task's stored `submit` frames (not its `finished`), in the script's order (seq)."""
    rows = await conn.execute(
        sa.select(s.seq, s.status, s.data, s.finish)
        .where(s.task_id == task_id, s.seq >= 0)
        .order_by(s.seq)
    )
    return [
        {"seq": r.seq, "status": r.status, "data": json.loads(r.data), "finish": bool(r.finish)}
        for r in rows
    ]


async def store(conn: Conn, submits: list[Submit]) -> None:
    """Record the keys; call inside the transaction that applies the submissions' effects."""
    if not submits:
        return
    stamp = now()
    await conn.execute(
        _STORE,
        [
            {
                "b_key": submit.key,
                "b_task": submit.task_id,
                "b_seq": submit.seq,
                "b_status": submit.status,
                "b_data": json.dumps(submit.data),
                "b_finish": int(submit.finish),
                "b_at": stamp,
            }
            for submit in submits
        ],
    )


async def store_finished(conn: Conn, finished: Finished, ended_at: float | None = None) -> None:
    """Record a `finished` frame's key (seq -1: it follows every submission of its task). With
    `ended_at`, for a task its final submission ended already, also when its run ended (as
    `record_finished_at`): in the same statement on PostgreSQL, a round trip less a task."""
    params = {
        "b_key": finished.key,
        "b_task": finished.task_id,
        "b_seq": -1,
        "b_status": finished.state,
        "b_data": json.dumps(finished.data),
        "b_finish": 1,
        "b_at": now(),
    }
    if ended_at is None:
        await conn.execute(_STORE, params)
    elif conn.dialect.name == "postgresql":
        await conn.execute(_STORE_ENDED, {**params, "b_ended": ended_at})
    else:
        await record_finished_at(conn, finished.task_id, ended_at)
        await conn.execute(_STORE, params)
