"""Rows of a running coordinator's database, for tests that check what it stored: its SQLite
file, or its PostgreSQL database when the suite runs there (tests/pg.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg

from coordinator.db_location import DB_FILE_NAME

QUERY_TIMEOUT_S = 30.0


def rows(data_dir: Path, database: str | None, sql: str) -> list[tuple[Any, ...]]:
    """`sql`'s rows, from the SQLite file in `data_dir`, or from PostgreSQL `database`."""
    if database is None:
        with closing(sqlite3.connect(data_dir / DB_FILE_NAME, timeout=QUERY_TIMEOUT_S)) as db:
            return db.execute(sql).fetchall()
    return asyncio.run(_postgresql_rows(database, sql))


def commit_order(database: str | None) -> str:
    """An ORDER BY for the order rows of an insert-only table were committed in. PostgreSQL's:
    by the inserting transaction's id (one coordinator runs one transaction at a time, so ids
    follow commits), then by the row's place in the heap (appended in insertion order)."""
    return "rowid" if database is None else "xmin::text::bigint, ctid"


async def _postgresql_rows(database: str, sql: str) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(database, timeout=QUERY_TIMEOUT_S)
    try:
        return [tuple(r) for r in await connection.fetch(sql, timeout=QUERY_TIMEOUT_S)]
    finally:
        await connection.close(timeout=QUERY_TIMEOUT_S)
