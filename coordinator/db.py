"""The coordinator's open database (SQLite or PostgreSQL) and its serialised transactions.

Every read or write goes through `Database.transaction()`, which yields a SQLAlchemy
AsyncConnection inside one transaction: committed when the block ends, rolled back if it raises.
One asyncio lock per process admits one transaction at a time, on both backends, so a
transaction's statements never interleave with another coroutine's (the store's read-then-write
steps rely on it). Timestamps are Unix seconds (UTC) as double precision, so that timeout
arithmetic stays in SQL.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coordinator.db_engine import make_engine
from coordinator.db_location import Location
from coordinator.db_version import prepare


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> float:
    return time.time()


class Database:
    """The open database; use `transaction()` for every access."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, location: Location) -> Database:
        """Open the database at `location`, made at the head schema if empty; UnusableDatabase
        (coordinator/db_location.py) if it cannot be reached or is not at the head schema."""
        await prepare(location)
        return cls(make_engine(location))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """Run statements as one transaction: committed on success, rolled back on error."""
        async with self._lock, self._engine.begin() as conn:
            yield conn

    async def close(self) -> None:
        await self._engine.dispose()
