"""Stored jobs, their owners and shares, and their scripts (each version kept, by SHA-256).

A job's `owner` is the name of the API key that created it. Other owners reach a job through a
share: `shared_view` or `shared_edit` (docs/jobs.md says what each allows).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from coordinator.db import new_id, now
from coordinator.sqlite_conn import Connection

JobType = Literal["devices_automation", "manual"]
Access = Literal["shared_view", "shared_edit"]


@dataclass(frozen=True)
class JobRow:
    id: str
    name: str
    script_sha256: str
    parameters: dict[str, Any]
    timeout_s: float
    automation_id: str | None
    owner: str
    type: JobType
    allow_sub_tasks: bool
    shares: dict[str, Access]
    """Other owner -> their access."""
    created_at: float
    updated_at: float
    versions: list[str]
    """Script SHA-256s, oldest first; the last one is the current `script_sha256`."""

    def access_of(self, owner: str) -> Literal["owner", "shared_view", "shared_edit"] | None:
        """What `owner` may do with this job: own it, a share, or nothing (None)."""
        if owner == self.owner:
            return "owner"
        return self.shares.get(owner)


async def put_script(conn: Connection, source: str) -> str:
    sha = hashlib.sha256(source.encode()).hexdigest()
    await conn.execute(
        "INSERT INTO scripts (sha256, source) VALUES (?, ?) ON CONFLICT(sha256) DO NOTHING",
        (sha, source),
    )
    return sha


async def get_script(conn: Connection, sha256: str) -> str | None:
    async with conn.execute("SELECT source FROM scripts WHERE sha256 = ?", (sha256,)) as cur:
        row = await cur.fetchone()
    return None if row is None else str(row["source"])


async def _add_version(conn: Connection, job_id: str, sha: str, stamp: float) -> None:
    await conn.execute(
        "INSERT INTO job_versions (job_id, version, script_sha256, created_at) "
        "SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ? FROM job_versions WHERE job_id = ?",
        (job_id, sha, stamp, job_id),
    )


async def create_job(
    conn: Connection,
    *,
    name: str,
    source: str,
    parameters: dict[str, Any],
    timeout_s: float,
    automation_id: str | None,
    owner: str,
    job_type: JobType = "devices_automation",
    allow_sub_tasks: bool = False,
) -> JobRow:
    job_id = new_id()
    stamp = now()
    sha = await put_script(conn, source)
    await conn.execute(
        "INSERT INTO jobs (id, name, script_sha256, parameters, timeout_s, automation_id, "
        "owner, type, allow_sub_tasks, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            job_id,
            name,
            sha,
            json.dumps(parameters),
            timeout_s,
            automation_id,
            owner,
            job_type,
            int(allow_sub_tasks),
            stamp,
            stamp,
        ),
    )
    await _add_version(conn, job_id, sha, stamp)
    job = await get_job(conn, job_id)
    assert job is not None
    return job


async def set_job_script(conn: Connection, job_id: str, source: str) -> JobRow | None:
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


_UPDATABLE = ("name", "parameters", "timeout_s", "automation_id", "type", "allow_sub_tasks")


async def update_job(conn: Connection, job_id: str, changes: dict[str, Any]) -> JobRow | None:
    """Set the given fields (keys of `_UPDATABLE`); None if there is no such job."""
    unknown = set(changes) - set(_UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
    if await get_job(conn, job_id) is None:
        return None
    for column, value in changes.items():
        if column == "parameters":
            value = json.dumps(value)
        elif column == "allow_sub_tasks":
            value = int(value)
        # `column` is one of _UPDATABLE, never user text.
        await conn.execute(f"UPDATE jobs SET {column} = ? WHERE id = ?", (value, job_id))
    await conn.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (now(), job_id))
    return await get_job(conn, job_id)


async def set_share(conn: Connection, job_id: str, owner: str, access: Access) -> None:
    await conn.execute(
        "INSERT INTO job_shares (job_id, owner, access) VALUES (?, ?, ?) "
        "ON CONFLICT(job_id, owner) DO UPDATE SET access = excluded.access",
        (job_id, owner, access),
    )


async def remove_share(conn: Connection, job_id: str, owner: str) -> bool:
    async with conn.execute(
        "DELETE FROM job_shares WHERE job_id = ? AND owner = ?", (job_id, owner)
    ) as cur:
        return cur.rowcount > 0


async def get_job(conn: Connection, job_id: str) -> JobRow | None:
    async with conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    async with conn.execute(
        "SELECT script_sha256 FROM job_versions WHERE job_id = ? ORDER BY version", (job_id,)
    ) as cur:
        versions = [str(v["script_sha256"]) for v in await cur.fetchall()]
    async with conn.execute(
        "SELECT owner, access FROM job_shares WHERE job_id = ? ORDER BY owner", (job_id,)
    ) as cur:
        shares = {str(r["owner"]): r["access"] for r in await cur.fetchall()}
    return JobRow(
        id=row["id"],
        name=row["name"],
        script_sha256=row["script_sha256"],
        parameters=json.loads(row["parameters"]),
        timeout_s=row["timeout_s"],
        automation_id=row["automation_id"],
        owner=row["owner"],
        type=row["type"],
        allow_sub_tasks=bool(row["allow_sub_tasks"]),
        shares=shares,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        versions=versions,
    )
