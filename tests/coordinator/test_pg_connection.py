"""The coordinator's one PostgreSQL connection, kept open for its transactions (coordinator/db.py):
a transaction that fails, is cancelled or loses its connection leaves nothing behind. Always on
PostgreSQL (SQLite's connection is a file on the event loop), so the SQLite run of
scripts/test.sh leaves this file out, as it does the replica tests.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from coordinator import schema
from coordinator.db import Database
from coordinator.db_location import postgresql_location
from coordinator.store_hosts import set_api_key
from tests.pg import postgresql_database


async def _api_keys(db: Database) -> list[str]:
    async with db.transaction() as conn:
        return list(await conn.scalars(sa.select(schema.api_keys.c.name)))


async def test_a_failed_or_cancelled_transaction_leaves_nothing_and_the_next_one_runs() -> None:
    """PostgreSQL's transactions share one connection kept open (coordinator/db.py): one that
    raises, one cancelled in the middle of a statement and one whose connection the server
    ends must each leave nothing behind, and the next transaction must run."""
    db = await Database.open(postgresql_location(postgresql_database()))
    try:
        with pytest.raises(RuntimeError, match="undone"):
            async with db.transaction() as conn:
                await set_api_key(conn, "raised", "0" * 64)
                raise RuntimeError("undone")
        assert await _api_keys(db) == []

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5), db.transaction() as conn:
                await set_api_key(conn, "cancelled", "0" * 64)
                await conn.execute(sa.text("SELECT pg_sleep(30)"))
        assert await _api_keys(db) == []

        with pytest.raises(sa.exc.DBAPIError):
            async with db.transaction() as conn:
                await set_api_key(conn, "ended", "0" * 64)
                await conn.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
        async with db.transaction() as conn:
            await set_api_key(conn, "kept", "0" * 64)
        assert await _api_keys(db) == ["kept"]
    finally:
        await db.close()
