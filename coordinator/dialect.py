"""The two things the store says differently on SQLite and PostgreSQL: upserts, and numbers for
`seq` columns. Every other statement is portable SQLAlchemy Core.

`seq` numbers: PostgreSQL takes them from the table's sequence `<table>_seq_seq`, so replicas
never hand out the same one. SQLite takes MAX(seq) + 1, which is safe only because every
transaction holds SQLite's write lock from its start (BEGIN IMMEDIATE, coordinator/db_engine.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert(conn: AsyncConnection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT INTO `table` in the connection's dialect, which has `on_conflict_do_update` and
    `on_conflict_do_nothing` (the same arguments on both) and `.excluded`."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def next_seqs(conn: AsyncConnection, table: sa.Table, count: int) -> list[int]:
    """`count` new `seq` numbers for rows of `table`, increasing: give them to the rows in the
    order they are made."""
    if count <= 0:
        return []
    if conn.dialect.name == "postgresql":
        taken = await conn.scalars(
            sa.select(sa.func.nextval(f"{table.name}_seq_seq")).select_from(
                sa.func.generate_series(1, count)
            )
        )
        return sorted(taken)
    top = int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.max(table.c.seq), 0))) or 0)
    return list(range(top + 1, top + 1 + count))
