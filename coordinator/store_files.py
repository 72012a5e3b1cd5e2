"""Stored task files: bytes under DATA_DIR/files/ (named by their SHA-256), rows in `files`."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from agent.private_files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE
from coordinator.db import new_id, now
from coordinator.sqlite_conn import Connection, Row


@dataclass(frozen=True)
class FileRow:
    id: str
    task_id: str
    name: str
    extension: str
    size: int
    sha256: str
    path: str
    """Relative to the files directory."""
    public: bool
    """Served without an API key at /files/{id} (data-dump files, whose URL is in a proof)."""


def write_blob(files_dir: Path, data: bytes) -> tuple[str, str]:
    """Write bytes durably under their digest (a no-op if already there); returns (sha, path).

    The bytes land before the row that names them is committed, so a crash can leave an
    unreferenced file but never a row without its file.
    """
    sha = hashlib.sha256(data).hexdigest()
    rel = f"{sha[:2]}/{sha}"
    target = files_dir / rel
    if not target.exists():
        target.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        tmp = target.with_name(f"{sha}.{new_id()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        with open(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(target)
    return sha, rel


async def add_file(
    conn: Connection,
    *,
    task_id: str,
    name: str,
    extension: str,
    size: int,
    sha256: str,
    path: str,
    public: bool = False,
) -> str:
    file_id = new_id()
    await conn.execute(
        "INSERT INTO files (id, task_id, name, extension, size, sha256, path, public, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (file_id, task_id, name, extension, size, sha256, path, int(public), now()),
    )
    return file_id


def _row(row: Row) -> FileRow:
    return FileRow(
        id=row["id"],
        task_id=row["task_id"],
        name=row["name"],
        extension=row["extension"],
        size=row["size"],
        sha256=row["sha256"],
        path=row["path"],
        public=bool(row["public"]),
    )


async def files_of_task(conn: Connection, task_id: str) -> list[FileRow]:
    async with conn.execute(
        "SELECT * FROM files WHERE task_id = ? ORDER BY created_at, rowid", (task_id,)
    ) as cur:
        return [_row(r) for r in await cur.fetchall()]


async def get_file(conn: Connection, file_id: str) -> FileRow | None:
    async with conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)) as cur:
        row = await cur.fetchone()
    return None if row is None else _row(row)
