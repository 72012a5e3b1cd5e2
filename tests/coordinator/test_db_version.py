"""SQLite files the coordinator refuses, and the upgrade of a database of the coordinator from
before migrations: made from its schema (schema_v1.sql) with rows in every table, upgraded by the
real CLI, then served. test_database.py has what holds on both backends.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory

from agent.protocol import Assign
from coordinator import migrate
from coordinator.db_location import sqlite_location
from coordinator.db_version import SchemaError, prepare, upgrade
from tests.coordinator.conftest import Farm, run_cli, running_coordinator

SCHEMA_V1 = Path(__file__).with_name("schema_v1.sql").read_text()
API_KEY = "old-api-key"
HOST_TOKEN = "old-host-token"
BLOB = b"a file stored by the old coordinator"
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()
SOURCE = "async def main(agent):\n    return {}\n"
SOURCE_SHA = hashlib.sha256(SOURCE.encode()).hexdigest()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _old_database(data_dir: Path) -> None:
    """A data dir as the coordinator before migrations left it: rows in every table (tasks made
    out of created_at order, two at the same instant) and a stored file."""
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "coordinator.db") as db:
        db.executescript(SCHEMA_V1)
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO scripts VALUES (?, ?)", (SOURCE_SHA, SOURCE))
        db.execute(
            "INSERT INTO jobs (id, name, script_sha256, parameters, timeout_s, owner, "
            "created_at, updated_at) VALUES ('j1', 'old job', ?, '{\"p\": 1}', 60, 'tests', "
            "10, 10)",
            (SOURCE_SHA,),
        )
        db.execute("INSERT INTO job_shares VALUES ('j1', 'bob', 'shared_view')")
        db.execute("INSERT INTO job_versions VALUES ('j1', 1, ?, 10)", (SOURCE_SHA,))
        for task_id, state, created_at in (
            ("t-b", "pending", 20.0),
            ("t-c", "pending", 20.0),
            ("t-done", "success", 30.0),
            ("t-a", "pending", 15.0),
        ):
            db.execute(
                "INSERT INTO tasks (id, job_id, script_sha256, input, state, timeout_s, "
                "created_at, result, automation_variables) VALUES (?, 'j1', ?, ?, ?, 60, ?, "
                "?, ?)",
                (
                    task_id,
                    SOURCE_SHA,
                    f'{{"name": "{task_id}"}}',
                    state,
                    created_at,
                    '{"ok": true}' if state == "success" else None,
                    '{"waiting": false}',
                ),
            )
        db.execute(
            "INSERT INTO planned_tasks (id, job_id, parent_task_id, input, timeout_s, "
            "created_at) VALUES ('p1', 'j1', 't-done', '{}', 60, 40)"
        )
        db.execute("INSERT INTO dumps VALUES ('dump-key', 't-done', 'j1', 't-done', 41)")
        db.execute(
            "INSERT INTO submissions VALUES ('sub-key', 't-done', 0, 'success', '{}', 1, 42)"
        )
        db.execute(
            "INSERT INTO files (id, task_id, name, extension, size, sha256, path, created_at) "
            "VALUES ('f1', 't-done', 'proof', 'txt', ?, ?, ?, 43)",
            (len(BLOB), BLOB_SHA, f"{BLOB_SHA[:2]}/{BLOB_SHA}"),
        )
        db.execute("INSERT INTO hosts VALUES ('h1', ?, 5, NULL)", (_digest(HOST_TOKEN),))
        db.execute(
            "INSERT INTO devices VALUES ('d1', 'h1', 'sim', 'offline', '{\"model\": \"x\"}', 6)"
        )
        db.execute("INSERT INTO api_keys VALUES ('tests', ?, 7)", (_digest(API_KEY),))
    blob = data_dir / "files" / BLOB_SHA[:2] / BLOB_SHA
    blob.parent.mkdir(parents=True)
    blob.write_bytes(BLOB)


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of schema_v1, on its columns, in a stable order."""
    reference = sqlite3.connect(":memory:")
    reference.executescript(SCHEMA_V1)
    columns = {
        table: [c[1] for c in reference.execute(f"PRAGMA table_info({table})")]
        for (table,) in reference.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    reference.close()
    with sqlite3.connect(path) as db:
        return {
            table: db.execute(f"SELECT {', '.join(names)} FROM {table} ORDER BY 1, 2").fetchall()
            for table, names in columns.items()
        }


def _everything(path: Path) -> list[tuple[Any, ...]]:
    """The file's schema, its user_version and every row: equal only if nothing changed."""
    with sqlite3.connect(path) as db:
        found: list[tuple[Any, ...]] = [("user_version", *db.execute("PRAGMA user_version"))]
        tables = db.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        found += tables
        for kind, name, _ in tables:
            if kind == "table":
                found += [(name, *row) for row in db.execute(f"SELECT * FROM {name}")]
    return found


def test_a_database_of_another_version_is_refused_with_exit_2(tmp_path: Path) -> None:
    def data_dir(name: str, make: Callable[[sqlite3.Connection], object]) -> Path:
        (tmp_path / name).mkdir()
        with sqlite3.connect(tmp_path / name / "coordinator.db") as db:
            make(db)
        return tmp_path / name

    def older(db: sqlite3.Connection) -> None:
        db.executescript(SCHEMA_V1)
        db.execute("ALTER TABLE jobs ADD COLUMN legacy TEXT")

    def foreign(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE notes (body TEXT)")

    cases = {
        data_dir("older", older): "was made by another version of the coordinator: its table "
        "jobs has columns",
        data_dir("newer", lambda db: db.execute("PRAGMA user_version = 7")): "has schema version "
        "7, newer than this coordinator's 2; run a newer coordinator, or move it away",
        data_dir("garbage", lambda db: None): "is not a usable SQLite file",
        data_dir("foreign", foreign): "is not a coordinator database: it has tables (notes) but "
        "no alembic_version; move it away",
    }
    (tmp_path / "garbage" / "coordinator.db").write_bytes(b"not sqlite " * 100)
    for where, message in cases.items():
        before = (where / "coordinator.db").read_bytes()
        for command in (["token", "create", "h1"], ["serve", "--port", "1"], ["migrate"]):
            done = run_cli(*command, "--data-dir", str(where))
            assert done.returncode == 2, (where, command, done.stderr)
            assert f"device-coordinator: error: {where / 'coordinator.db'} {message}" in (
                done.stderr
            )
            assert "Traceback" not in done.stderr
        assert (where / "coordinator.db").read_bytes() == before


async def test_a_database_of_the_coordinator_before_migrations_is_upgraded_keeping_every_row(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "old"
    _old_database(data_dir)
    path = data_dir / "coordinator.db"
    before = _rows(path)

    refused = run_cli("serve", "--data-dir", str(data_dir), "--port", "1")
    assert refused.returncode == 2, refused.stderr
    assert (
        f"{path} is at schema revision 0001, older than this coordinator's {migrate.head()}; "
        "back it up, then run `device-coordinator migrate`"
    ) in refused.stderr

    done = run_cli("migrate", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{path}: schema revision 0001 -> {migrate.head()}\n"
    assert _rows(path) == before
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
        # Revision 0004: each job got its webhook secret, each task its script's version.
        [(secret,)] = db.execute("SELECT webhook_secret FROM jobs").fetchall()
        assert len(secret) == 64
        assert set(db.execute("SELECT script_version FROM tasks")) == {(1,)}
        # Revision 0005: no browser settings.
        assert set(db.execute("SELECT browser FROM jobs UNION SELECT browser FROM tasks")) == {
            (None,)
        }
        # FIFO as before: created_at, then insertion order.
        assert [r[0] for r in db.execute("SELECT id FROM tasks ORDER BY seq")] == [
            "t-a",
            "t-b",
            "t-c",
            "t-done",
        ]
    again = run_cli("migrate", "--data-dir", str(data_dir))
    assert again.stdout == f"{path}: already at schema revision {migrate.head()}\n"

    with running_coordinator(data_dir) as coordinator:
        old = Farm(coordinator, API_KEY)
        async with old.client() as client:
            listed = (await client.get("/api/tasks", params={"job_id": "j1"})).json()["items"]
            assert [t["id"] for t in listed] == ["t-a", "t-b", "t-c", "t-done"]
            [file] = (await old.task(client, "t-done"))["files"]
            assert (await client.get(file["url"])).content == BLOB
            made = await old.make_tasks(client, "j1", {"input": {"name": "new"}})
            async with old.host(HOST_TOKEN, "h1", [old.device("d1")]) as host:
                await host.credits("d1")
                assert (await host.next(Assign)).task.task_id == "t-a"
            listed = (await client.get("/api/tasks", params={"job_id": "j1"})).json()["items"]
            assert [t["id"] for t in listed][-1] == made[0]["id"]


async def test_an_upgrade_from_before_migrations_failing_half_way_leaves_the_file_untouched(
    tmp_path: Path, add_failing_migration: Callable[[], str]
) -> None:
    """Revisions 0001 (stamped) and 0002 apply, then the test's own fails half-way: all of it
    is rolled back, the file is still one of the coordinator from before migrations."""
    data_dir = tmp_path / "old"
    _old_database(data_dir)
    path = data_dir / "coordinator.db"
    before = _everything(path)
    location = sqlite_location(data_dir)
    failing = add_failing_migration()

    with pytest.raises(SchemaError) as failed:
        await upgrade(location)
    assert str(failed.value) == (
        f"upgrading {path} from schema revision 0001 to {failing} failed "
        "(RuntimeError: interrupted half-way); it is left unchanged"
    )
    assert _everything(path) == before

    with pytest.raises(SchemaError, match="at schema revision 0001, older than"):
        await prepare(location)
    assert _everything(path) == before


def test_the_revisions_read_from_the_files_are_alembics() -> None:
    script = ScriptDirectory.from_config(migrate._config())
    assert migrate.head() == script.get_current_head()
    assert migrate.revisions() == {r.revision: r.down_revision for r in script.walk_revisions()}
