"""The SQLAlchemy engine of a database location, with each backend's connection settings.

SQLite (in WAL mode, set by coordinator/db_sqlite.py): a 30 s busy timeout, synchronous=NORMAL,
foreign keys on, and every transaction begun with BEGIN IMMEDIATE (SQLAlchemy's documented
recipe for pysqlite/aiosqlite): it takes the write lock at once, so a transaction that reads and
then writes cannot fail half-way for want of the lock, and no two transactions interleave, in
this process or another. PostgreSQL (asyncpg): a bounded connect and statement time.

An engine `for_migrations` (the schema check and `migrate`) differs: SQLite's foreign keys are off
(a batch ALTER copies a table and drops the original, which enforced keys would refuse; the
upgrade checks them before it commits) and PostgreSQL statements have no time bound (an upgrade
may rewrite a large table).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from coordinator.db_location import Location

SQLITE_BUSY_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_S = 60


def make_engine(location: Location, *, for_migrations: bool = False) -> AsyncEngine:
    if location.sqlite_file is None:
        statement_timeout = None if for_migrations else STATEMENT_TIMEOUT_S
        return create_async_engine(
            location.url,
            connect_args={"timeout": CONNECT_TIMEOUT_S, "command_timeout": statement_timeout},
        )
    engine = create_async_engine(location.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    pragmas = (
        f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}",
        "PRAGMA synchronous=NORMAL",
        f"PRAGMA foreign_keys={'OFF' if for_migrations else 'ON'}",
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
