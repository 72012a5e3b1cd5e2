"""/api/files: download a task's stored file."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from coordinator.api.auth import ContextDep
from coordinator.store_files import get_file

router = APIRouter(prefix="/files", tags=["files"])

_CONTENT_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg"}


@router.get(
    "/{file_id}",
    name="download_file",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "application/octet-stream": {}}}},
)
async def download_file(file_id: str, ctx: ContextDep) -> FileResponse:
    async with ctx.db.transaction() as conn:
        row = await get_file(conn, file_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"file {file_id} not found")
    filename = f"{row.name}.{row.extension}" if row.extension else row.name
    return FileResponse(
        ctx.settings.files_dir / row.path,
        media_type=_CONTENT_TYPES.get(row.extension.lower(), "application/octet-stream"),
        filename=filename,
    )
