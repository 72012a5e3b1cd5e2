"""The coordinator's open database (SQLite or PostgreSQL) and its serialised transactions.

Every read or write goes through `Database.transaction()`, which yields a Conn
(coordinator/db_conn.py) inside one transaction: committed when the block ends, rolled back if
it raises. One asyncio lock per process admits one transaction at a time, on both backends, so
a transaction's statements never interleave with another coroutine's (the store's
read-then-write steps rely on it). Timestamps are Unix seconds (UTC) as double precision, so
that timeout arithmetic stays in SQL.

SQLite runs on the event loop (coordinator/sqlite_conn.py); PostgreSQL through asyncpg, with a
bounded connect and statement time (coordinator/db_engine.py), on one connection kept open
between transactions: as transactions run one at a time, a pool's checkout and checkin (with
SQLAlchemy's begin and commit around them) were per-transaction work for nothing: half the
coordinator's CPU for a transaction of two statements (bench/pgtxn.py). A transaction that fails
to end cleanly drops that connection; the next one opens another.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coordinator.db_conn import AsyncConn, Conn
from coordinator.db_engine import make_engine
from coordinator.db_location import Location
from coordinator.db_version import prepare
from coordinator.sqlite_conn import SqliteOnLoop


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> float:
    return time.time()


class Database:
    """The open database; use `transaction()` for every access."""

    def __init__(self, sqlite: SqliteOnLoop | None, engine: AsyncEngine | None) -> None:
        self._sqlite = sqlite
        self._engine = engine
        self._held: AsyncConnection | None = None
        """PostgreSQL: the connection every transaction runs on, opened at the first."""
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, location: Location) -> Database:
        """Open the database at `location`, made at the head schema if empty; UnusableDatabase
        (coordinator/db_location.py) if it cannot be reached or is not at the head schema."""
        await prepare(location)
        if location.sqlite_file is not None:
            return cls(SqliteOnLoop(location.sqlite_file), None)
        return cls(None, make_engine(location))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """Run statements as one transaction: committed on success, rolled back on error; then
        the callbacks given to the connection's `after_commit`, if it committed."""
        async with self._lock:
            if self._sqlite is not None:
                async with self._sqlite.transaction() as conn:
                    conn.take_after_commit()
                    yield conn
            else:
                conn = AsyncConn(await self._connection())
                try:
                    yield conn
                    await conn.end(commit=True)
                except BaseException:
                    await self._roll_back(conn)
                    raise
        for callback in conn.take_after_commit():
            callback()

    async def _connection(self) -> AsyncConnection:
        if self._held is None or self._held.closed or self._held.invalidated:
            assert self._engine is not None
            self._held = await self._engine.connect()
        return self._held

    async def _roll_back(self, conn: AsyncConn) -> None:
        """Roll back a transaction that raised; a connection that cannot (lost, or busy with
        a statement its cancelled caller left) is dropped."""
        try:
            await conn.end(commit=False)
        except Exception:
            await self._drop()  # the error the transaction raised is the one to report
            return
        except BaseException:
            await self._drop()
            raise
        if conn.lost():
            await self._drop()

    async def _drop(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            await held.invalidate()
            await held.close()

    async def close(self) -> None:
        if self._sqlite is not None:
            await self._sqlite.close()
        if self._engine is not None:
            await self._drop()
            await self._engine.dispose()
