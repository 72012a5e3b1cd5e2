"""/api/devices: every device any host has reported, and whether its host is connected."""

from __future__ import annotations

from coordinator.api.auth import ContextDep
from coordinator.api.models import Device
from coordinator.api.strict_json import api_router
from coordinator.api.views import device_view
from coordinator.store_devices import list_devices

router = api_router(prefix="/devices", tags=["devices"])


@router.get("")
async def read_devices(ctx: ContextDep) -> list[Device]:
    async with ctx.db.transaction() as conn:
        rows = await list_devices(conn)
    return [device_view(row, ctx.sessions) for row in rows]
