"""GET /api/jobs: the caller's jobs and those shared with it, filtered, a page at a time.

The order is stable (oldest first: created_at, then id); `next_cursor` is opaque to callers: it
names the last job of the page, and the next page starts after it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Annotated

from fastapi import HTTPException, Query

from coordinator.api.auth import CallerDep, ContextDep
from coordinator.api.models import JobList
from coordinator.api.query import Flag, flag
from coordinator.api.strict_json import api_router
from coordinator.api.views import job_view
from coordinator.store_job_list import JobFilter, Whose, list_jobs
from coordinator.store_jobs import JobRow, JobType

router = api_router(prefix="/jobs", tags=["jobs"])


def _cursor(job: JobRow) -> str:
    text = json.dumps([job.created_at, job.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _position(cursor: str) -> tuple[float, str]:
    """Where a cursor says the page starts after; 422 if it is not one this API made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, job_id = json.loads(raw)
        if type(stamp) is float and math.isfinite(stamp) and isinstance(job_id, str):
            return stamp, job_id
    except (binascii.Error, ValueError, TypeError):
        pass
    detail = [
        {
            "type": "value_error",
            "loc": ["query", "cursor"],
            "msg": "not a cursor this API gave: pass a page's next_cursor as it is",
            "input": cursor,
        }
    ]
    raise HTTPException(status_code=422, detail=detail)


@router.get("")
async def read_jobs(
    ctx: ContextDep,
    caller: CallerDep,
    owner: Annotated[
        Whose, Query(description="me: the caller's own jobs; shared: those shared with it.")
    ] = "any",
    job_type: Annotated[JobType | None, Query(alias="type")] = None,
    paused: Flag | None = None,
    name: Annotated[
        str | None, Query(max_length=200, description="Part of the name (ASCII in any case).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> JobList:
    """The jobs the caller owns or has a share of, oldest first, one page at a time."""
    which = JobFilter(owner, job_type, None if paused is None else flag(paused), name)
    after = None if cursor is None else _position(cursor)
    async with ctx.db.transaction() as conn:
        jobs, more = await list_jobs(conn, caller, which, after, limit)
    return JobList(
        items=[job_view(job) for job in jobs],
        limit=limit,
        next_cursor=_cursor(jobs[-1]) if more else None,
    )
