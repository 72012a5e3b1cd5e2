"""Pages of the jobs an owner may read (its own and those shared with it), filtered, in one
stable order, oldest first: by created_at, then by id. A page starts after a given (created_at,
id), so paging never repeats or skips a job, whatever is created or deleted meanwhile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from coordinator import schema as t
from coordinator.db_conn import Conn
from coordinator.dialect import id_list, id_list_value
from coordinator.store_jobs import Access, JobRow, JobType, job_from_row

Whose = Literal["me", "shared", "any"]
"""me: the owner's own jobs; shared: those shared with it; any: both."""

j = t.jobs.c


@dataclass(frozen=True)
class JobFilter:
    whose: Whose = "any"
    job_type: JobType | None = None
    paused: bool | None = None
    name: str | None = None
    """Part of the name, ASCII letters in either case."""


def _clauses(owner: str, which: JobFilter) -> list[sa.ColumnElement[bool]]:
    shared = j.id.in_(sa.select(t.job_shares.c.job_id).where(t.job_shares.c.owner == owner))
    clauses = [
        {"me": j.owner == owner, "shared": shared, "any": sa.or_(j.owner == owner, shared)}[
            which.whose
        ]
    ]
    if which.job_type is not None:
        clauses.append(j.type == which.job_type)
    if which.paused is not None:
        clauses.append(j.paused == int(which.paused))
    if which.name is not None:
        clauses.append(sa.func.lower(j.name).contains(which.name.lower(), autoescape=True))
    return clauses


async def list_jobs(
    conn: Conn, owner: str, which: JobFilter, after: tuple[float, str] | None, limit: int
) -> tuple[list[JobRow], bool]:
    """Up to `limit` jobs after the (created_at, id) `after`, and whether more follow."""
    clauses = _clauses(owner, which)
    if after is not None:
        stamp, job_id = after
        clauses.append(sa.or_(j.created_at > stamp, sa.and_(j.created_at == stamp, j.id > job_id)))
    rows = (
        await conn.execute(
            sa.select(t.jobs).where(*clauses).order_by(j.created_at, j.id).limit(limit + 1)
        )
    ).all()
    page = rows[:limit]
    ids = id_list_value(conn.dialect.name, [row.id for row in page])
    versions: dict[str, list[str]] = {row.id: [] for row in page}
    shares: dict[str, dict[str, Access]] = {row.id: {} for row in page}
    listed = id_list(conn.dialect.name, "ids")
    v = t.job_versions.c
    for version in await conn.execute(
        sa.select(v.job_id, v.script_sha256)
        .join(listed, v.job_id == listed.c.value)
        .order_by(v.job_id, v.version),
        {"ids": ids},
    ):
        versions[version.job_id].append(version.script_sha256)
    s = t.job_shares.c
    for share in await conn.execute(
        sa.select(s.job_id, s.owner, s.access)
        .join(listed, s.job_id == listed.c.value)
        .order_by(s.job_id, s.owner),
        {"ids": ids},
    ):
        shares[share.job_id][share.owner] = share.access
    jobs = [job_from_row(row, versions[row.id], shares[row.id]) for row in page]
    return jobs, len(rows) > limit
