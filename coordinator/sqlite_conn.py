"""The coordinator's SQLite connection, used on the event loop itself, without a thread.

Why not a thread per call (aiosqlite): bench/farm.py measured the hop (a queue put, a thread
switch, a wakeup of the loop through its self-pipe) at most of the coordinator's CPU per task,
while the statements themselves take microseconds against SQLite's page cache. So statements
run here, in the loop's thread; the two things that could make one wait are kept off it:
- the fsync of a WAL checkpoint: automatic checkpoints are off on this connection, and
  `checkpoint()` (run in a thread, by coordinator/db.py) does them on a connection of its own;
- another process's write lock (a CLI command writing a token): the busy timeout here is 0 and
  coordinator/db.py retries BEGIN IMMEDIATE with asyncio sleeps.

The API is the subset of aiosqlite's that the store modules use, async so that a store function
reads the same whatever runs it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

Row = sqlite3.Row
Params = tuple[Any, ...] | list[Any] | dict[str, Any]


class Cursor:
    """A statement's result, read at once or row by row."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    async def fetchone(self) -> Row | None:
        row: Row | None = self._cursor.fetchone()
        return row

    async def fetchall(self) -> list[Row]:
        return self._cursor.fetchall()


class _Statement:
    """`await conn.execute(...)` or `async with conn.execute(...) as cur`."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = Cursor(cursor)

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._done().__await__()

    async def _done(self) -> Cursor:
        return self._cursor

    async def __aenter__(self) -> Cursor:
        return self._cursor

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class Connection:
    """One SQLite connection in autocommit mode: transactions are begun explicitly."""

    def __init__(self, path: Path) -> None:
        self._raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._raw.row_factory = sqlite3.Row
        for pragma in (
            "PRAGMA busy_timeout=0",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA wal_autocheckpoint=0",
        ):
            self._raw.execute(pragma)

    def execute(self, sql: str, params: Params = ()) -> _Statement:
        return _Statement(self._raw.execute(sql, params))

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return self._raw.execute(sql, params).fetchall()

    async def executemany(self, sql: str, rows: Iterable[Params]) -> Cursor:
        return Cursor(self._raw.executemany(sql, rows))

    def begin(self) -> None:
        """BEGIN IMMEDIATE; sqlite3.OperationalError at once if another process writes."""
        self._raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._raw.execute("COMMIT")

    def rollback(self) -> None:
        if self._raw.in_transaction:
            self._raw.execute("ROLLBACK")

    def close(self) -> None:
        self._raw.close()


def checkpoint(path: Path) -> None:
    """Copy the WAL into the database file where no reader needs it (blocking: run in a thread)."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        db.close()
