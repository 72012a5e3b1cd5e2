"""Applying a host's `submit` frame: exactly once in effect, acknowledged only after commit.

The submission's key is stored in the same transaction as its effect (progress, or the final
state with result and files), so a repeated key is acknowledged again with no second effect.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass

from agent.protocol import MAX_FILE_BYTES, FileBlob, Submit, SubmitAck
from coordinator.context import Context
from coordinator.db import now
from coordinator.store_files import add_file, write_blob
from coordinator.store_submissions import is_stored, store
from coordinator.store_tasks import ACTIVE_STATES, finish, get_task, set_progress


@dataclass(frozen=True)
class DecodedFile:
    name: str
    extension: str
    data: bytes


class Refused(Exception):
    """Refused for good: the host must not send this submission again."""


def decode_files(blobs: list[FileBlob]) -> list[DecodedFile]:
    """The files' bytes; Refused naming the first that is not base64 or is too big."""
    decoded = []
    for blob in blobs:
        try:
            data = base64.b64decode(blob.data_b64, validate=True)
        except (binascii.Error, ValueError):
            raise Refused(f"file '{blob.name}' is not valid base64") from None
        if len(data) > MAX_FILE_BYTES:
            raise Refused(f"file '{blob.name}' is {len(data)} bytes, over {MAX_FILE_BYTES}")
        decoded.append(DecodedFile(blob.name, blob.extension.lstrip("."), data))
    return decoded


async def apply_submit(ctx: Context, host_id: str, submit: Submit) -> tuple[SubmitAck, bool]:
    """Apply one submission; returns the ack to send and whether the task just became final."""
    try:
        final = await _apply(ctx, host_id, submit)
    except Refused as exc:
        return SubmitAck(key=submit.key, ok=False, error=str(exc)), False
    return SubmitAck(key=submit.key, ok=True), final


async def _apply(ctx: Context, host_id: str, submit: Submit) -> bool:
    files = decode_files(submit.files) if submit.finish else []
    if submit.finish and submit.status == "running":
        raise Refused("a final submission needs status success, failed or declined")
    async with ctx.db.transaction() as conn:
        if await is_stored(conn, submit.key):
            return False
        task = await get_task(conn, submit.task_id)
        if task is None:
            raise Refused(f"unknown task {submit.task_id}")
        if task.host_id != host_id:
            raise Refused(f"task {submit.task_id} is not this host's")
        if task.is_final:
            raise Refused(f"task already finished (state {task.state})")
        if task.state not in ACTIVE_STATES:
            raise Refused(f"task {submit.task_id} is {task.state}, not running")
        if not submit.finish:
            await set_progress(conn, task.id, submit.seq, submit.data)
        else:
            await finish(conn, task.id, state=submit.status, result=submit.data, finished_at=now())
            for item in files:
                sha, path = await asyncio.to_thread(write_blob, ctx.settings.files_dir, item.data)
                await add_file(
                    conn,
                    task_id=task.id,
                    name=item.name,
                    extension=item.extension,
                    size=len(item.data),
                    sha256=sha,
                    path=path,
                )
        await store(conn, submit)
    return submit.finish
