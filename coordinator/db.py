"""The coordinator's SQLite database: opening it (WAL), its schema, and serialised transactions.

One connection serves the whole process, on the event loop (coordinator/sqlite_conn.py says
why and what keeps it from blocking). Every read or write goes through
`Database.transaction()`, which holds one asyncio lock, so a transaction's statements never
interleave with another coroutine's and each either commits whole or not at all. Timestamps are
stored as REAL Unix seconds (UTC) so that timeout arithmetic stays in SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from agent.private_files import private_dir, private_sqlite
from coordinator.db_version import check_and_stamp
from coordinator.sqlite_conn import Connection, checkpoint

log = logging.getLogger(__name__)

LOCK_WAIT_S = 30.0
"""How long a transaction waits for another process's write lock before it fails."""
CHECKPOINT_INTERVAL_S = 1.0

DB_FILE_NAME = "coordinator.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS scripts (
    sha256 TEXT PRIMARY KEY,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    script_sha256 TEXT NOT NULL REFERENCES scripts(sha256),
    parameters TEXT NOT NULL,
    timeout_s REAL NOT NULL,
    automation_id TEXT,
    owner TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT 'devices_automation',
    allow_sub_tasks INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS job_shares (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    owner TEXT NOT NULL,
    access TEXT NOT NULL,
    PRIMARY KEY (job_id, owner)
);
CREATE TABLE IF NOT EXISTS job_versions (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    version INTEGER NOT NULL,
    script_sha256 TEXT NOT NULL REFERENCES scripts(sha256),
    created_at REAL NOT NULL,
    PRIMARY KEY (job_id, version)
);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    script_sha256 TEXT NOT NULL REFERENCES scripts(sha256),
    input TEXT NOT NULL,
    pin_device_id TEXT,
    state TEXT NOT NULL,
    host_id TEXT,
    device_id TEXT,
    progress TEXT,
    progress_seq INTEGER,
    result TEXT,
    failure_reason TEXT,
    error TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    timeout_s REAL NOT NULL,
    parent_task_id TEXT,
    origin TEXT NOT NULL DEFAULT 'run',
    automation_variables TEXT,
    waiting INTEGER NOT NULL DEFAULT 0,
    waiting_since REAL,
    checkpoint TEXT,
    created_at REAL NOT NULL,
    assigned_at REAL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state, created_at);
CREATE INDEX IF NOT EXISTS tasks_job ON tasks(job_id, created_at);
CREATE INDEX IF NOT EXISTS tasks_host ON tasks(host_id, state);
CREATE INDEX IF NOT EXISTS tasks_queue ON tasks(state, pin_device_id, created_at);
CREATE INDEX IF NOT EXISTS tasks_device ON tasks(device_id, state);
CREATE INDEX IF NOT EXISTS tasks_waiting ON tasks(job_id, waiting, waiting_since);
CREATE TABLE IF NOT EXISTS planned_tasks (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    parent_task_id TEXT NOT NULL,
    input TEXT NOT NULL,
    pin_device_id TEXT,
    timeout_s REAL NOT NULL,
    job_task_id TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS planned_open ON planned_tasks(job_task_id, created_at);
CREATE INDEX IF NOT EXISTS planned_parent ON planned_tasks(parent_task_id);
CREATE TABLE IF NOT EXISTS dumps (
    key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    job_task_id TEXT NOT NULL REFERENCES tasks(id),
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS submissions (
    key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id),
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    finish INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id),
    name TEXT NOT NULL,
    extension TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    public INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_task ON files(task_id, created_at);
CREATE TABLE IF NOT EXISTS hosts (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    last_seen_at REAL
);
CREATE TABLE IF NOT EXISTS devices (
    remote_device_id TEXT PRIMARY KEY,
    host_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    properties TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    key_sha256 TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
"""


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> float:
    return time.time()


def prepare(data_dir: Path) -> Path:
    """Make DATA_DIR if needed and check (or create) its database, in WAL mode; its path.

    DATA_DIR is made 0700 and the database 0600: what is under DATA_DIR (tokens' digests,
    scripts, results, files) is the coordinator's user's alone.
    Raises SchemaError (coordinator/db_version.py) for a file this coordinator cannot use.
    """
    private_dir(data_dir)
    path = data_dir / DB_FILE_NAME
    private_sqlite(path)
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        check_and_stamp(db, path, SCHEMA)
        # The CLI writes tokens while `serve` runs: WAL plus a busy timeout lets both proceed.
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
    return path


class Database:
    """The open database; use `transaction()` for every access."""

    def __init__(self, conn: Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        self._lock = asyncio.Lock()
        self._checkpoints = asyncio.create_task(self._checkpoint_regularly())

    @classmethod
    async def open(cls, data_dir: Path) -> Database:
        """Open (creating if needed) DATA_DIR/coordinator.db; SchemaError if it is not ours."""
        path = await asyncio.to_thread(prepare, data_dir)
        return cls(Connection(path), path)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """Run statements as one transaction: committed on success, rolled back on error."""
        async with self._lock:
            await self._begin()
            try:
                yield self._conn
                self._conn.commit()
            except BaseException:
                # A failed COMMIT (a full disk) leaves the transaction open: end it, or every
                # later BEGIN would fail.
                self._conn.rollback()
                raise

    async def _begin(self) -> None:
        try:
            self._conn.begin()
            return
        except sqlite3.OperationalError as exc:
            if not _locked(exc):
                raise
        # Another process (a CLI command) holds the write lock for a moment: wait for it here,
        # in asyncio sleeps, not in SQLite's busy handler, which would block the loop.
        log.info("the database is locked by another process: waiting (up to %g s)", LOCK_WAIT_S)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_locked),
            wait=wait_random_exponential(multiplier=0.005, max=0.25),
            stop=stop_after_delay(LOCK_WAIT_S),
            reraise=True,
        ):
            with attempt:
                self._conn.begin()

    async def _checkpoint_regularly(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL_S)
            try:
                await asyncio.to_thread(checkpoint, self._path)
            except sqlite3.Error as exc:
                log.warning("WAL checkpoint of %s failed (retried): %s", self._path, exc)

    async def close(self) -> None:
        self._checkpoints.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._checkpoints
        self._conn.close()


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
