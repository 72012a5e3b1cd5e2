"""The coordinator's database on the backend of this test session (SQLite, or PostgreSQL with
DEVICE_AGENT_TEST_DATABASE=postgresql): the schema the migrations make, the start check, an
upgrade that fails half-way, database URLs that cannot be used.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from coordinator import db_engine, db_version, migrate
from coordinator.db import Database
from coordinator.db_location import (
    DATABASE_ENV,
    Location,
    UnusableDatabase,
    postgresql_location,
    sqlite_location,
)
from coordinator.db_version import SchemaError, prepare, upgrade
from coordinator.schema import metadata
from coordinator.store_jobs import create_job, set_share
from coordinator.store_tasks import NewTask, create_tasks
from tests.coordinator.conftest import cli_environment, run_cli
from tests.pg import fresh_database


@pytest.fixture
def target(tmp_path: Path) -> Location:
    """A new, empty database on this session's backend."""
    url = fresh_database()
    if url is not None:
        return postgresql_location(url)
    (tmp_path / "data").mkdir()
    return sqlite_location(tmp_path / "data")


def _cli_args(location: Location) -> list[str]:
    if location.sqlite_file is not None:
        return ["--data-dir", str(location.sqlite_file.parent)]
    return ["--database", location.url.render_as_string(hide_password=False)]


@contextlib.asynccontextmanager
async def _connect(location: Location) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction committed at the end (the test's own engine)."""
    engine = create_async_engine(location.url)
    try:
        async with engine.begin() as conn:
            yield conn
    finally:
        await engine.dispose()


async def _execute(location: Location, *statements: str) -> None:
    async with _connect(location) as conn:
        for statement in statements:
            await conn.execute(sa.text(statement))


def _everything(conn: sa.Connection) -> list[Any]:
    """Every table's columns and indexes and every row: equal only if nothing changed."""
    inspector = sa.inspect(conn)
    found: list[Any] = []
    for table in sorted(inspector.get_table_names()):
        found.append((table, [(c["name"], str(c["type"])) for c in inspector.get_columns(table)]))
        found.append(sorted(str(index["name"]) for index in inspector.get_indexes(table)))
        rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()
        found.append(sorted((tuple(row) for row in rows), key=repr))
    return found


async def _snapshot(location: Location) -> list[Any]:
    async with _connect(location) as conn:
        return await conn.run_sync(_everything)


def _refusals(location: Location, files: Path) -> Iterator[str]:
    """The stderr of each command that opens the database, run against it (`serve` with its
    files in `files`, when on PostgreSQL); each must exit 2, with no traceback."""
    for command in (["token", "create", "h1"], ["serve", "--port", "1"], ["migrate"]):
        args = [*command, *_cli_args(location)]
        if command[0] == "serve" and location.sqlite_file is None:
            args += ["--data-dir", str(files)]
        done = run_cli(*args)
        assert done.returncode == 2, (command, done.stderr)
        assert "Traceback" not in done.stderr
        yield done.stderr


async def test_the_migrations_make_the_schema_the_code_declares(target: Location) -> None:
    """Tables, columns, types, defaults and indexes at head are coordinator/schema.py's."""
    await prepare(target)

    def differences(conn: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))

    async with _connect(target) as conn:
        assert await conn.run_sync(differences) == []


def test_an_empty_database_is_made_at_head_and_migrate_says_so(target: Location) -> None:
    done = run_cli("apikey", "create", "first", *_cli_args(target))
    assert done.returncode == 0, done.stderr
    again = run_cli("migrate", *_cli_args(target))
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"{target}: already at schema revision {migrate.head()}\n"


def test_commands_starting_together_on_an_empty_database_create_it_once(target: Location) -> None:
    """Each waits for the other's check (an advisory lock, or SQLite's write lock)."""
    commands = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "coordinator.cli.main",
                "apikey",
                "create",
                f"k{i}",
                *_cli_args(target),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_environment(),
        )
        for i in range(4)
    ]
    for command in commands:
        _, stderr = command.communicate(timeout=120)
        assert command.returncode == 0, stderr.decode()


