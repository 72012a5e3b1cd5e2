"""The coordinator's SQLite connection, used on the event loop itself, without a thread.

Why not a thread per call (aiosqlite): bench/farm.py measured the hop (a queue put, a thread
switch, a wakeup of the loop through its self-pipe) at most of the coordinator's CPU per task,
while the statements themselves take microseconds against SQLite's page cache. So statements
run here, in the loop's thread, through one synchronous SQLAlchemy connection; the two things
that could make one wait are kept off it:
- the fsync of a WAL checkpoint: automatic checkpoints are off on this connection, and a thread
  runs `checkpoint()` on a connection of its own once a second;
- another process's write lock (a CLI command writing a token): the busy timeout here is 0 and
  BEGIN IMMEDIATE is retried in asyncio sleeps.
Opening is the exception: it waits in SQLite's busy handler, up to LOCK_WAIT_S, for another
process that holds the file to itself for a moment (recovering the WAL after its first open, or
checkpointing and removing it at its last close). It happens once, before the loop serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_random_exponential

from coordinator.db_conn import Conn, LoopConn

log = logging.getLogger(__name__)

LOCK_WAIT_S = 30.0
"""How long a transaction waits for another process's write lock before it fails."""
CHECKPOINT_INTERVAL_S = 1.0
_PRAGMAS = (
    f"PRAGMA busy_timeout={LOCK_WAIT_S * 1000:.0f}",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA wal_autocheckpoint=0",
    "PRAGMA busy_timeout=0",
)


class SqliteOnLoop:
    """One SQLite connection in WAL mode; `transaction()` begins each one IMMEDIATE."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._engine = sa.create_engine(
            sa.URL.create("sqlite+pysqlite", database=str(path)),
            poolclass=sa.StaticPool,
            connect_args={"check_same_thread": False},
        )

        @sa.event.listens_for(self._engine, "connect")
        def setup(dbapi_connection: Any, record: Any) -> None:
            # The driver must not BEGIN on its own: `begin` below does, IMMEDIATE.
            dbapi_connection.isolation_level = None
            for pragma in _PRAGMAS:
                dbapi_connection.execute(pragma)

        @sa.event.listens_for(self._engine, "begin")
        def begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        self._conn = self._engine.connect()
        self._facade = LoopConn(self._conn)
        self._checkpoints = asyncio.create_task(self._checkpoint_regularly())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """One transaction: committed when the block ends, rolled back if it raises (or if its
        COMMIT fails, so that the next one can begin)."""
        with await self._begin():
            yield self._facade

    async def _begin(self) -> sa.RootTransaction:
        try:
            return self._conn.begin()
        except sa.exc.OperationalError as exc:
            if not _locked(exc):
                raise
        # Another process (a CLI command) holds the write lock for a moment: wait for it here,
        # in asyncio sleeps, not in SQLite's busy handler, which would block the loop.
        log.info("the database is locked by another process: waiting (up to %g s)", LOCK_WAIT_S)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_locked),
            wait=wait_random_exponential(multiplier=0.005, max=0.25),
            stop=stop_after_delay(LOCK_WAIT_S),
            reraise=True,
        ):
            with attempt:
                return self._conn.begin()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _checkpoint_regularly(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL_S)
            try:
                await asyncio.to_thread(checkpoint, self._path)
            except sqlite3.Error as exc:
                log.warning("WAL checkpoint of %s failed (retried): %s", self._path, exc)

    async def close(self) -> None:
        self._checkpoints.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._checkpoints
        self._conn.close()
        self._engine.dispose()


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sa.exc.OperationalError) and "locked" in str(exc.orig)


def checkpoint(path: Path) -> None:
    """Copy the WAL into the database file where no reader needs it (blocking: run in a thread)."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        db.close()
