"""Stored devices: the last list each host reported, kept so that tasks can be pinned to them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.protocol import DeviceInfo
from coordinator.db import now
from coordinator.sqlite_conn import Connection


@dataclass(frozen=True)
class DeviceRow:
    remote_device_id: str
    host_id: str
    kind: str
    state: str
    properties: dict[str, Any]
    updated_at: float


async def replace_host_devices(conn: Connection, host_id: str, devices: list[DeviceInfo]) -> None:
    """Store a host's full device list; its devices missing from the list become offline.

    Rows are never deleted, so a task can still be pinned to a device that is away for now.
    """
    stamp = now()
    await conn.executemany(
        "INSERT INTO devices (remote_device_id, host_id, kind, state, properties, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(remote_device_id) DO UPDATE SET "
        "host_id = excluded.host_id, kind = excluded.kind, state = excluded.state, "
        "properties = excluded.properties, updated_at = excluded.updated_at",
        [
            (
                device.remote_device_id,
                host_id,
                device.kind,
                device.state,
                json.dumps(device.properties),
                stamp,
            )
            for device in devices
        ],
    )
    reported = [d.remote_device_id for d in devices]
    marks = ",".join("?" * len(reported))
    missing_clause = f" AND remote_device_id NOT IN ({marks})" if reported else ""
    await conn.execute(
        "UPDATE devices SET state = 'offline', updated_at = ? "
        f"WHERE host_id = ? AND state != 'offline'{missing_clause}",
        (stamp, host_id, *reported),
    )


async def list_devices(conn: Connection) -> list[DeviceRow]:
    async with conn.execute("SELECT * FROM devices ORDER BY host_id, remote_device_id") as cur:
        rows = await cur.fetchall()
    return [
        DeviceRow(
            remote_device_id=row["remote_device_id"],
            host_id=row["host_id"],
            kind=row["kind"],
            state=row["state"],
            properties=json.loads(row["properties"]),
            updated_at=row["updated_at"],
        )
        for row in rows
    ]


async def known_device_ids(conn: Connection, ids: set[str]) -> set[str]:
    """The ids among `ids` that some host has reported at least once."""
    if not ids:
        return set()
    marks = ",".join("?" * len(ids))
    async with conn.execute(
        f"SELECT remote_device_id FROM devices WHERE remote_device_id IN ({marks})", tuple(ids)
    ) as cur:
        rows = await cur.fetchall()
    return {str(row["remote_device_id"]) for row in rows}


async def host_device_ids(conn: Connection, host_id: str) -> set[str]:
    async with conn.execute(
        "SELECT remote_device_id FROM devices WHERE host_id = ?", (host_id,)
    ) as cur:
        rows = await cur.fetchall()
    return {str(row["remote_device_id"]) for row in rows}
