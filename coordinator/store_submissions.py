"""The idempotency table: the key of every `submit` and `finished` whose effect was committed."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from agent.protocol import Finished, Submit
from coordinator import schema as t
from coordinator.db import now
from coordinator.db_conn import Conn, Hot
from coordinator.dialect import id_list, id_list_value

s = t.submissions.c
_STORED = Hot(sa.select(s.key).where(s.key == sa.bindparam("b_key")))


def _stored_among(dialect: str) -> sa.Select[tuple[str]]:
    keys = id_list(dialect, "keys")
    return sa.select(s.key).join(keys, s.key == keys.c.value)


_STORED_AMONG = Hot.by_dialect(_stored_among)
_STORE = Hot(
    sa.insert(t.submissions).values(
        key=sa.bindparam("b_key"),
        task_id=sa.bindparam("b_task"),
        seq=sa.bindparam("b_seq"),
        status=sa.bindparam("b_status"),
        data=sa.bindparam("b_data"),
        finish=sa.bindparam("b_finish"),
        created_at=sa.bindparam("b_at"),
    )
)


async def is_stored(conn: Conn, key: str) -> bool:
    return await conn.scalar(_STORED, {"b_key": key}) is not None


async def stored_keys(conn: Conn, keys: list[str]) -> set[str]:
    """Which of `keys` are already stored, in one query."""
    if not keys:
        return set()
    found = await conn.scalars(_STORED_AMONG, {"keys": id_list_value(conn.dialect.name, keys)})
    return set(found)


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


async def store_finished(conn: Conn, finished: Finished) -> None:
    """Record a `finished` frame's key (seq -1: it follows every submission of its task)."""
    await conn.execute(
        _STORE,
        {
            "b_key": finished.key,
            "b_task": finished.task_id,
            "b_seq": -1,
            "b_status": finished.state,
            "b_data": json.dumps(finished.data),
            "b_finish": 1,
            "b_at": now(),
        },
    )
