"""Which databases this coordinator uses: their schema revision, checked before any use.

- Empty: created at the head revision (every command that opens the database does this).
- At head: used.
- At an older revision: refused until `device-coordinator migrate` upgrades it. An upgrade may
  copy whole tables and older coordinators cannot use the result, so it is a step the operator
  takes (after a backup), never a side effect of a restart.
- At a revision this coordinator does not know (a newer one's): refused.
- A SQLite file from before migrations (`user_version` 0 or 1, no `alembic_version` table): it
  is revision 0001 if its tables and columns are exactly that revision's, else it is refused
  naming what differs.
- Anything else (not SQLite, another program's tables): refused.

Migrated SQLite files carry `user_version` 2, which coordinators from before migrations refuse
as newer instead of writing rows they lack columns for. Every refusal is an UnusableDatabase
whose message names the database, what is wrong and what to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa

from coordinator import db_sqlite, migrate
from coordinator.db_engine import CONNECT_TIMEOUT_S, SQLITE_BUSY_TIMEOUT_S, make_engine
from coordinator.db_location import Location, UnusableDatabase

SQLITE_USER_VERSION = 2
"""`PRAGMA user_version` of a migrated SQLite file (1 was the last one before migrations)."""
LEGACY_REVISION = "0001"
SCHEMA_LOCK = 0x64657669636561
"""The PostgreSQL advisory lock held while a database is checked or migrated."""
LOCK_WAIT_S = SQLITE_BUSY_TIMEOUT_S
"""How long a check or migration waits for another one (or, on SQLite, any writer) to end."""
_VERSION_TABLE = "alembic_version"

T = TypeVar("T")


class SchemaError(UnusableDatabase):
    """The database is not at a schema this coordinator can use; the message says why."""


@dataclass(frozen=True)
class _Found:
    revision: str | None
    """None: an empty database."""
    legacy: bool
    """A SQLite file from before migrations, checked to be LEGACY_REVISION but not stamped."""


def _advice(location: Location) -> str:
    if location.sqlite_file is not None:
        return "move it away or use another --data-dir"
    return "use another database"


def _columns(conn: sa.Connection) -> dict[str, list[str]]:
    inspector = sa.inspect(conn)
    return {
        table: [str(column["name"]) for column in inspector.get_columns(table)]
        for table in inspector.get_table_names()
        if table != _VERSION_TABLE
    }


def _legacy_columns() -> dict[str, list[str]]:
    """The tables and columns of LEGACY_REVISION, as its migration makes them."""
    engine = sa.create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            migrate.upgrade_to(conn, LEGACY_REVISION)
            return _columns(conn)
    finally:
        engine.dispose()


def _difference(found: dict[str, list[str]], expected: dict[str, list[str]]) -> str | None:
    for table, columns in expected.items():
        if table not in found:
            return f"it has no table {table}"
        if found[table] != columns:
            return f"its table {table} has columns {found[table]}, not {columns}"
    extra = sorted(set(found) - set(expected))
    return f"it has tables this coordinator does not know: {extra}" if extra else None


def _find(conn: sa.Connection, location: Location) -> _Found:
    where, advice = str(location), _advice(location)
    tables = set(sa.inspect(conn).get_table_names())
    user_version = None
    if location.sqlite_file is not None:
        user_version = int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())
        if user_version > SQLITE_USER_VERSION:
            raise SchemaError(
                f"{where} has schema version {user_version}, newer than this coordinator's "
                f"{SQLITE_USER_VERSION}; run a newer coordinator, or {advice}"
            )
    if _VERSION_TABLE in tables:
        revision = migrate.current(conn)
        if revision is None:
            raise SchemaError(f"{where} has an empty {_VERSION_TABLE} table; {advice}")
        if not migrate.is_known(revision):
            raise SchemaError(
                f"{where} is at schema revision {revision}, which this coordinator does not "
                f"know (its newest is {migrate.head()}): a newer coordinator made it; run that "
                f"one, or {advice}"
            )
        return _Found(revision, legacy=False)
    if not tables:
        return _Found(None, legacy=False)
    legacy = _legacy_columns()
    if user_version in (0, 1) and tables & set(legacy):
        difference = _difference(_columns(conn), legacy)
        if difference is not None:
            raise SchemaError(
                f"{where} was made by another version of the coordinator: {difference}; {advice}"
            )
        return _Found(LEGACY_REVISION, legacy=True)
    raise SchemaError(
        f"{where} is not a coordinator database: it has tables ({', '.join(sorted(tables))}) "
        f"but no {_VERSION_TABLE}; {advice}"
    )


def _upgrade(conn: sa.Connection, location: Location, found: _Found) -> None:
    """Upgrade to head inside the caller's transaction; on SQLite also check every foreign key
    (the batch copies ran without them) and set the migrated `user_version`. A failure is a
    SchemaError: the caller's rollback leaves the database as it was."""
    try:
        migrate.upgrade(conn, stamp=found.revision if found.legacy else None)
    except Exception as exc:
        raise SchemaError(
            f"upgrading {location} from schema revision {found.revision or '(empty)'} to "
            f"{migrate.head()} failed ({type(exc).__name__}: {exc}); it is left unchanged"
        ) from exc
    if location.sqlite_file is not None:
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise SchemaError(
                f"{location}: after the upgrade, {len(broken)} row(s) break a foreign key "
                f"(first: {tuple(broken[0])}); nothing was changed"
            )
        conn.exec_driver_sql(f"PRAGMA user_version = {SQLITE_USER_VERSION}")


