"""The three things the store says differently on SQLite and PostgreSQL: upserts, numbers for
`seq` columns, and a list of ids (as a table, or as the values a column may take). Every other
statement is portable SQLAlchemy Core.

`seq` numbers: PostgreSQL takes them from the table's sequence `<table>_seq_seq`, so replicas
never hand out the same one. SQLite takes MAX(seq) + 1, which is safe only because every
transaction holds SQLite's write lock from its start (BEGIN IMMEDIATE, coordinator/db_engine.py).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from coordinator.db_conn import Conn


def insert(conn: Conn, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT INTO `table` in the connection's dialect, which has `on_conflict_do_update` and
    `on_conflict_do_nothing` (the same arguments on both) and `.excluded`."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def next_seqs(conn: Conn, table: sa.Table, count: int) -> list[int]:
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


def id_list(dialect_name: str, name: str) -> sa.TableValuedAlias:
    """A one-column table (`value`) of the ids passed as parameter `name` (give its value with
    `id_list_value`): one parameter however many ids, so the statement's compiled form is
    reused. SQLite reads a JSON array (json_each), PostgreSQL a text[] (unnest)."""
    if dialect_name == "postgresql":
        ids = sa.cast(sa.bindparam(name), postgresql.ARRAY(sa.Text))
        return sa.func.unnest(ids).table_valued("value").render_derived(name=name)
    return sa.func.json_each(sa.bindparam(name, type_=sa.Text)).table_valued("value").alias(name)


def among(dialect_name: str, column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
    """`column` is one of the ids passed as parameter `name` (its value from `id_list_value`):
    `= ANY(array)` on PostgreSQL, `IN (SELECT value FROM json_each(...))` on SQLite. Both walk
    an index on `column`; a join with `id_list` does not on PostgreSQL, whose planner guesses
    100 ids for `unnest` and then scans the whole table (0.9 ms a lookup of one submission key
    among 8,000 in bench/farm.py)."""
    if dialect_name == "postgresql":
        return column == sa.any_(sa.cast(sa.bindparam(name), postgresql.ARRAY(sa.Text)))
    ids = sa.func.json_each(sa.bindparam(name, type_=sa.Text)).table_valued("value")
    return column.in_(sa.select(ids.c.value))


def id_list_value(dialect_name: str, ids: list[str]) -> object:
    return ids if dialect_name == "postgresql" else json.dumps(ids)
