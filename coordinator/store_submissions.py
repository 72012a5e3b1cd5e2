"""The idempotency table: the key of every `submit` and `finished` whose effect was committed."""

from __future__ import annotations

import json

from agent.protocol import Finished, Submit
from coordinator.db import now
from coordinator.sqlite_conn import Connection


async def is_stored(conn: Connection, key: str) -> bool:
    async with conn.execute("SELECT 1 FROM submissions WHERE key = ?", (key,)) as cur:
        return await cur.fetchone() is not None


async def stored_keys(conn: Connection, keys: list[str]) -> set[str]:
    """Which of `keys` are already stored: one query per 500 keys, not one per key."""
    found: set[str] = set()
    for first in range(0, len(keys), 500):
        chunk = keys[first : first + 500]
        rows = await conn.execute_fetchall(
            f"SELECT key FROM submissions WHERE key IN ({','.join('?' * len(chunk))})", chunk
        )
        found.update(str(r[0]) for r in rows)
    return found


async def store(conn: Connection, submits: list[Submit]) -> None:
    """Record the keys; call inside the transaction that applies the submissions' effects."""
    if not submits:
        return
    stamp = now()
    await conn.executemany(
        "INSERT INTO submissions (key, task_id, seq, status, data, finish, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (s.key, s.task_id, s.seq, s.status, json.dumps(s.data), int(s.finish), stamp)
            for s in submits
        ],
    )


async def store_finished(conn: Connection, finished: Finished) -> None:
    """Record a `finished` frame's key (seq -1: it follows every submission of its task)."""
    await conn.execute(
        "INSERT INTO submissions (key, task_id, seq, status, data, finish, created_at) "
        "VALUES (?, ?, -1, ?, ?, 1, ?)",
        (finished.key, finished.task_id, finished.state, json.dumps(finished.data), now()),
    )
