"""A job's script versions (table `job_versions`): numbered 1, 2, ... in the order the job's
script was set (at creation, then each `PUT /api/jobs/{id}/script`). A task runs the version
that was current when it was created, or the one it names (docs/jobs.md, Script versions).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from coordinator import schema as t
from coordinator.db_conn import Conn

v = t.job_versions.c


@dataclass(frozen=True)
class VersionRow:
    version: int
    script_sha256: str
    created_at: float


async def versions_of_job(conn: Conn, job_id: str) -> list[VersionRow]:
    """The job's versions, oldest (1) first."""
    rows = await conn.execute(
        sa.select(v.version, v.script_sha256, v.created_at)
        .where(v.job_id == job_id)
        .order_by(v.version)
    )
    return [VersionRow(row.version, row.script_sha256, row.created_at) for row in rows]


async def version_scripts(conn: Conn, job_id: str, numbers: set[int]) -> dict[int, str]:
    """The script SHA-256 of each of the job's versions among `numbers` that exists."""
    if not numbers:
        return {}
    rows = await conn.execute(
        sa.select(v.version, v.script_sha256).where(
            v.job_id == job_id, v.version.in_(sorted(numbers))
        )
    )
    return {int(row.version): str(row.script_sha256) for row in rows}
