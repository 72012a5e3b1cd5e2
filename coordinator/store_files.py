"""Stored task files: bytes under DATA_DIR/files/ (named by their SHA-256), rows in `files`."""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from agent.private_files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE
from coordinator import schema as t
from coordinator.db import new_id, now
from coordinator.db_conn import Conn
from coordinator.dialect import id_list, id_list_value, next_seqs


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
    conn: Conn,
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
    [seq] = await next_seqs(conn, t.files, 1)
    await conn.execute(
        sa.insert(t.files).values(
            id=file_id,
            task_id=task_id,
            name=name,
            extension=extension,
            size=size,
            sha256=sha256,
            path=path,
            public=int(public),
            created_at=now(),
            seq=seq,
        )
    )
    return file_id


def _row(row: sa.Row[Any]) -> FileRow:
    return FileRow(
        id=row.id,
        task_id=row.task_id,
        name=row.name,
        extension=row.extension,
        size=row.size,
        sha256=row.sha256,
        path=row.path,
        public=bool(row.public),
    )


async def files_of_task(conn: Conn, task_id: str) -> list[FileRow]:
    rows = await conn.execute(
        sa.select(t.files).where(t.files.c.task_id == task_id).order_by(t.files.c.seq)
    )
    return [_row(r) for r in rows]


async def get_file(conn: Conn, file_id: str) -> FileRow | None:
    row = (await conn.execute(sa.select(t.files).where(t.files.c.id == file_id))).first()
    return None if row is None else _row(row)


async def remove_unreferenced(conn: Conn, files_dir: Path, paths: set[str]) -> int:
    """Remove the stored bytes at those of `paths` that no file row names any more; how many.

    Call it in a transaction of its own after the rows' deletion committed: a crash between the
    two leaves bytes no row names (harmless, as write_blob's are), never a row without its
    bytes. Within the transaction no submission of this coordinator (nor, on SQLite, of any
    process) can store a row naming the same bytes before they are gone.
    """
    if not paths:
        return 0
    listed = id_list(conn.dialect.name, "paths")
    named: set[str] = set()
    for table in (t.files, t.artifacts):  # a run's artifacts are stored the same way
        named |= set(
            await conn.scalars(
                sa.select(table.c.path).join(listed, table.c.path == listed.c.value).distinct(),
                {"paths": id_list_value(conn.dialect.name, sorted(paths))},
            )
        )
    orphans = sorted(paths - named)
    for rel in orphans:
        await asyncio.to_thread((files_dir / rel).unlink, missing_ok=True)
    return len(orphans)
