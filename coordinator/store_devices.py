"""Stored devices: the last list each host reported, kept so that tasks can be pinned to them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from agent.protocol import DeviceInfo
from coordinator import schema as t
from coordinator.db import now
from coordinator.db_conn import Conn
from coordinator.dialect import insert


@dataclass(frozen=True)
class DeviceRow:
    remote_device_id: str
    host_id: str
    kind: str
    state: str
    properties: dict[str, Any]
    updated_at: float


async def replace_host_devices(conn: Conn, host_id: str, devices: list[DeviceInfo]) -> None:
    """Store a host's full device list; its devices missing from the list become offline.

    Rows are never deleted, so a task can still be pinned to a device that is away for now.
    """
    stamp = now()
    # One row per id, the last report winning (a multi-row upsert may not touch a row twice).
    latest = {device.remote_device_id: device for device in devices}
    if latest:
        stmt = insert(conn, t.devices)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[t.devices.c.remote_device_id],
                set_={
                    "host_id": stmt.excluded.host_id,
                    "kind": stmt.excluded.kind,
                    "state": stmt.excluded.state,
                    "properties": stmt.excluded.properties,
                    "updated_at": stmt.excluded.updated_at,
                },
            ),
            [
                {
                    "remote_device_id": device.remote_device_id,
                    "host_id": host_id,
                    "kind": device.kind,
                    "state": device.state,
                    "properties": json.dumps(device.properties),
                    "updated_at": stamp,
                }
                for device in latest.values()
            ],
        )
    await conn.execute(
        sa.update(t.devices)
        .where(
            t.devices.c.host_id == host_id,
            t.devices.c.state != "offline",
            t.devices.c.remote_device_id.not_in(list(latest)),
        )
        .values(state="offline", updated_at=stamp)
    )


async def list_devices(conn: Conn) -> list[DeviceRow]:
    rows = await conn.execute(
        sa.select(t.devices).order_by(t.devices.c.host_id, t.devices.c.remote_device_id)
    )
    return [
        DeviceRow(
            remote_device_id=row.remote_device_id,
            host_id=row.host_id,
            kind=row.kind,
            state=row.state,
            properties=json.loads(row.properties),
            updated_at=row.updated_at,
        )
        for row in rows
    ]


async def known_device_ids(conn: Conn, ids: set[str]) -> set[str]:
    """The ids among `ids` that some host has reported at least once."""
    if not ids:
        return set()
    found = await conn.scalars(
        sa.select(t.devices.c.remote_device_id).where(t.devices.c.remote_device_id.in_(ids))
    )
    return set(found)


async def device_kinds(conn: Conn, ids: set[str]) -> dict[str, str]:
    """The kind (browser, android, ...) of each id among `ids` that some host has reported."""
    if not ids:
        return {}
    c = t.devices.c
    rows = await conn.execute(
        sa.select(c.remote_device_id, c.kind).where(c.remote_device_id.in_(ids))
    )
    return {row.remote_device_id: row.kind for row in rows}


async def host_device_ids(conn: Conn, host_id: str) -> set[str]:
    found = await conn.scalars(
        sa.select(t.devices.c.remote_device_id).where(t.devices.c.host_id == host_id)
    )
    return set(found)
