"""Applying a host's `dump` frame (`submit_task_to_another_job`): a new task on a data-dump job.

Every condition of the job API is checked, in this order, and each refusal is a `submit_ack`
with ok=false and a message naming the condition: the target exists, is a devices_automation
job, has automation_id set and no planned tasks, has the running job's automation_id, and the
running job's owner owns it or has shared_view / shared_edit on it. The new task is a record
(origin `dump`, never dispatched) whose state is the status the script gave and whose result is
the proof: the script's data with each file's public URL under `proof[name]`. Nothing of the
running task changes; the running task may have ended since (an outbox delivers late), it only
has to be this host's. The key is stored with the effect, so a repeated frame gets the same
answer with no second task.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from agent.protocol import Dump, SubmitAck
from coordinator import schema as t
from coordinator.context import Context
from coordinator.db import now
from coordinator.db_conn import Conn
from coordinator.store_files import add_file, write_blob
from coordinator.store_jobs import JobRow, get_job
from coordinator.store_planned import count_open_planned
from coordinator.store_tasks import create_dump_task, get_task, set_result
from coordinator.submissions import DecodedFile, Refused, decode_files


async def apply_dump(ctx: Context, host_id: str, base_url: str, frame: Dump) -> SubmitAck:
    """Apply one dump frame; the ack to send (after commit). `base_url` prefixes file URLs."""
    try:
        files = decode_files(frame.files)
        result = await _apply(ctx, host_id, base_url.rstrip("/"), frame, files)
    except Refused as exc:
        return SubmitAck(key=frame.key, ok=False, error=str(exc))
    return SubmitAck(key=frame.key, ok=True, result=result)


async def _stored(conn: Conn, key: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            sa.select(t.dumps.c.job_task_id, t.dumps.c.job_id).where(t.dumps.c.key == key)
        )
    ).first()
    return None if row is None else {"job_task_id": row.job_task_id, "job_id": row.job_id}


async def _check_target(conn: Conn, running: JobRow, job_id: str) -> JobRow:
    target = await get_job(conn, job_id)
    if target is None:
        raise Refused(f"target job {job_id} not found")
    if target.type != "devices_automation":
        raise Refused(f"target job {job_id} is a {target.type} job, not devices_automation")
    if not target.automation_id:
        raise Refused(f"target job {job_id} has no automation_id")
    planned = await count_open_planned(conn, job_id)
    if planned:
        raise Refused(
            f"target job {job_id} has {planned} planned task(s); a data-dump job must have none"
        )
    if running.automation_id != target.automation_id:
        raise Refused(
            f"target job {job_id} has automation_id {target.automation_id!r} but the running "
            f"job has {running.automation_id!r}: they must be the same"
        )
    if target.access_of(running.owner) is None:
        raise Refused(
            f"the running job's owner ({running.owner}) neither owns target job {job_id} nor "
            "has shared_view or shared_edit on it"
        )
    return target


async def _apply(
    ctx: Context, host_id: str, base_url: str, frame: Dump, files: list[DecodedFile]
) -> dict[str, Any]:
    async with ctx.db.transaction() as conn:
        stored = await _stored(conn, frame.key)
        if stored is not None:
            return stored
        task = await get_task(conn, frame.task_id)
        if task is None:
            raise Refused(f"unknown task {frame.task_id}")
        if task.host_id != host_id:
            raise Refused(f"task {frame.task_id} is not this host's")
        running = await get_job(conn, task.job_id)
        if running is None:
            raise Refused(f"the job of task {frame.task_id} no longer exists")
        target = await _check_target(conn, running, frame.job_id)
        new_id = await create_dump_task(
            conn, target, state=frame.status, proof=frame.data, key_task=task.id
        )
        proof = dict(frame.data)
        for item in files:
            sha, path = await asyncio.to_thread(write_blob, ctx.settings.files_dir, item.data)
            file_id = await add_file(
                conn,
                task_id=new_id,
                name=item.name,
                extension=item.extension,
                size=len(item.data),
                sha256=sha,
                path=path,
                public=True,
            )
            proof[item.name] = f"{base_url}/files/{file_id}"
        if files:
            await set_result(conn, new_id, proof)
        await conn.execute(
            sa.insert(t.dumps).values(
                key=frame.key,
                task_id=task.id,
                job_id=target.id,
                job_task_id=new_id,
                created_at=now(),
            )
        )
    return {"job_task_id": new_id, "job_id": target.id}
