"""The SQLAlchemy engine of a database location, with each backend's connection settings.

SQLite (in WAL mode, set by coordinator/db_sqlite.py): a 30 s busy timeout, synchronous=NORMAL,
foreign keys on, and every transaction begun with BEGIN IMMEDIATE (SQLAlchemy's documented
recipe for pysqlite/aiosqlite): it takes the write lock at once, so a transaction that reads and
then writes cannot fail half-way for want of the lock, and no two transactions interleave, in
this process or another. PostgreSQL (asyncpg): a bounded connect and statement time.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from coordinator.db_location import Location

SQLITE_BUSY_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_S = 60


def make_engine(location: Location, *, foreign_keys: bool = True) -> AsyncEngine:
    """An engine for `location`. `foreign_keys=False` is for SQLite migrations only: a batch
    ALTER copies a table and drops the original, which enforced keys would refuse."""
    if location.sqlite_file is None:
        return create_async_engine(
            location.url,
            connect_args={"timeout": CONNECT_TIMEOUT_S, "command_timeout": STATEMENT_TIMEOUT_S},
        )
    engine = create_async_engine(location.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    pragmas = (
        f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}",
        "PRAGMA synchronous=NORMAL",
        f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}",
    )

    @sa.event.listens_for(engine.sync_engine, "connect")
    def setup(dbapi_connection: Any, record: Any) -> None:
        # The driver must not BEGIN on its own: `begin` below does, IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    @sa.event.listens_for(engine.sync_engine, "begin")
    def begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
