"""The connection every store function is given: SQLAlchemy Core statements, awaited, on either
backend.

- PostgreSQL: SQLAlchemy's AsyncConnection on asyncpg, wrapped as it is.
- SQLite: a synchronous SQLAlchemy connection (pysqlite) called on the event loop itself
  (coordinator/sqlite_conn.py says why that does not block it). Its methods are async only so
  that a store function reads the same on both backends.

Hot statements are built once, at import, with `sa.bindparam` for what changes per call:
SQLAlchemy then finds each one's compiled form in its cache instead of building and hashing a
new statement tree per call, which bench/farm.py measured at several times a statement's cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class Conn:
    """One transaction's connection (coordinator/db.py's `Database.transaction()`)."""

    dialect: sa.Dialect

    async def execute(
        self, statement: sa.Executable, parameters: Params | None = None
    ) -> sa.CursorResult[Any]:
        raise NotImplementedError

    async def scalar(self, statement: sa.Executable, parameters: Params | None = None) -> Any:
        raise NotImplementedError

    async def scalars(
        self, statement: sa.Executable, parameters: Params | None = None
    ) -> sa.ScalarResult[Any]:
        raise NotImplementedError


class LoopConn(Conn):
    """A synchronous connection used on the event loop (SQLite)."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect

    async def execute(
        self, statement: sa.Executable, parameters: Params | None = None
    ) -> sa.CursorResult[Any]:
        return self._conn.execute(statement, parameters)

    async def scalar(self, statement: sa.Executable, parameters: Params | None = None) -> Any:
        return self._conn.execute(statement, parameters).scalar()

    async def scalars(
        self, statement: sa.Executable, parameters: Params | None = None
    ) -> sa.ScalarResult[Any]:
        return self._conn.execute(statement, parameters).scalars()


class AsyncConn(Conn):
    """An asyncio connection (PostgreSQL)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.dialect = conn.dialect

    async def execute(
        self, statement: sa.Executable, parameters: Params | None = None
    ) -> sa.CursorResult[Any]:
        return await self._conn.execute(statement, parameters)

    async def scalar(self, statement: sa.Executable, parameters: Params | None = None) -> Any:
        return (await self._conn.execute(statement, parameters)).scalar()

    async def scalars(
        self, statement: sa.Executable, parameters: Params | None = None
    ) -> sa.ScalarResult[Any]:
        return (await self._conn.execute(statement, parameters)).scalars()
