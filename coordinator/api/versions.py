"""GET /api/jobs/{id}/versions: the job's script versions (coordinator/store_versions.py).
A new one is made by `PUT /api/jobs/{id}/script` (coordinator/api/jobs.py)."""

from __future__ import annotations

from coordinator.api.access import job_for
from coordinator.api.auth import CallerDep, ContextDep
from coordinator.api.models import VersionList
from coordinator.api.strict_json import api_router
from coordinator.api.views import version_view
from coordinator.store_versions import versions_of_job

router = api_router(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}/versions")
async def read_versions(job_id: str, ctx: ContextDep, caller: CallerDep) -> VersionList:
    """The job's script versions, oldest (1) first; needs view."""
    async with ctx.db.transaction() as conn:
        job = await job_for(conn, job_id, caller, "view")
        found = await versions_of_job(conn, job_id)
    return VersionList(versions=[version_view(v, job.version) for v in found])
