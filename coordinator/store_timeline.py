"""Runs' timelines and artifacts: applying a host's `timeline` frame, and reading them back.

A frame is applied once in effect: its entries are stored by (task, attempt, seq) and a host
sends a run's batches in order, so only entries past the run's last stored seq are new; a batch
sent again (after a reconnect, or a coordinator that died before its ack) adds nothing. The
artifacts' bytes are written to the file store (store_files.write_blob) before the rows that
name them are committed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from agent.filenames import safe_extension, safe_file_name
from agent.protocol import MAX_FILE_BYTES, SubmitAck, TimelineBatch
from coordinator import schema as t
from coordinator.context import Context
from coordinator.db import new_id, now
from coordinator.db_conn import Conn, Hot
from coordinator.store_files import write_blob
from coordinator.store_tasks import get_task

e = t.timeline_entries.c
a = t.artifacts.c


@dataclass(frozen=True)
class ArtifactRow:
    id: str
    task_id: str
    attempt: int
    seq: int
    name: str
    extension: str
    size: int
    path: str
    created_at: float


class _Refused(Exception):
    pass


def _insert_row(table: sa.Table) -> Hot:
    """An insert of every column of `table`, each bound as `b_<column>`."""
    return Hot(sa.insert(table).values({c.name: sa.bindparam(f"b_{c.name}") for c in table.c}))


# Every run sends at least one batch (its end's, with its `finished`): Hot statements.
_LAST_SEQ = Hot(
    sa.select(sa.func.max(e.seq)).where(
        e.task_id == sa.bindparam("b_task_id"), e.attempt == sa.bindparam("b_attempt")
    )
)
_ADD_ENTRY = _insert_row(t.timeline_entries)
_ADD_ARTIFACT = _insert_row(t.artifacts)


def _decoded(frame: TimelineBatch) -> dict[int, tuple[str, str, bytes]]:
    """Each artifact's (name, extension, bytes) by its entry's seq; refused if one is bad."""
    out = {}
    for blob in frame.artifacts:
        try:
            data = base64.b64decode(blob.data_b64, validate=True)
        except (binascii.Error, ValueError):
            raise _Refused(f"artifact '{blob.name}' is not valid base64") from None
        if len(data) > MAX_FILE_BYTES:
            raise _Refused(f"artifact '{blob.name}' is {len(data)} bytes, over {MAX_FILE_BYTES}")
        out[blob.seq] = (safe_file_name(blob.name), safe_extension(blob.extension), data)
    return out


async def _run_host(conn: Conn, task_id: str, attempt: int) -> str | None:
    """The host that ran that attempt of the task (None if unknown)."""
    task = await get_task(conn, task_id)
    if task is None:
        return None
    if attempt == task.attempt:
        return task.host_id
    host = await conn.scalar(
        sa.select(t.runs.c.host_id).where(t.runs.c.task_id == task_id, t.runs.c.attempt == attempt)
    )
    return None if host is None else str(host)


async def apply_timeline(ctx: Context, host_id: str, frame: TimelineBatch) -> SubmitAck:
    """Store one batch of a run's timeline; the ack to send (after commit)."""
    try:
        files = _decoded(frame)
    except _Refused as exc:
        return SubmitAck(key=frame.key, ok=False, error=str(exc))
    blobs = {}
    for seq, (_, _, data) in files.items():
        blobs[seq] = await asyncio.to_thread(_write, ctx, data)
    async with ctx.db.transaction() as conn:
        if await _run_host(conn, frame.task_id, frame.attempt) != host_id:
            error = f"attempt {frame.attempt} of task {frame.task_id} was not run by this host"
            return SubmitAck(key=frame.key, ok=False, error=error)
        run = {"b_task_id": frame.task_id, "b_attempt": frame.attempt}
        last = await conn.scalar(_LAST_SEQ, run)
        new = [entry for entry in frame.entries if last is None or entry.seq > last]
        if new:
            await conn.execute(
                _ADD_ENTRY,
                [
                    {
                        **run,
                        "b_seq": entry.seq,
                        "b_at": entry.at.timestamp(),
                        "b_kind": entry.kind,
                        "b_name": entry.name,
                        "b_detail": entry.detail,
                        "b_duration_s": entry.duration_s,
                        "b_ok": None if entry.ok is None else int(entry.ok),
                        "b_error": entry.error,
                        "b_size": entry.size,
                    }
                    for entry in new
                ],
            )
        fresh = {entry.seq for entry in new}
        for seq, (name, extension, data) in files.items():
            if seq not in fresh:
                continue
            sha, path = blobs[seq]
            await conn.execute(
                _ADD_ARTIFACT,
                {
                    **run,
                    "b_id": new_id(),
                    "b_seq": seq,
                    "b_name": name,
                    "b_extension": extension,
                    "b_size": len(data),
                    "b_sha256": sha,
                    "b_path": path,
                    "b_created_at": now(),
                },
            )
    return SubmitAck(key=frame.key, ok=True)


def _write(ctx: Context, data: bytes) -> tuple[str, str]:
    return write_blob(ctx.settings.files_dir, data)


async def timeline_of(conn: Conn, task_id: str, attempt: int | None) -> list[dict[str, Any]]:
    """The task's entries (of one run, or of all), in order: by run, then seq."""
    query = sa.select(t.timeline_entries).where(e.task_id == task_id)
    if attempt is not None:
        query = query.where(e.attempt == attempt)
    rows = await conn.execute(query.order_by(e.attempt, e.seq))
    return [
        {
            "run": row.attempt,
            "seq": row.seq,
            "at": row.at,
            "kind": row.kind,
            "name": row.name,
            "detail": row.detail,
            "duration_s": row.duration_s,
            "ok": None if row.ok is None else bool(row.ok),
            "error": row.error,
            "size": row.size,
        }
        for row in rows
    ]


def _artifact(row: Any) -> ArtifactRow:
    return ArtifactRow(
        id=row.id,
        task_id=row.task_id,
        attempt=row.attempt,
        seq=row.seq,
        name=row.name,
        extension=row.extension,
        size=row.size,
        path=row.path,
        created_at=row.created_at,
    )


async def artifacts_of(conn: Conn, task_id: str, attempt: int | None) -> list[ArtifactRow]:
    query = sa.select(t.artifacts).where(a.task_id == task_id)
    if attempt is not None:
        query = query.where(a.attempt == attempt)
    return [_artifact(r) for r in await conn.execute(query.order_by(a.attempt, a.seq))]


async def get_artifact(conn: Conn, task_id: str, artifact_id: str) -> ArtifactRow | None:
    row = (
        await conn.execute(sa.select(t.artifacts).where(a.id == artifact_id, a.task_id == task_id))
    ).first()
    return None if row is None else _artifact(row)
