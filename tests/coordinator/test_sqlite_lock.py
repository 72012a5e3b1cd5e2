"""SQLite runs on the coordinator's event loop: another process's write lock must not stall it."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

import httpx

from coordinator.db_location import DB_FILE_NAME

if TYPE_CHECKING:
    from tests.coordinator.conftest import Farm

SCRIPT = "async def main(agent):\n    return {'ok': True}\n"


async def test_a_write_waits_for_another_process_lock_while_the_loop_serves(farm: Farm) -> None:
    holder = sqlite3.connect(farm.coordinator.data_dir / DB_FILE_NAME, isolation_level=None)
    try:
        async with farm.client() as api:
            holder.execute("BEGIN IMMEDIATE")
            create = asyncio.create_task(
                api.post("/api/jobs", json={"name": farm.unique("locked"), "script": SCRIPT})
            )
            await farm.poll_log("the database is locked by another process")
            # While the job's transaction waits for the lock, the loop answers other requests.
            async with httpx.AsyncClient(base_url=farm.coordinator.base_url, timeout=30) as anon:
                for _ in range(5):
                    assert (await anon.get("/healthz")).json() == {"ok": True}
            assert not create.done(), "the write must wait for the other process's lock"
            holder.execute("COMMIT")
            response = await asyncio.wait_for(create, timeout=30)
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        async with farm.client() as api:
            assert (await api.get(f"/api/jobs/{job_id}")).status_code == 200
    finally:
        holder.close()