async def test_a_check_waits_for_a_lock_only_so_long(
    target: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the database (PostgreSQL: the schema lock; SQLite: the write
    lock) past the bound makes a clear error, not a wait without end."""
    await prepare(target)
    monkeypatch.setattr(db_version, "LOCK_WAIT_S", 1)
    monkeypatch.setattr(db_engine, "SQLITE_BUSY_TIMEOUT_S", 1)
    async with _connect(target) as holder:
        if target.sqlite_file is None:
            await holder.execute(sa.select(sa.func.pg_advisory_xact_lock(db_version.SCHEMA_LOCK)))
        else:
            await holder.execute(sa.text("INSERT INTO scripts VALUES ('held', 'held')"))
        with pytest.raises(UnusableDatabase) as waited:
            await prepare(target)
        assert str(waited.value) == (
            f"{target} stayed locked by another process for 1 s (another device-coordinator "
            "migrating or checking it?); try again"
        )
    await prepare(target)


async def test_a_database_of_a_newer_coordinator_is_refused_with_exit_2(
    target: Location, tmp_path: Path
) -> None:
    await prepare(target)
    await _execute(target, "UPDATE alembic_version SET version_num = '9999'")
    for stderr in _refusals(target, tmp_path):
        assert (
            f"device-coordinator: error: {target} is at schema revision 9999, which this "
            f"coordinator does not know (its newest is {migrate.head()}): a newer coordinator "
            "made it; run that one, or "
        ) in stderr


async def test_a_database_of_another_program_is_refused_with_exit_2(
    target: Location, tmp_path: Path
) -> None:
    await _execute(target, "CREATE TABLE notes (body TEXT)", "INSERT INTO notes VALUES ('x')")
    before = await _snapshot(target)
    for stderr in _refusals(target, tmp_path):
        assert (
            f"device-coordinator: error: {target} is not a coordinator database: it has tables "
            "(notes) but no alembic_version; "
        ) in stderr
    assert await _snapshot(target) == before


async def test_a_migration_failing_half_way_leaves_the_database_untouched(
    target: Location, add_failing_migration: Callable[[], str]
) -> None:
    """A real Alembic run from head to the test's own revision, which fails after changing the
    schema and rows: the database is left at head with every row as it was."""
    head = migrate.head()
    db = await Database.open(target)
    try:
        async with db.transaction() as conn:
            job = await create_job(
                conn,
                name="kept",
                source="async def main(agent):\n    return {}\n",
                parameters={"p": 1},
                timeout_s=60,
                automation_id=None,
                owner="tests",
            )
            await set_share(conn, job.id, "bob", "shared_view")
            await create_tasks(conn, job, [NewTask({"i": i}, None, None) for i in range(3)])
    finally:
        await db.close()
    before = await _snapshot(target)
    failing = add_failing_migration()

    with pytest.raises(SchemaError) as failed:
        await upgrade(target)
    assert str(failed.value) == (
        f"upgrading {target} from schema revision {head} to {failing} failed "
        "(RuntimeError: interrupted half-way); it is left unchanged"
    )
    assert await _snapshot(target) == before
    with pytest.raises(SchemaError, match=f"at schema revision {head}, older than"):
        await prepare(target)


def test_a_database_url_that_cannot_be_used_is_exit_2_and_never_shows_its_password(
    tmp_path: Path,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    unreachable = f"postgresql://coordinator:hunter2@127.0.0.1:{port}/farm"
    shown = f"postgresql://coordinator:***@127.0.0.1:{port}/farm"
    data_dir = ["--data-dir", str(tmp_path)]
    cases: list[tuple[list[str], dict[str, str], str]] = [
        (
            ["token", "create", "h1", "--database", "postgresql://[::1"],
            {},
            "argument --database: the database URL does not parse; expected "
            "postgresql://USER@HOST[:PORT]/DATABASE",
        ),
        (
            ["migrate", "--database", "mysql://coordinator:hunter2@db/farm"],
            {},
            "argument --database: the database URL mysql://coordinator:***@db/farm is not "
            "postgresql://",
        ),
        (
            ["migrate", "--database", "postgresql://coordinator:hunter2@db"],
            {},
            "the database URL postgresql://coordinator:***@db names no database",
        ),
        (["migrate"], {}, "give --data-dir, or --database (or DEVICE_COORDINATOR_DATABASE)"),
        (
            ["serve", "--port", "1", *data_dir, "--database", unreachable],
            {},
            f"cannot connect to the database {shown}: ",
        ),
        (
            ["token", "create", "h1"],
            {DATABASE_ENV: unreachable},
            f"cannot connect to the database {shown}: ",
        ),
        (["migrate", *data_dir], {DATABASE_ENV: "garbage"}, "does not parse"),
    ]
    for args, env, message in cases:
        done = run_cli(*args, env=env)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "hunter2" not in done.stderr + done.stdout
        assert "Traceback" not in done.stderr


def test_a_server_that_never_answers_is_given_up_on_exit_2(tmp_path: Path) -> None:
    """A listener that accepts connections but never speaks: the connect is time-bound."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"postgresql://coordinator@127.0.0.1:{silent.getsockname()[1]}/farm"
        done = run_cli("migrate", "--database", url, timeout_s=90)
    assert done.returncode == 2, done.stderr
    assert f"cannot connect to the database {url}: " in done.stderr
    assert "Traceback" not in done.stderr
