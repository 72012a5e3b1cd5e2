"""The outbox's SQLite side: its tables and the few statements it runs, all on one thread.

Every function here is synchronous and runs on the outbox's own thread, which alone uses the
connection: a group commit is one call, so it costs one thread hop whatever it holds.

Rows are found by id (the rowid), never by key or task. The keys are random (uuid4) and a
batch holds many tasks, so an index on either would dirty a page per item in every commit;
with `synchronous=FULL` each dirty page is written and fsynced. The daemon keeps what it
needs to find rows in memory (docs/outbox.md).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    progress INTEGER NOT NULL,
    frame TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at REAL NOT NULL
);
DROP INDEX IF EXISTS outbox_task;
CREATE TABLE IF NOT EXISTS dead_letter (
    key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    frame TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    error TEXT NOT NULL,
    created_at REAL NOT NULL,
    dead_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS running (
    task_id TEXT PRIMARY KEY,
    remote_device_id TEXT NOT NULL,
    started_at REAL NOT NULL
);
"""

Insert = tuple[int, str, str, str, int, str, int, float]
"""(id, key, task_id, kind, progress, frame, bytes, created_at)"""


@dataclass(frozen=True, slots=True)
class Held:
    """One queued row, as the daemon keeps it in memory."""

    task_id: str
    size: int
    progress: bool
    created_at: float
    """When it was queued (time.time()): the age of the oldest is a metric."""


@dataclass
class Batch:
    """Everything one group commit writes, in one transaction."""

    inserts: list[Insert] = field(default_factory=list)
    deletes: list[int] = field(default_factory=list)
    dead: list[tuple[str, float, int]] = field(default_factory=list)
    """(error, dead_at, id): copied to dead_letter before the row is deleted."""
    started: list[tuple[str, str, float]] = field(default_factory=list)
    ended: list[tuple[str]] = field(default_factory=list)


def connect(path: Path) -> tuple[sqlite3.Connection, dict[int, Held], int]:
    """Open the outbox; also what it holds, by id, and the id the next row gets."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        held = {
            int(row_id): Held(str(task_id), int(size), bool(progress), float(created_at))
            for row_id, task_id, size, progress, created_at in db.execute(
                "SELECT id, task_id, bytes, progress, created_at FROM outbox ORDER BY id"
            )
        }
        (last,) = db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'outbox'"
        ).fetchone()
    except BaseException:
        db.close()
        raise
    # AUTOINCREMENT: an id is never reused, so delivery's "everything after id N" stays true.
    return db, held, max([int(last), *held]) + 1


def commit(db: sqlite3.Connection, batch: Batch) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        if batch.inserts:
            db.executemany(
                "INSERT INTO outbox (id, key, task_id, kind, progress, frame, bytes, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                batch.inserts,
            )
        if batch.ended:
            db.executemany("DELETE FROM running WHERE task_id = ?", batch.ended)
        if batch.started:
            db.executemany("INSERT OR REPLACE INTO running VALUES (?, ?, ?)", batch.started)
        if batch.dead:
            db.executemany(
                "INSERT OR REPLACE INTO dead_letter SELECT key, task_id, kind, frame, bytes, ?, "
                "created_at, ? FROM outbox WHERE id = ?",
                batch.dead,
            )
        if batch.deletes:
            db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in batch.deletes])
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def rows_after(db: sqlite3.Connection, after_id: int, limit: int) -> list[tuple[int, str, str]]:
    """(id, key, frame) of the oldest rows past `after_id`."""
    return [
        (int(r[0]), str(r[1]), str(r[2]))
        for r in db.execute(
            "SELECT id, key, frame FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
    ]


def running(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(task_id, remote_device_id) of the tasks whose scripts this host runs."""
    return [
        (str(r[0]), str(r[1])) for r in db.execute("SELECT task_id, remote_device_id FROM running")
    ]
