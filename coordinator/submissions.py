"""Applying a host's `submit` frame: exactly once in effect, acknowledged only after commit.

The submission's key is stored in the same transaction as its effect (progress, or the final
state with result and files), so a repeated key is acknowledged again with no second effect.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass, replace
from typing import Any

from agent.filenames import safe_extension, safe_file_name
from agent.protocol import MAX_FILE_BYTES, FileBlob, Submit, SubmitAck
from coordinator.context import Context
from coordinator.db import now
from coordinator.db_conn import Conn
from coordinator.store_files import add_file, write_blob
from coordinator.store_jobs import JobOutcome
from coordinator.store_submissions import store, submit_view
from coordinator.store_tasks import ACTIVE_STATES, TaskRow, set_progress
from coordinator.store_webhooks import queue_progress
from coordinator.task_end import end_run


@dataclass(frozen=True)
class DecodedFile:
    name: str
    extension: str
    data: bytes


class Refused(Exception):
    """Refused for good: the host must not send this submission again."""


def decode_files(blobs: list[FileBlob]) -> list[DecodedFile]:
    """The files' bytes under safe names (agent/filenames.py); Refused naming the first that is
    not base64 or is too big."""
    decoded = []
    for blob in blobs:
        try:
            data = base64.b64decode(blob.data_b64, validate=True)
        except (binascii.Error, ValueError):
            raise Refused(f"file '{blob.name}' is not valid base64") from None
        if len(data) > MAX_FILE_BYTES:
            raise Refused(f"file '{blob.name}' is {len(data)} bytes, over {MAX_FILE_BYTES}")
        # Any host may send any name: stored names are reduced here whatever the daemon did.
        decoded.append(DecodedFile(safe_file_name(blob.name), safe_extension(blob.extension), data))
    return decoded


def decode_submits(submits: list[Submit]) -> list[list[DecodedFile] | Refused]:
    """Each submission's files, or why it is refused: done before the transaction, so the
    database is not held for base64 work."""
    return [_checked_files(submit) for submit in submits]


async def apply_submits(
    ctx: Context,
    conn: Conn,
    host_id: str,
    submits: list[Submit],
    decoded: list[list[DecodedFile] | Refused],
) -> list[tuple[SubmitAck, bool]]:
    """Apply a run of one host's submissions inside the caller's transaction.

    Each is judged on its own, in order, as if applied alone: a refused one is acknowledged as
    refused and the rest apply; a repeated key (stored before, or earlier in the run) is
    acknowledged with no second effect. The run's stored keys, tasks and their jobs' outcome
    columns are read in one query, and its progress updates and keys written in one statement
    each. Returns, in order, each ack to
    send (after commit) and whether its task just became final.
    """
    results: list[tuple[SubmitAck, bool]] = []
    view = await submit_view(conn, [s.key for s in submits], {s.task_id for s in submits})
    seen, tasks = view.stored, view.tasks
    progress: list[tuple[str, int, Any]] = []
    applied: list[Submit] = []
    for submit, files in zip(submits, decoded, strict=True):
        if submit.key in seen:
            results.append((SubmitAck(key=submit.key, ok=True), False))
            continue
        try:
            if isinstance(files, Refused):
                raise files
            task = _checked_task(tasks.get(submit.task_id), submit, host_id)
        except Refused as exc:
            results.append((SubmitAck(key=submit.key, ok=False, error=str(exc)), False))
            continue
        if submit.finish:
            await _progress(conn, progress)  # what came before the final goes first
            progress = []
            await _finish(ctx, conn, task, submit, files, view.jobs[task.id])
            tasks[task.id] = replace(task, state=submit.status)
        else:
            progress.append((task.id, submit.seq, submit.data))
        seen.add(submit.key)
        applied.append(submit)
        results.append((SubmitAck(key=submit.key, ok=True), submit.finish))
    await _progress(conn, progress)
    await store(conn, applied)
    return results


async def _progress(conn: Conn, updates: list[tuple[str, int, Any]]) -> None:
    """Store progress updates, and their webhook deliveries for the tasks that want them."""
    await set_progress(conn, updates)
    await queue_progress(conn, updates)


def _checked_files(submit: Submit) -> list[DecodedFile] | Refused:
    """The final submission's files, or why the submission is refused."""
    if submit.finish and submit.status == "running":
        return Refused("a final submission needs status success, failed or declined")
    try:
        return decode_files(submit.files) if submit.finish else []
    except Refused as exc:
        return exc


def _checked_task(task: TaskRow | None, submit: Submit, host_id: str) -> TaskRow:
    if task is None:
        raise Refused(f"unknown task {submit.task_id}")
    if submit.attempt is not None and submit.attempt != task.attempt:
        raise Refused(f"attempt {submit.attempt} of task {submit.task_id} has ended")
    if task.host_id != host_id:
        raise Refused(f"task {submit.task_id} is not this host's")
    if task.is_final:
        raise Refused(f"task already finished (state {task.state})")
    if task.state not in ACTIVE_STATES:
        raise Refused(f"task {submit.task_id} is {task.state}, not running")
    return task


async def _finish(
    ctx: Context,
    conn: Conn,
    task: TaskRow,
    submit: Submit,
    files: list[DecodedFile],
    job: JobOutcome,
) -> None:
    await end_run(
        conn,
        task,
        ctx.dispatcher.announce,
        state=submit.status,
        result=submit.data,
        finished_at=now(),
        job=job,
    )
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
