"""The idempotency table: the key of every `submit` and `finished` whose effect was committed."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from agent.protocol import Finished, Submit
from coordinator import schema as t
from coordinator.db import now
from coordinator.db_conn import Conn


async def is_stored(conn: Conn, key: str) -> bool:
    found = await conn.scalar(sa.select(t.submissions.c.key).where(t.submissions.c.key == key))
    return found is not None


async def stored_keys(conn: Conn, keys: list[str]) -> set[str]:
    """Which of `keys` are already stored: one query per 500 keys, not one per key."""
    found: set[str] = set()
    for first in range(0, len(keys), 500):
        chunk = keys[first : first + 500]
        found.update(
            await conn.scalars(sa.select(t.submissions.c.key).where(t.submissions.c.key.in_(chunk)))
        )
    return found


async def submissions_of(conn: Conn, task_id: str) -> list[dict[str, Any]]:
    """The task's stored `submit` frames (not its `finished`), in the script's order (seq)."""
    s = t.submissions.c
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
        sa.insert(t.submissions),
        [
            {
                "key": s.key,
                "task_id": s.task_id,
                "seq": s.seq,
                "status": s.status,
                "data": json.dumps(s.data),
                "finish": int(s.finish),
                "created_at": stamp,
            }
            for s in submits
        ],
    )


async def store_finished(conn: Conn, finished: Finished) -> None:
    """Record a `finished` frame's key (seq -1: it follows every submission of its task)."""
    await conn.execute(
        sa.insert(t.submissions).values(
            key=finished.key,
            task_id=finished.task_id,
            seq=-1,
            status=finished.state,
            data=json.dumps(finished.data),
            finish=1,
            created_at=now(),
        )
    )
