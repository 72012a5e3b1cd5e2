"""/api/devices: every device any host has reported, and whether its host is connected.

A host reports each device's own state (available, offline, ...); `busy` is ours: an available
device with an assigned or running task."""

from __future__ import annotations

from coordinator.api.auth import ContextDep
from coordinator.api.models import Device
from coordinator.api.strict_json import api_router
from coordinator.api.views import device_view
from coordinator.store_devices import list_devices
from coordinator.store_queue import busy_among

router = api_router(prefix="/devices", tags=["devices"])


@router.get("")
async def read_devices(ctx: ContextDep) -> list[Device]:
    async with ctx.db.transaction() as conn:
        rows = await list_devices(conn)
        busy = await busy_among(conn, [row.remote_device_id for row in rows])
    return [device_view(row, ctx.sessions, row.remote_device_id in busy) for row in rows]