async def _in_transaction(location: Location, work: Callable[[sa.Connection], T]) -> T:
    """Run `work` in one transaction on a connection made for checks and migrations."""
    if location.sqlite_file is not None:
        try:
            await asyncio.to_thread(db_sqlite.ready, location.sqlite_file)
        except db_sqlite.NotSqlite as exc:
            raise SchemaError(
                f"{location} is not a usable SQLite file ({exc}); {_advice(location)}"
            ) from None
    engine = make_engine(location, for_migrations=True)
    try:
        try:
            async with asyncio.timeout(2 * CONNECT_TIMEOUT_S):
                conn = await engine.connect()
        except (sa.exc.DBAPIError, OSError, TimeoutError) as exc:
            raise _unreachable(location, exc) from None
        try:
            async with conn.begin():
                if location.sqlite_file is None:
                    # Two coordinators starting on one empty database would both create it:
                    # each check waits for the other's, as SQLite's BEGIN IMMEDIATE makes it.
                    await conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_WAIT_S}s'"))
                    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK)))
                result = await conn.run_sync(work)
        except sa.exc.DBAPIError as exc:
            if _lock_wait(exc):
                raise _locked(location) from None
            raise
        finally:
            await conn.close()
    finally:
        await engine.dispose()
    if location.sqlite_file is not None and not await asyncio.to_thread(
        db_sqlite.use_wal, location.sqlite_file, LOCK_WAIT_S
    ):
        raise _locked(location)
    return result


def _locked(location: Location) -> UnusableDatabase:
    return UnusableDatabase(
        f"{location} stayed locked by another process for {LOCK_WAIT_S} s (another "
        "device-coordinator migrating or checking it?); try again"
    )


def _lock_wait(exc: sa.exc.DBAPIError) -> bool:
    """Whether `exc` is a wait for a lock that ran out (SQLITE_BUSY, PostgreSQL's 55P03)."""
    orig = exc.orig
    return (
        getattr(orig, "sqlite_errorname", None) == "SQLITE_BUSY"
        or getattr(orig, "sqlstate", None) == "55P03"
    )


def _unreachable(location: Location, exc: BaseException) -> UnusableDatabase:
    if isinstance(exc, TimeoutError):
        reason = f"no answer within {CONNECT_TIMEOUT_S} s"
    else:
        reason = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    return UnusableDatabase(f"cannot connect to the database {location}: {reason}")


async def prepare(location: Location) -> None:
    """Check the database is at head, creating it there if empty; UnusableDatabase if not."""

    def check(conn: sa.Connection) -> None:
        found = _find(conn, location)
        if found.revision is None:
            _upgrade(conn, location, found)
        elif found.revision != migrate.head():
            raise SchemaError(
                f"{location} is at schema revision {found.revision}, older than this "
                f"coordinator's {migrate.head()}; back it up, then run `device-coordinator "
                "migrate` with the same --data-dir or --database"
            )

    await _in_transaction(location, check)


async def upgrade(location: Location) -> tuple[str | None, str]:
    """Upgrade the database to head (all or nothing); (revision before, revision after)."""

    def run(conn: sa.Connection) -> tuple[str | None, str]:
        found = _find(conn, location)
        if found.revision != migrate.head():
            _upgrade(conn, location, found)
        return found.revision, migrate.head()

    return await _in_transaction(location, run)


async def revision(location: Location) -> str | None:
    """The database's schema revision (None: empty), creating and migrating nothing (a SQLite
    file is made private and put in WAL mode, as every open does); UnusableDatabase if it cannot
    be reached or is not a coordinator database (`device-coordinator doctor`)."""
    return await _in_transaction(location, lambda conn: _find(conn, location).revision)
