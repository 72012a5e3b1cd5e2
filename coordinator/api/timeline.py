"""/api/tasks/{id}/timeline and /api/tasks/{id}/artifacts: what each run of a task left behind
(docs/timeline.md). `run` picks one run (its attempt number); without it every run's, in order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from agent.filenames import file_name
from coordinator.api.access import task_for
from coordinator.api.auth import CallerDep, ContextDep
from coordinator.api.strict_json import api_router
from coordinator.store_timeline import ArtifactRow, artifacts_of, get_artifact, timeline_of

router = api_router(prefix="/tasks", tags=["timeline"])

RunParam = Annotated[
    int | None, Query(ge=1, le=1_000_000, description="Only this run (attempt number).")
]


class TimelineItem(BaseModel):
    run: int = Field(description="The run (attempt number) the entry belongs to.")
    seq: int = Field(description="Its place in the run's timeline: 0, 1, ...")
    at: datetime = Field(description="When it began (the host's clock).")
    kind: Literal["action", "submit", "log", "note", "artifact"]
    name: str
    detail: str
    duration_s: float | None
    ok: bool | None
    error: str | None
    size: int | None


class TaskTimeline(BaseModel):
    task_id: str
    entries: list[TimelineItem] = Field(description="By run, then in the run's order.")


class Artifact(BaseModel):
    id: str
    run: int
    seq: int = Field(description="The timeline entry that tells of it.")
    name: str
    extension: str
    size: int
    created_at: datetime
    url: str = Field(description="Where to download it (with an API key).")


class ArtifactList(BaseModel):
    task_id: str
    artifacts: list[Artifact]


def _item(row: dict[str, Any]) -> TimelineItem:
    return TimelineItem(**{**row, "at": datetime.fromtimestamp(row["at"], UTC)})


def _artifact(request: Request, row: ArtifactRow) -> Artifact:
    return Artifact(
        id=row.id,
        run=row.attempt,
        seq=row.seq,
        name=row.name,
        extension=row.extension,
        size=row.size,
        created_at=datetime.fromtimestamp(row.created_at, UTC),
        url=str(request.url_for("download_artifact", task_id=row.task_id, artifact_id=row.id)),
    )


@router.get("/{task_id}/timeline")
async def read_timeline(
    task_id: str, ctx: ContextDep, caller: CallerDep, run: RunParam = None
) -> TaskTimeline:
    """The task's timeline: each run's actions, submissions, log lines and notes, in order."""
    async with ctx.db.transaction() as conn:
        await task_for(conn, task_id, caller, "view")
        rows = await timeline_of(conn, task_id, run)
    return TaskTimeline(task_id=task_id, entries=[_item(r) for r in rows])


@router.get("/{task_id}/artifacts")
async def read_artifacts(
    task_id: str, request: Request, ctx: ContextDep, caller: CallerDep, run: RunParam = None
) -> ArtifactList:
    """The screenshots kept with the task's runs, oldest first."""
    async with ctx.db.transaction() as conn:
        await task_for(conn, task_id, caller, "view")
        rows = await artifacts_of(conn, task_id, run)
    return ArtifactList(task_id=task_id, artifacts=[_artifact(request, r) for r in rows])


@router.get(
    "/{task_id}/artifacts/{artifact_id}",
    name="download_artifact",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "application/octet-stream": {}}}},
)
async def download_artifact(
    task_id: str, artifact_id: str, ctx: ContextDep, caller: CallerDep
) -> FileResponse:
    """One artifact's bytes."""
    async with ctx.db.transaction() as conn:
        await task_for(conn, task_id, caller, "view")
        row = await get_artifact(conn, task_id, artifact_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"artifact {artifact_id} not found")
    return FileResponse(
        ctx.settings.files_dir / row.path,
        media_type="image/jpeg" if row.extension.lower() in ("jpg", "jpeg") else None,
        filename=file_name(row.name, row.extension),
    )
