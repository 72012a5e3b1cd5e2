"""Stored jobs and their scripts: each script version is kept, addressed by its SHA-256."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from coordinator.db import new_id, now


@dataclass(frozen=True)
class JobRow:
    id: str
    name: str
    script_sha256: str
    parameters: dict[str, Any]
    timeout_s: float
    automation_id: str | None
    created_at: float
    updated_at: float
    versions: list[str]
    """Script SHA-256s, oldest first; the last one is the current `script_sha256`."""


async def put_script(conn: aiosqlite.Connection, source: str) -> str:
    sha = hashlib.sha256(source.encode()).hexdigest()
    await conn.execute(
        "INSERT INTO scripts (sha256, source) VALUES (?, ?) ON CONFLICT(sha256) DO NOTHING",
        (sha, source),
    )
    return sha


async def get_script(conn: aiosqlite.Connection, sha256: str) -> str | None:
    async with conn.execute("SELECT source FROM scripts WHERE sha256 = ?", (sha256,)) as cur:
        row = await cur.fetchone()
    return None if row is None else str(row["source"])


async def _add_version(conn: aiosqlite.Connection, job_id: str, sha: str, stamp: float) -> None:
    await conn.execute(
        "INSERT INTO job_versions (job_id, version, script_sha256, created_at) "
        "SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ? FROM job_versions WHERE job_id = ?",
        (job_id, sha, stamp, job_id),
    )


async def create_job(
    conn: aiosqlite.Connection,
    *,
    name: str,
    source: str,
    parameters: dict[str, Any],
    timeout_s: float,
    automation_id: str | None,
) -> JobRow:
    job_id = new_id()
    stamp = now()
    sha = await put_script(conn, source)
    await conn.execute(
        "INSERT INTO jobs (id, name, script_sha256, parameters, timeout_s, automation_id, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (job_id, name, sha, json.dumps(parameters), timeout_s, automation_id, stamp, stamp),
    )
    await _add_version(conn, job_id, sha, stamp)
    job = await get_job(conn, job_id)
    assert job is not None
    return job


async def set_job_script(conn: aiosqlite.Connection, job_id: str, source: str) -> JobRow | None:
    """Make `source` the job's current script version; None if there is no such job."""
    if await get_job(conn, job_id) is None:
        return None
    stamp = now()
    sha = await put_script(conn, source)
    await conn.execute(
        "UPDATE jobs SET script_sha256 = ?, updated_at = ? WHERE id = ?", (sha, stamp, job_id)
    )
    await _add_version(conn, job_id, sha, stamp)
    return await get_job(conn, job_id)


async def get_job(conn: aiosqlite.Connection, job_id: str) -> JobRow | None:
    async with conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    async with conn.execute(
        "SELECT script_sha256 FROM job_versions WHERE job_id = ? ORDER BY version", (job_id,)
    ) as cur:
        versions = [str(v["script_sha256"]) for v in await cur.fetchall()]
    return JobRow(
        id=row["id"],
        name=row["name"],
        script_sha256=row["script_sha256"],
        parameters=json.loads(row["parameters"]),
        timeout_s=row["timeout_s"],
        automation_id=row["automation_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        versions=versions,
    )
