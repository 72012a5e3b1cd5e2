"""The idempotency table: the key of every `submit` and `finished` whose effect was committed."""

from __future__ import annotations

import json

import aiosqlite

from agent.protocol import Finished, Submit
from coordinator.db import now


async def is_stored(conn: aiosqlite.Connection, key: str) -> bool:
    async with conn.execute("SELECT 1 FROM submissions WHERE key = ?", (key,)) as cur:
        return await cur.fetchone() is not None


async def store(conn: aiosqlite.Connection, submit: Submit) -> None:
    """Record the key; call inside the transaction that applies the submission's effect."""
    await conn.execute(
        "INSERT INTO submissions (key, task_id, seq, status, data, finish, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            submit.key,
            submit.task_id,
            submit.seq,
            submit.status,
            json.dumps(submit.data),
            int(submit.finish),
            now(),
        ),
    )


async def store_finished(conn: aiosqlite.Connection, finished: Finished) -> None:
    """Record a `finished` frame's key (seq -1: it follows every submission of its task)."""
    await conn.execute(
        "INSERT INTO submissions (key, task_id, seq, status, data, finish, created_at) "
        "VALUES (?, ?, -1, ?, ?, 1, ?)",
        (finished.key, finished.task_id, finished.state, json.dumps(finished.data), now()),
    )
