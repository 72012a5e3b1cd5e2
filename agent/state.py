"""The daemon's SQLite state file: each device slot's stable remote_device_id.

The file is marked as ours (`meta.format`) so a foreign or corrupt file is refused with a clear
error instead of being silently reused. WAL mode: readers (such as `device-agent outbox`) never
block the daemon.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import aiosqlite

from agent.private_files import PRIVATE_DIR_MODE, private_sqlite

FORMAT = "device-agent-state"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    slot TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    remote_device_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""


class StateFileError(Exception):
    """The state file cannot be used; the message names it and what to do."""


class StateStore:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path) -> StateStore:
        try:
            path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateFileError(
                f"state file {path}: cannot make its directory {path.parent}: {exc.strerror}; "
                "set agent.state_file to a path in a directory the daemon can write"
            ) from None
        try:
            private_sqlite(path)
        except OSError as exc:
            raise StateFileError(f"state file {path}: cannot make it private: {exc}") from None
        try:
            db = await aiosqlite.connect(path, timeout=10)
        except sqlite3.Error as exc:
            raise StateFileError(f"state file {path}: cannot open it: {exc}") from None
        try:
            await _check_and_init(db, path)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def remote_device_id(self, slot: str, kind: str) -> str:
        """The slot's id, made (and committed) the first time the slot is seen."""
        async with self._db.execute(
            "SELECT remote_device_id FROM devices WHERE slot = ?", (slot,)
        ) as cur:
            row = await cur.fetchone()
        if row is not None:
            return str(row[0])
        new_id = str(uuid.uuid4())
        await self._db.execute(
            "INSERT INTO devices (slot, kind, remote_device_id) VALUES (?, ?, ?)",
            (slot, kind, new_id),
        )
        await self._db.commit()
        return new_id

    async def close(self) -> None:
        await self._db.close()


async def _check_and_init(db: aiosqlite.Connection, path: Path) -> None:
    advice = "move it away or set agent.state_file to another path"
    try:
        await db.execute("PRAGMA journal_mode=WAL")
        async with db.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as cur:
            tables = {str(r[0]) for r in await cur.fetchall()}
    except sqlite3.DatabaseError as exc:
        raise StateFileError(
            f"state file {path} is not a usable SQLite file ({exc}); {advice}"
        ) from None
    if tables and "meta" not in tables:
        raise StateFileError(f"state file {path} belongs to another program; {advice}")
    await db.executescript(_SCHEMA)
    async with db.execute("SELECT value FROM meta WHERE key = 'format'") as cur:
        row = await cur.fetchone()
    if row is None and tables:
        raise StateFileError(f"state file {path} belongs to another program; {advice}")
    if row is not None and row[0] != FORMAT:
        raise StateFileError(f"state file {path} has format {row[0]!r}, not {FORMAT!r}; {advice}")
    await db.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?), ('schema_version', ?)",
        (FORMAT, str(SCHEMA_VERSION)),
    )
    await db.commit()
