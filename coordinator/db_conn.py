"""The connection every store function is given: SQLAlchemy Core statements, awaited, on either
backend.

- PostgreSQL: SQLAlchemy's AsyncConnection on asyncpg.
- SQLite: a synchronous SQLAlchemy connection (pysqlite) called on the event loop itself
  (coordinator/sqlite_conn.py says why that does not block it). Its methods are async only so
  that a store function reads the same on both backends.

Statements on the hot paths (a dispatch pass, `started`, a final submission, `finished`) are
`Hot`: built once, at import, with `sa.bindparam` for what changes per call, and compiled once
per backend by SQLAlchemy; each call then runs that SQL on the driver itself: bench/farm.py
measured SQLAlchemy's per-call work (building a statement, its cache key, an execution context,
a result object, and on PostgreSQL its asyncio adaptation of asyncpg) at several times the
statement's own cost, and at most of the coordinator's CPU per task. On SQLite a Hot statement
runs on the driver's cursor; on PostgreSQL as an asyncpg prepared statement, prepared once per
connection, inside the transaction SQLAlchemy began on that connection. Its rows are plain named
tuples on both.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class Result(Protocol):
    """What store functions read of a statement's result (SQLAlchemy's CursorResult has it)."""

    @property
    def rowcount(self) -> int: ...

    def first(self) -> Any: ...

    def scalar(self) -> Any: ...

    def all(self) -> Sequence[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Hot:
    """A statement built once, run often (see the module's docstring). It may not use
    `expanding` parameters (`in_` a list): a list of ids goes in as one parameter
    (coordinator/dialect.py's `id_list`). `Hot.by_dialect` builds one whose SQL differs by
    backend, once per backend."""

    def __init__(self, statement: sa.Executable) -> None:
        self._build: Callable[[str], sa.Executable] = lambda _dialect: statement
        self._statements: dict[str, sa.Executable] = {}
        self._plans: dict[str, _Plan] = {}

    @classmethod
    def by_dialect(cls, build: Callable[[str], sa.Executable]) -> Hot:
        """`build(dialect name)` makes the statement."""
        hot = cls(sa.select(sa.null()))
        hot._build = build
        return hot

    def statement(self, dialect: sa.Dialect) -> sa.Executable:
        found = self._statements.get(dialect.name)
        if found is None:
            found = self._statements[dialect.name] = self._build(dialect.name)
        return found

    def plan(self, dialect: sa.Dialect) -> _Plan:
        found = self._plans.get(dialect.name)
        if found is None:
            found = self._plans[dialect.name] = _Plan(self.statement(dialect), dialect)
        return found


def one_of(column: sa.ColumnElement[Any], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """`column IN (values)` for a Hot statement: a parameter per value, where `in_` would make
    one `expanding` parameter."""
    return column.in_([sa.literal(value) for value in values])


class _Plan:
    """A Hot statement compiled for one backend: its SQL, and where each parameter goes."""

    def __init__(self, statement: sa.Executable, dialect: sa.Dialect) -> None:
        compiled = cast(SQLCompiler, cast(sa.ClauseElement, statement).compile(dialect=dialect))
        if "POSTCOMPILE" in compiled.string or compiled.positiontup is None:
            raise ValueError(f"not a Hot statement (`in_` a list? use one_of): {compiled.string}")
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup)
        self.fixed = {name: bind.effective_value for name, bind in compiled.binds.items()}
        """The values bound when the statement was built (literals in its expressions)."""
        processors = cast(Mapping[str, Callable[[Any], Any]], compiled._bind_processors)
        self.convert = [(i, processors[n]) for i, n in enumerate(self.names) if n in processors]
        """The parameters SQLAlchemy converts for the driver (e.g. a float column's to_float)."""

    def args(self, given: Mapping[str, Any]) -> list[Any]:
        fixed = self.fixed
        args = [given[name] if name in given else fixed[name] for name in self.names]
        for i, convert in self.convert:
            if args[i] is not None:
                args[i] = convert(args[i])
        return args


_ROW_TYPES: dict[tuple[str, ...], Any] = {}


def _row_type(names: tuple[str, ...]) -> Any:
    row_type = _ROW_TYPES.get(names)
    if row_type is None:
        row_type = _ROW_TYPES[names] = namedtuple("Row", names, rename=True)
    return row_type


class _Rows:
    """A Hot statement's result: all its rows, read at once, as named tuples."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def all(self) -> Sequence[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


def _cursor_result(cursor: Any) -> _Rows:
    """A Hot statement's result on SQLite."""
    description = cursor.description
    if description is None:
        return _Rows([], cursor.rowcount)
    make = _row_type(tuple(column[0] for column in description))._make
    return _Rows([make(row) for row in cursor.fetchall()], cursor.rowcount)


class Conn:
    """One transaction's connection (coordinator/db.py's `Database.transaction()`)."""

    dialect: sa.Dialect

    def __init__(self) -> None:
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once this transaction has committed (never if it rolls back): for
        what others must only learn of when they can read it (another replica's dispatch)."""
        self._after_commit.append(callback)

    def take_after_commit(self) -> list[Callable[[], None]]:
        """The callbacks given since the last take (Database.transaction takes them at the start
        of each transaction too: one connection may serve many, and a rolled-back one's go)."""
        callbacks, self._after_commit = self._after_commit, []
        return callbacks

    async def execute(
        self, statement: sa.Executable | Hot, parameters: Params | None = None
    ) -> Result:
        raise NotImplementedError

    async def scalar(self, statement: sa.Executable | Hot, parameters: Params | None = None) -> Any:
        return (await self.execute(statement, parameters)).scalar()

    async def scalars(
        self, statement: sa.Executable | Hot, parameters: Params | None = None
    ) -> list[Any]:
        """The first column of every row."""
        return [row[0] for row in await self.execute(statement, parameters)]


class LoopConn(Conn):
    """A synchronous connection used on the event loop (SQLite)."""

    def __init__(self, conn: sa.Connection) -> None:
        super().__init__()
        self._conn = conn
        self.dialect = conn.dialect

    async def execute(
        self, statement: sa.Executable | Hot, parameters: Params | None = None
    ) -> Result:
        if not isinstance(statement, Hot):
            return self._conn.execute(statement, parameters)
        plan = statement.plan(self.dialect)
        driver = self._conn.connection.driver_connection
        assert driver is not None
        if parameters is None or isinstance(parameters, Mapping):
            return _cursor_result(driver.execute(plan.sql, plan.args(parameters or {})))
        return _cursor_result(driver.executemany(plan.sql, [plan.args(p) for p in parameters]))


class AsyncConn(Conn):
    """An asyncio connection (PostgreSQL)."""

    def __init__(self, conn: AsyncConnection) -> None:
        super().__init__()
        self._conn = conn
        self.dialect = conn.dialect

    async def execute(
        self, statement: sa.Executable | Hot, parameters: Params | None = None
    ) -> Result:
        if not isinstance(statement, Hot):
            return await self._conn.execute(statement, parameters)
        plan = statement.plan(self.dialect)
        # SQLAlchemy's adaptation of asyncpg: it begins the transaction on its first statement,
        # and a Hot statement must run inside it.
        adapted = self._adapted()
        async with adapted._execute_mutex:
            if adapted._transaction is None:
                await adapted._start_transaction()
            prepared = await _prepared(adapted._connection, plan.sql)
            if parameters is None or isinstance(parameters, Mapping):
                records = await prepared.statement.fetch(*plan.args(parameters or {}))
                return _record_result(prepared, records)
            await prepared.statement.executemany([plan.args(p) for p in parameters])
            return _Rows([], -1)

    def _adapted(self) -> Any:
        """SQLAlchemy's adaptation of the asyncpg connection (it holds the transaction)."""
        sync = self._conn.sync_connection
        assert sync is not None
        return sync.connection.dbapi_connection

    async def end(self, commit: bool) -> None:
        """Commit or roll back the transaction, if one began. SQLAlchemy ends one it began
        itself (for a statement that is not Hot); one only Hot statements began is ended on
        asyncpg directly, without SQLAlchemy's per-call work."""
        if self._conn.in_transaction():
            await (self._conn.commit() if commit else self._conn.rollback())
            return
        adapted = self._adapted()
        transaction, adapted._transaction = adapted._transaction, None
        if transaction is not None:
            await (transaction.commit() if commit else transaction.rollback())

    def lost(self) -> bool:
        """Whether the connection to the server is gone."""
        return self._conn.invalidated or bool(self._adapted()._connection.is_closed())


class _Prepared:
    """A Hot statement prepared on one asyncpg connection, and the type of its rows."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self.make = _row_type(tuple(a.name for a in statement.get_attributes()))._make


_PREPARED: weakref.WeakKeyDictionary[Any, dict[str, _Prepared]] = weakref.WeakKeyDictionary()
"""Per asyncpg connection (gone with it), its prepared Hot statements by SQL."""


async def _prepared(driver: Any, sql: str) -> _Prepared:
    by_sql = _PREPARED.get(driver)
    if by_sql is None:
        by_sql = _PREPARED[driver] = {}
    found = by_sql.get(sql)
    if found is None:
        found = by_sql[sql] = _Prepared(await driver.prepare(sql))
    return found


def _record_result(prepared: _Prepared, records: list[Any]) -> _Rows:
    """A Hot statement's result on PostgreSQL; its rowcount is from the server's status
    (`UPDATE 3`, `SELECT 3`, `INSERT 0 3`)."""
    make = prepared.make
    status = prepared.statement.get_statusmsg() or ""
    last = status.rsplit(" ", 1)[-1]
    return _Rows([make(record) for record in records], int(last) if last.isdigit() else -1)
