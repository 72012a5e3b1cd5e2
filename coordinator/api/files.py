"""/api/files: download a task's stored file; /files: the public ones (data-dump proofs).

A public file's URL is its id (128 random bits), put into a proof so that whoever reads the proof
can fetch it without an API key; every other file needs a key that may view its task's job.
"""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import FileResponse

from agent.filenames import file_name
from coordinator.api.access import task_for
from coordinator.api.auth import CallerDep, ContextDep
from coordinator.api.strict_json import api_router
from coordinator.context import Context
from coordinator.store_files import FileRow, get_file

router = api_router(prefix="/files", tags=["files"])
public_router = api_router(prefix="/files", tags=["files"], links=True)

_CONTENT_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg"}


@router.get(
    "/{file_id}",
    name="download_file",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "application/octet-stream": {}}}},
)
async def download_file(file_id: str, ctx: ContextDep, caller: CallerDep) -> FileResponse:
    """A task's file, for callers who may view the task's job."""
    async with ctx.db.transaction() as conn:
        row = await get_file(conn, file_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"file {file_id} not found")
        await task_for(conn, row.task_id, caller, "view")
    return _response(ctx, row)


@public_router.get(
    "/{file_id}",
    name="public_file",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "application/octet-stream": {}}}},
)
async def public_file(file_id: str, ctx: ContextDep) -> FileResponse:
    async with ctx.db.transaction() as conn:
        row = await get_file(conn, file_id)
    if row is None or not row.public:
        raise HTTPException(status_code=404, detail=f"public file {file_id} not found")
    return _response(ctx, row)


def _response(ctx: Context, row: FileRow) -> FileResponse:
    # Stored names are safe already; reducing again also covers rows from before that rule.
    return FileResponse(
        ctx.settings.files_dir / row.path,
        media_type=_CONTENT_TYPES.get(row.extension.lower(), "application/octet-stream"),
        filename=file_name(row.name, row.extension),
    )
